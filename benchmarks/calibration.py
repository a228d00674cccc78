"""Calibration: held-out Brier score and ECE of ``train`` with and without its calibrator.

For each data set of ``benchmarks/quality.py`` (the same splits), it trains twice on the
training part with the same technique, scorer and model (``--calibration none``, then the
default ``auto``) and evaluates both bundles on the held-out part; it prints the Brier score,
the log loss and the expected calibration error (10 bins of equal row count) of each, and the
PR-AUC, which calibration should leave about where it was (a monotone map keeps the order of
the scores, though isotonic steps can tie some).

Two figures say what is noise. ``d log loss`` is the held-out log loss of the calibrated
scores minus the uncalibrated ones', row by row over all the splits, with its standard error
(negative: calibration helped). ``ECE floor`` is the ECE that perfectly calibrated scores would
still show on that many held-out rows: the mean ECE of the calibrated scores against labels
drawn from them (200 draws); an ECE near the floor cannot be told from perfect.

Usage: ``python benchmarks/calibration.py [--datasets simulator,shuttle] [--quick]
[--technique random_over] [--model hgb]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from quality import DATASETS, _quiet, _quiet_logs

from offline.evaluation import evaluate_bundle
from stream_detector.cli import main

FLOOR_DRAWS = 200


def ece_floor(scores: np.ndarray, seed: int = 0) -> float:
    """Mean ECE of ``scores`` against labels drawn from them: the ECE of perfect calibration."""
    rng = np.random.default_rng(seed)
    order = np.argsort(scores, kind="mergesort")  # the bins of calibration_report
    bins = [b for b in np.array_split(order, min(10, scores.size)) if b.size]
    eces = []
    for _ in range(FLOOR_DRAWS):
        y = rng.uniform(size=scores.size) < scores
        eces.append(sum(abs(scores[b].sum() - y[b].sum()) for b in bins) / scores.size)
    return float(np.mean(eces))


def _row_log_loss(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    p = np.clip(scores, 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def _train_and_evaluate(
    work: Path, label: str, calibration: str, technique: str, model: str
) -> dict[str, object]:
    bundle = work / f"model-{calibration}"
    common = ["--log-level", "WARNING"]
    with _quiet(), _quiet_logs():
        code = main(
            [
                *common,
                "train",
                "--data",
                str(work / "train.csv"),
                "--label",
                label,
                "--out",
                str(bundle),
                "--technique",
                technique,
                "--model",
                model,
                "--calibration",
                calibration,
                "--quiet",
            ]
        )
        if code != 0:
            raise SystemExit(f"train failed with exit code {code}")
        evaluation = evaluate_bundle(bundle, work / "test.csv", label)
    metrics = evaluation.metrics.as_dict()
    manifest = json.loads((bundle / "manifest.json").read_text())
    method = (manifest.get("calibration") or {}).get("method", "none")
    return {
        "brier": float(metrics["brier"]),
        "log_loss": float(metrics["log_loss"]),
        "ece": float(metrics["ece"]),
        "pr_auc": float(metrics["pr_auc"]),
        "method": method,
        "y": evaluation.data.y,
        "scores": evaluation.scores,
    }


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--quick", action="store_true", help="subsample the large data sets")
    parser.add_argument("--technique", default="random_over")
    parser.add_argument("--model", default="hgb", choices=["logistic", "hgb"])
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    print(
        f"classifier/{args.model} {args.technique}; held-out figures, mean over the splits: "
        "uncalibrated -> calibrated"
    )
    print(
        f"{'data set':<14} {'n':>2} {'method':<17} {'Brier':>19} {'ECE':>19} "
        f"{'ECE floor':>9} {'log loss':>17} {'d log loss +- SE':>18} {'PR-AUC':>15}"
    )
    for name in names:
        made = DATASETS[name](args.quick)
        if made is None:
            continue
        label, splits = made
        before: list[dict[str, object]] = []
        after: list[dict[str, object]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (train, test) in enumerate(splits):
                work = Path(tmp) / f"split{i}"
                work.mkdir()
                train.to_csv(work / "train.csv", index=False)
                test.to_csv(work / "test.csv", index=False)
                before.append(_train_and_evaluate(work, label, "none", args.technique, args.model))
                after.append(_train_and_evaluate(work, label, "auto", args.technique, args.model))

        def mean(rows: list[dict[str, object]], key: str) -> float:
            return float(np.mean([r[key] for r in rows]))

        methods = sorted({str(r["method"]) for r in after})
        change = np.concatenate(
            [
                _row_log_loss(a["y"], a["scores"]) - _row_log_loss(b["y"], b["scores"])  # type: ignore[arg-type]
                for a, b in zip(after, before, strict=True)
            ]
        )
        change_se = float(np.std(change, ddof=1) / np.sqrt(change.size))
        floor = float(np.mean([ece_floor(np.asarray(a["scores"])) for a in after]))
        cells = [
            f"{mean(before, k):.5f} -> {mean(after, k):.5f}"
            for k in ("brier", "ece", "log_loss", "pr_auc")
        ]
        print(
            f"{name:<14} {len(splits):>2} {'/'.join(methods):<17} {cells[0]:>19} "
            f"{cells[1]:>19} {floor:>9.5f} {cells[2]:>17} "
            f"{f'{change.mean():+.4f} +- {change_se:.4f}':>18} {cells[3]:>15}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli())
