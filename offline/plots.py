"""The plots of the reports, drawn where the operating point shows.

Rare-event scores crowd near 0 and a threshold can sit at 0.0003, so the axes are logarithmic:
precision and recall against the alert rate (the share of rows flagged) with the chosen
threshold drawn, score distributions on a log score axis with each class as a share of its own
rows (the rare class stays visible), and the reliability diagram (mean score against observed
fraud rate in bins of equal row count) on log-log axes. Legends sit beside the axes, never over
the curves. Figures are drawn with matplotlib's Agg backend on figures that never touch
pyplot's global state, so reports can be written from any thread or process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from offline.calibration import calibration_report

__all__ = [
    "RELIABILITY_BINS",
    "alert_rate_curve",
    "distribution_plot",
    "pr_plot",
    "reliability_plot",
    "threshold_plot",
]

Array = npt.NDArray[np.float64]
RELIABILITY_BINS = 10
"""Bins of equal row count of the reliability diagram (and of the reports' ECE)."""


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)


_LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": "x-small"}
"""Legends sit right of the axes, never over the curves."""


def pr_plot(
    path: Path,
    curves: Sequence[tuple[str, npt.NDArray[np.int64], Array]],
    prior: float,
    point: tuple[float, float] | None = None,
) -> None:
    fig = Figure(figsize=(8.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for name, y, s in curves:
        precision, recall, _ = precision_recall_curve(y, s)
        ax.step(recall, precision, where="post", label=name, linewidth=1.4)
    ax.axhline(prior, color="grey", linestyle=":", label=f"chance = positive rate ({prior:.3%})")
    if point is not None:
        ax.plot([point[1]], [point[0]], "o", color="black", label="at the threshold")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall")
    ax.legend(**_LEGEND)
    _save(fig, path)


def _floor(s: Array) -> float:
    """The left end of a log score axis: below the smallest positive score, at most 1e-3."""
    positive = s[s > 0]
    low = float(positive.min()) if positive.size else 1e-6
    return min(1e-3, 10 ** np.floor(np.log10(low)))


def _distribution_axes(
    ax: Any, y: npt.NDArray[np.int64], s: Array, title: str, threshold: float | None
) -> None:
    floor = _floor(s)
    bins = np.geomspace(floor, 1.0, 61)
    clipped = np.clip(s, floor, 1.0)
    for cls, color in ((0, "tab:blue"), (1, "tab:red")):
        values = clipped[y == cls]
        if values.size:
            # Each class as a share of its own rows, so the rare class is as visible as the other.
            weights = np.full(values.size, 1.0 / values.size)
            ax.hist(
                values,
                bins=bins,
                weights=weights,
                histtype="stepfilled",
                alpha=0.35,
                color=color,
                edgecolor=color,
                linewidth=1.2,
                label=f"class {cls} ({values.size} rows)",
            )
    if threshold is not None:
        ax.axvline(
            max(threshold, floor),
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"threshold {threshold:.3g}",
        )
    ax.set_xscale("log")
    ax.set(xlabel="score (log scale)", ylabel="share of the class's rows", xlim=(floor, 1.0))
    ax.set_title(title, fontsize="medium")
    ax.legend(**_LEGEND)


def distribution_plot(
    path: Path, panels: Sequence[tuple[str, npt.NDArray[np.int64], Array, float | None]]
) -> None:
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(7.4 * cols, 3.6 * rows), layout="constrained")
    for i, (title, y, s, t) in enumerate(panels):
        _distribution_axes(fig.add_subplot(rows, cols, i + 1), y, s, title, t)
    _save(fig, path)


def alert_rate_curve(y: npt.ArrayLike, s: npt.ArrayLike) -> tuple[Array, Array, Array, Array]:
    """For each distinct score ``t`` (as a threshold): alert rate, precision, recall, ``t``.

    The alert rate is the share of rows with ``score >= t``; sorted by alert rate.

    Examples
    --------
    >>> rate, precision, recall, t = alert_rate_curve([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.4])
    >>> rate.tolist(), precision.tolist(), recall.tolist(), t.tolist()
    ([0.25, 0.75, 1.0], [1.0, 0.6666666666666666, 0.5], [0.5, 1.0, 1.0], [0.9, 0.4, 0.1])
    """
    labels = np.asarray(y, dtype=np.float64)
    scores = np.asarray(s, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], np.cumsum(labels[order])
    last = np.r_[np.flatnonzero(np.diff(ranked) != 0), ranked.size - 1]  # end of each tie
    flagged = last + 1.0
    return (
        flagged / scores.size,
        hits[last] / flagged,
        hits[last] / max(labels.sum(), 1.0),
        ranked[last],
    )


def threshold_plot(
    path: Path, curves: Sequence[tuple[str, npt.NDArray[np.int64], Array]], threshold: float | None
) -> None:
    """Precision and recall against the alert rate (log axis), the chosen threshold drawn."""
    fig = Figure(figsize=(8.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    low = 1.0
    for i, (name, y, s) in enumerate(curves):
        rate, precision, recall, _ = alert_rate_curve(y, s)
        low = min(low, float(rate[0]))
        style = styles[i % len(styles)]
        suffix = f" {name}" if name else ""
        ax.plot(rate, precision, style, color="tab:green", label=f"precision{suffix}")
        ax.plot(rate, recall, style, color="tab:purple", label=f"recall{suffix}")
        if threshold is not None and i == 0:
            at = float(np.mean(s >= threshold))
            if at > 0:
                ax.axvline(
                    at,
                    color="black",
                    linestyle="--",
                    linewidth=1.2,
                    label=f"threshold {threshold:.3g}: alert rate {at:.3%}",
                )
            positives = float(np.mean(y))
            ax.axvline(
                positives,
                color="grey",
                linestyle=":",
                linewidth=1,
                label=f"positive rate {positives:.3%}",
            )
    ax.set_xscale("log")
    ax.set(
        xlabel="alert rate (share of rows flagged, log scale); each point is a threshold",
        ylabel="value",
        xlim=(low, 1.0),
        ylim=(0, 1.02),
    )
    ax.set_title("Precision and recall by alert rate")
    ax.legend(**_LEGEND)
    _save(fig, path)


def reliability_plot(
    path: Path,
    curves: Sequence[tuple[str, npt.NDArray[np.int64], Array]],
    title: str = "Reliability",
) -> None:
    """Mean score against observed fraud rate in equal-mass bins, log-log, with the diagonal."""
    fig = Figure(figsize=(10.0, 5.6), layout="constrained")
    ax = fig.add_subplot()
    low = 1.0
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i, (name, y, s) in enumerate(curves):
        report = calibration_report(y, s, n_bins=RELIABILITY_BINS)
        score = np.maximum(report.bin_score, 1e-12)
        rate = np.asarray(report.bin_rate)
        shown = np.maximum(rate, min(0.5 / max(report.bin_count), float(score.min())))
        low = min(low, float(score.min()), float(shown.min()))
        (line,) = ax.plot(
            score,
            shown,
            marker=markers[i % len(markers)],
            linewidth=1.2,
            label=f"{name} (ECE {report.ece:.4f}, Brier {report.brier:.4f})",
        )
        zero = rate == 0  # no fraud in the bin: drawn hollow on the floor
        if zero.any():
            ax.plot(
                score[zero],
                shown[zero],
                linestyle="none",
                marker=markers[i % len(markers)],
                markerfacecolor="white",
                color=line.get_color(),
            )
    low = 10 ** np.floor(np.log10(low))
    ax.plot([low, 1.0], [low, 1.0], color="grey", linestyle=":", label="perfectly calibrated")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(
        xlabel=f"mean score of the bin ({RELIABILITY_BINS} bins of equal row count)",
        ylabel="observed fraud rate of the bin",
        xlim=(low, 1.0),
        ylim=(low, 1.0),
    )
    ax.set_title(f"{title}\n(hollow: no fraud in the bin)")
    ax.legend(**_LEGEND)
    _save(fig, path)
