"""Human reports: ``report.md`` with PNG plots, beside the machine-readable JSON.

Plots are drawn with matplotlib's Agg backend on figures that never touch pyplot's global
state, so reports can be written from any thread or process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from offline.calibration import calibration_report
from offline.compare import CandidateResult, Comparison
from offline.evaluation import BundleEvaluation, Metrics
from stream_detector.errors import DataError

__all__ = ["alert_rate_curve", "write_compare_report", "write_evaluation_report", "write_json"]

Array = npt.NDArray[np.float64]
_MAX_CURVES = 8
_RELIABILITY_BINS = 10


def _prepare(directory: str | os.PathLike[str]) -> Path:
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"report directory {out} cannot be created: {exc.strerror}") from exc
    return out


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON (NaN is not valid JSON: written as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(payload), indent=2) + "\n", encoding="utf-8")


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)


_LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": "x-small"}
"""Legends sit right of the axes, never over the curves."""


def _pr_plot(
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


def _distribution_plot(
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


def _threshold_plot(
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


def _reliability_plot(
    path: Path, curves: Sequence[tuple[str, npt.NDArray[np.int64], Array]]
) -> None:
    """Mean score against observed fraud rate in equal-mass bins, log-log, with the diagonal."""
    fig = Figure(figsize=(8.0, 5.2), layout="constrained")
    ax = fig.add_subplot()
    low = 1.0
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i, (name, y, s) in enumerate(curves):
        report = calibration_report(y, s, n_bins=_RELIABILITY_BINS)
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
        xlabel=f"mean score of the bin ({_RELIABILITY_BINS} bins of equal row count)",
        ylabel="observed fraud rate of the bin",
        xlim=(low, 1.0),
        ylim=(low, 1.0),
    )
    ax.set_title("Reliability (hollow: no fraud in the bin)")
    ax.legend(**_LEGEND)
    _save(fig, path)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metrics_table(m: Metrics) -> list[str]:
    lines = ["| metric | value |", "|---|---|"]
    for key, value in m.as_dict().items():
        if value is not None:
            lines.append(f"| {key} | {_fmt(value)} |")
    return lines


def write_evaluation_report(directory: str | os.PathLike[str], ev: BundleEvaluation) -> Path:
    """Write ``metrics.json`` and ``report.md`` (with plots) for an evaluated bundle."""
    out = _prepare(directory)
    m, y, s = ev.metrics, ev.data.y, ev.scores
    manifest = ev.bundle.manifest
    write_json(out / "metrics.json", ev.as_dict())
    _pr_plot(out / "pr_curve.png", [("model", y, s)], m.positives / m.n, (m.precision, m.recall))
    _distribution_plot(out / "score_distribution.png", [("scores by class", y, s, m.threshold)])
    _threshold_plot(out / "threshold_curve.png", [("", y, s)], m.threshold)
    _reliability_plot(out / "reliability.png", [("model", y, s)])
    policy = ev.policy
    lines = [
        "# Evaluation report",
        "",
        f"Model `{manifest.model_version}`: scorer `{manifest.scorer}`, technique "
        f"`{manifest.technique}`, {len(manifest.features)} features, threshold "
        f"{manifest.threshold:.6g} (policy `{manifest.threshold_policy}`).",
        f"Data: {m.n} rows, {m.positives} labelled 1 ({m.positives / m.n:.3%}).",
        "",
        "## Metrics",
        "",
        *_metrics_table(m),
        "",
        f"precision_at_k is the share of rows labelled 1 among the k = {m.k} highest scores "
        "(`evaluation.precision_at_k`, at most the number of rows): what a team that reviews "
        "k alerts would find. brier, log_loss and ece (expected calibration error over 10 bins "
        "of equal row count) say how far the scores are from the observed fraud rate.",
        "",
        "## Threshold policy on this data",
        "",
        "| | validation (at training) | this data |",
        "|---|---|---|",
    ]
    val = manifest.metrics
    for key in ("pr_auc", "roc_auc", "precision", "recall", "alert_rate", "brier", "ece"):
        lines.append(f"| {key} | {_fmt(val.get(key))} | {_fmt(getattr(m, key))} |")
    if "target" in policy:
        verdict = "held" if policy["held"] else "did NOT hold"
        lines += [
            "",
            f"Policy `{policy['policy']}`: target {policy['target']}, achieved "
            f"{policy['achieved']:.4f}: the policy {verdict} on this data.",
        ]
    lines += [
        "",
        "## Plots",
        "",
        "The chance line of the precision-recall plot is the positive rate of these rows: "
        "the precision of flagging rows at random.",
        "",
        "![precision-recall curve](pr_curve.png)",
        "",
        "![score distributions by class](score_distribution.png)",
        "",
        "![precision and recall by alert rate](threshold_curve.png)",
        "",
        "![reliability diagram](reliability.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return out


def write_compare_report(
    directory: str | os.PathLike[str], cmp: Comparison, *, title: str = "Comparison"
) -> Path:
    """Write ``compare.json`` and ``report.md`` (with overlaid plots) for a comparison."""
    out = _prepare(directory)
    write_json(out / "compare.json", cmp.rows())
    mask = cmp.mask
    y = cmp.data.y[mask]
    ok: list[CandidateResult] = [r for r in cmp.results if r.ok]
    top = ok[:_MAX_CURVES]
    curves = [(r.candidate.name, y, r.scores[mask]) for r in top if r.scores is not None]
    _pr_plot(out / "pr_curves.png", curves, float(y.mean()))
    panels = [
        (r.candidate.name, y, r.scores[mask], r.metrics.threshold if r.metrics else None)
        for r in top[:4]
        if r.scores is not None
    ]
    _distribution_plot(out / "score_distributions.png", panels)
    w = cmp.winner
    assert w.scores is not None
    assert w.metrics is not None
    _threshold_plot(
        out / "threshold_curves.png", [(w.candidate.name, y, w.scores[mask])], w.metrics.threshold
    )
    _reliability_plot(out / "reliability.png", curves[:4])
    lines = [
        f"# {title}",
        "",
        f"{cmp.data.n} rows, {cmp.data.positives} labelled 1 ({cmp.data.prior:.3%}); "
        f"{len(cmp.folds)} validation folds; metrics on out-of-fold scores "
        f"({int(mask.sum())} rows). Sorted by PR-AUC (average precision).",
        "",
        f"**Winner: {cmp.verdict()}.**",
        "",
        "| rank | scorer | model | technique | PR-AUC | ROC-AUC | precision | recall | F1 "
        "| Brier | ECE | s/fit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(cmp.results, start=1):
        row = r.row()
        brier = r.metrics.brier if r.metrics else None
        ece = r.metrics.ece if r.metrics else None
        lines.append(
            f"| {i} | {row['scorer']} | {row['model'] or '-'} | {row['technique']} | "
            f"{_fmt(row['pr_auc'])} | {_fmt(row['roc_auc'])} | {_fmt(row['precision'])} | "
            f"{_fmt(row['recall'])} | {_fmt(row['f1'])} | {_fmt(brier)} | {_fmt(ece)} | "
            f"{row['fit_seconds']:.2f} |"
        )
    failed = [r for r in cmp.results if not r.ok]
    if failed:
        lines += ["", "Skipped:", ""]
        lines += [f"- {r.candidate.name}: {r.error}" for r in failed]
    lines += [
        "",
        "## Plots",
        "",
        f"Plots and metrics use the out-of-fold rows only ({int(mask.sum())} rows, "
        f"{float(y.mean()):.3%} labelled 1): rows that no validation fold holds (the first "
        "block of time-ordered folds) have no out-of-fold score. The chance line of the "
        "precision-recall plot is that positive rate: the precision of flagging at random. "
        "Brier and ECE (expected calibration error over 10 bins of equal row count) measure "
        "how far the scores are from the observed fraud rate; an anomaly scorer's scores are "
        "not probabilities.",
        "",
        f"![precision-recall curves of the top {len(curves)}](pr_curves.png)",
        "",
        "![score distributions by class](score_distributions.png)",
        "",
        "![precision and recall of the winner by alert rate](threshold_curves.png)",
        "",
        "![reliability diagram of the top 4](reliability.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return out
