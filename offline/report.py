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

from offline.compare import CandidateResult, Comparison
from offline.evaluation import BundleEvaluation, Metrics
from stream_detector.errors import DataError

__all__ = ["write_compare_report", "write_evaluation_report", "write_json"]

Array = npt.NDArray[np.float64]
_MAX_CURVES = 8


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


def _pr_plot(
    path: Path,
    curves: Sequence[tuple[str, npt.NDArray[np.int64], Array]],
    prior: float,
    point: tuple[float, float] | None = None,
) -> None:
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for name, y, s in curves:
        precision, recall, _ = precision_recall_curve(y, s)
        ax.step(recall, precision, where="post", label=name, linewidth=1.4)
    ax.axhline(prior, color="grey", linestyle=":", label=f"chance ({prior:.3%})")
    if point is not None:
        ax.plot([point[1]], [point[0]], "o", color="black", label="threshold")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall")
    ax.legend(fontsize="small", loc="lower left")
    _save(fig, path)


def _distribution_axes(
    ax: Any, y: npt.NDArray[np.int64], s: Array, title: str, threshold: float | None
) -> None:
    bins = np.linspace(0.0, 1.0, 51)
    for cls, color in ((0, "tab:blue"), (1, "tab:red")):
        values = s[y == cls]
        if values.size:
            ax.hist(
                values,
                bins=bins,
                density=True,
                alpha=0.55,
                color=color,
                label=f"class {cls} ({values.size})",
            )
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set(xlabel="score", ylabel="density", xlim=(0, 1))
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="x-small")


def _distribution_plot(
    path: Path, panels: Sequence[tuple[str, npt.NDArray[np.int64], Array, float | None]]
) -> None:
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows), layout="constrained")
    for i, (title, y, s, t) in enumerate(panels):
        _distribution_axes(fig.add_subplot(rows, cols, i + 1), y, s, title, t)
    _save(fig, path)


def _threshold_plot(
    path: Path, curves: Sequence[tuple[str, npt.NDArray[np.int64], Array]], threshold: float | None
) -> None:
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, (name, y, s) in enumerate(curves):
        precision, recall, thresholds = precision_recall_curve(y, s)
        style = styles[i % len(styles)]
        ax.plot(thresholds, precision[:-1], style, color="tab:green", label=f"precision {name}")
        ax.plot(thresholds, recall[:-1], style, color="tab:purple", label=f"recall {name}")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set(
        xlabel="threshold (flag when score >= threshold)",
        ylabel="value",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.set_title("Threshold vs precision and recall")
    ax.legend(fontsize="x-small")
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
        "## Threshold policy on this data",
        "",
        "| | validation (at training) | this data |",
        "|---|---|---|",
    ]
    val = manifest.metrics
    for key in ("pr_auc", "roc_auc", "precision", "recall"):
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
        "![precision-recall curve](pr_curve.png)",
        "",
        "![score distributions by class](score_distribution.png)",
        "",
        "![threshold vs precision and recall](threshold_curve.png)",
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
        "| s/fit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(cmp.results, start=1):
        row = r.row()
        lines.append(
            f"| {i} | {row['scorer']} | {row['model'] or '-'} | {row['technique']} | "
            f"{_fmt(row['pr_auc'])} | {_fmt(row['roc_auc'])} | {_fmt(row['precision'])} | "
            f"{_fmt(row['recall'])} | {_fmt(row['f1'])} | {row['fit_seconds']:.2f} |"
        )
    failed = [r for r in cmp.results if not r.ok]
    if failed:
        lines += ["", "Skipped:", ""]
        lines += [f"- {r.candidate.name}: {r.error}" for r in failed]
    lines += [
        "",
        "## Plots",
        "",
        f"![precision-recall curves of the top {len(curves)}](pr_curves.png)",
        "",
        "![score distributions by class](score_distributions.png)",
        "",
        "![threshold vs precision and recall of the winner](threshold_curves.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return out
