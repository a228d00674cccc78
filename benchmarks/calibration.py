"""Calibration: held-out Brier score and ECE of ``train`` with and without its calibrator.

For each data set of ``benchmarks/quality.py`` (the same splits), it trains twice on the
training part with the same technique, scorer and model (``--calibration none``, then the
default ``auto``) and evaluates both bundles on the held-out part; it prints the Brier score,
the log loss and the expected calibration error (10 bins of equal row count) of each, and the
PR-AUC, which calibration should leave about where it was (a monotone map keeps the order of
the scores, though isotonic steps can tie some).

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

from stream_detector.cli import main


def _train_and_evaluate(
    work: Path, label: str, calibration: str, technique: str, model: str
) -> dict[str, float]:
    bundle, report = work / f"model-{calibration}", work / f"report-{calibration}"
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
        code = main(
            [
                *common,
                "evaluate",
                "--model",
                str(bundle),
                "--data",
                str(work / "test.csv"),
                "--label",
                label,
                "--report",
                str(report),
            ]
        )
        if code != 0:
            raise SystemExit(f"evaluate failed with exit code {code}")
    metrics = json.loads((report / "metrics.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    method = (manifest.get("calibration") or {}).get("method", "none")
    return {
        "brier": float(metrics["brier"]),
        "log_loss": float(metrics["log_loss"]),
        "ece": float(metrics["ece"]),
        "pr_auc": float(metrics["pr_auc"]),
        "method": method,
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
        f"{'data set':<14} {'n':>2} {'method':<9} {'Brier':>19} {'ECE':>19} "
        f"{'log loss':>17} {'PR-AUC':>15}"
    )
    for name in names:
        made = DATASETS[name](args.quick)
        if made is None:
            continue
        label, splits = made
        before: list[dict[str, float]] = []
        after: list[dict[str, float]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (train, test) in enumerate(splits):
                work = Path(tmp) / f"split{i}"
                work.mkdir()
                train.to_csv(work / "train.csv", index=False)
                test.to_csv(work / "test.csv", index=False)
                before.append(_train_and_evaluate(work, label, "none", args.technique, args.model))
                after.append(_train_and_evaluate(work, label, "auto", args.technique, args.model))

        def mean(rows: list[dict[str, float]], key: str) -> float:
            return float(np.mean([r[key] for r in rows]))

        methods = sorted({str(r["method"]) for r in after})
        cells = [
            f"{mean(before, k):.5f} -> {mean(after, k):.5f}"
            for k in ("brier", "ece", "log_loss", "pr_auc")
        ]
        print(
            f"{name:<14} {len(splits):>2} {'/'.join(methods):<9} {cells[0]:>19} "
            f"{cells[1]:>19} {cells[2]:>17} {cells[3]:>15}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli())
