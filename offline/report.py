"""Human reports: ``report.md`` with PNG plots (:mod:`offline.plots`), beside the
machine-readable JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from offline.compare import CandidateResult, Comparison
from offline.evaluation import BundleEvaluation, Metrics
from offline.plots import distribution_plot, pr_plot, reliability_plot, threshold_plot
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
    pr_plot(out / "pr_curve.png", [("model", y, s)], m.positives / m.n, (m.precision, m.recall))
    distribution_plot(out / "score_distribution.png", [("scores by class", y, s, m.threshold)])
    threshold_plot(out / "threshold_curve.png", [("", y, s)], m.threshold)
    reliability_plot(out / "reliability.png", [("model", y, s)])
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
    pr_plot(out / "pr_curves.png", curves, float(y.mean()))
    panels = [
        (r.candidate.name, y, r.scores[mask], r.metrics.threshold if r.metrics else None)
        for r in top[:4]
        if r.scores is not None
    ]
    distribution_plot(out / "score_distributions.png", panels)
    w = cmp.winner
    assert w.scores is not None
    assert w.metrics is not None
    threshold_plot(
        out / "threshold_curves.png", [(w.candidate.name, y, w.scores[mask])], w.metrics.threshold
    )
    reliability_plot(out / "reliability.png", curves[:4], "Reliability before calibration")
    lines = [
        f"# {title}",
        "",
        f"{cmp.data.n} rows, {cmp.data.positives} labelled 1 ({cmp.data.prior:.3%}); "
        f"{len(cmp.folds)} validation folds; metrics on out-of-fold scores "
        f"({int(mask.sum())} rows). Search: {cmp.search}. Sorted by the rung each candidate "
        "reached, then by PR-AUC (average precision); `rows` is how many rows it was judged "
        "on (every positive and a sample of the negatives before the last rung, its PR-AUC "
        "weighted to estimate all the rows').",
        "",
        f"**Winner: {cmp.verdict()}.**",
        "",
        "| rank | scorer | model | technique | PR-AUC | ROC-AUC | precision | recall | F1 "
        "| Brier | ECE | s/fit | rows | rung |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(cmp.results, start=1):
        row = r.row()
        brier = r.metrics.brier if r.metrics else None
        ece = r.metrics.ece if r.metrics else None
        lines.append(
            f"| {i} | {row['scorer']} | {row['model'] or '-'} | {row['technique']} | "
            f"{_fmt(row['pr_auc'])} | {_fmt(row['roc_auc'])} | {_fmt(row['precision'])} | "
            f"{_fmt(row['recall'])} | {_fmt(row['f1'])} | {_fmt(brier)} | {_fmt(ece)} | "
            f"{row['fit_seconds']:.2f} | {row['rows']:,} | {row['rung']}/{row['rungs']} |"
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
        "not probabilities. These are the candidates' scores before calibration: `train` "
        "calibrates the winner on its out-of-fold scores (the bundle's manifest records the "
        "calibration error before and after, and `evaluate` plots the calibrated scores).",
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
