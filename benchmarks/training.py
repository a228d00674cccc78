"""Cost of ``stream-detector train`` beside a plain scikit-learn script doing the same fits.

Generates a data set (default 1,000,000 rows x 30 features, 0.5% positives, seeded; Parquet,
no timestamp column so validation is stratified), then runs, each in its own child process:

- ``stream-detector train --technique smote --scorer classifier`` (StandardScaler -> SMOTE ->
  LogisticRegression) and ``--technique none --scorer anomaly`` (IsolationForest), with the
  default settings (``configs/train.yaml``: 5 stratified folds, seed 0, one thread);
- the plain script (``--plain smote|anomaly``): the same file read with pandas, the same
  ``StratifiedKFold(5, shuffle=True, random_state=0)``, the same estimators with the same
  parameters fitted on each fold's training rows and scoring its validation rows, the
  threshold of best F1 on the out-of-fold scores, then the final fit on every row. The
  same native thread limit (one) applies.

What ``train`` adds on top is its own cost: data checks, per-fold metrics, the threshold
policy, compiling the model to a run-time scorer (checked against scikit-learn on 2,000 rows),
the training medians and writing the bundle. Wall time, CPU time and peak RSS are taken per
child (``os.wait4``); ``--repeat`` runs each pair again and keeps the fastest.

    python benchmarks/training.py [--rows 1000000] [--features 30] [--positives 0.005]
                                  [--which smote anomaly] [--repeat 1]

Goal: train <= 1.2x the plain script in time and in memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "is_fraud"
SEED = 0
FOLDS = 5


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def generate(path: Path, rows: int, features: int, positives: float) -> int:
    """Gaussian features; positives shifted on the first five. Returns the positive count."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((rows, features))
    y = np.zeros(rows, dtype=np.int8)
    pos = rng.choice(rows, size=max(FOLDS * 2, round(rows * positives)), replace=False)
    y[pos] = 1
    X[pos, : min(5, features)] += 1.5
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    frame[LABEL] = y
    frame.to_parquet(path, index=False)
    return int(y.sum())


def measure(command: list[str]) -> Run:
    """Run a child to completion; its wall time, CPU time and peak RSS (from ``wait4``)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} exited with code {child.returncode}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def plain(kind: str, data: str) -> None:
    """The plain imbalanced-learn / scikit-learn script: the fits ``train`` does, nothing else."""
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, precision_recall_curve
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    frame = pd.read_parquet(data)
    y = frame[LABEL].to_numpy(dtype=np.int64)
    X = frame.drop(columns=[LABEL]).to_numpy(dtype=np.float64)
    del frame

    def model() -> Pipeline | IsolationForest:
        if kind == "smote":
            return Pipeline(
                [
                    ("scale", StandardScaler()),
                    ("resample", SMOTE(k_neighbors=5, random_state=SEED)),
                    ("model", LogisticRegression(C=1.0, max_iter=1000, random_state=SEED)),
                ]
            )
        return IsolationForest(n_estimators=100, random_state=SEED)

    def score(fitted: Pipeline | IsolationForest, rows: np.ndarray) -> np.ndarray:
        if kind == "smote":
            return np.asarray(fitted.decision_function(rows))
        return -np.asarray(fitted.score_samples(rows))

    with threadpool_limits(1):
        oof = np.empty(y.size)
        folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
        for i, (train, val) in enumerate(folds.split(X, y), start=1):
            fitted = model().fit(X[train], y[train])
            oof[val] = score(fitted, X[val])
            print(f"  plain {kind}: fold {i}/{FOLDS}", file=sys.stderr, flush=True)
        precision, recall, _ = precision_recall_curve(y, oof)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        print(
            f"  plain {kind}: PR-AUC {average_precision_score(y, oof):.4f} best F1 {f1.max():.4f}",
            file=sys.stderr,
            flush=True,
        )
        model().fit(X, y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--positives", type=float, default=0.005, help="positive rate")
    parser.add_argument("--which", nargs="+", choices=["smote", "anomaly"], default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest kept")
    parser.add_argument(
        "--plain", choices=["smote", "anomaly"], help="run only the plain script on --data"
    )
    parser.add_argument("--data", help="with --plain: the data file")
    args = parser.parse_args(argv)
    if args.plain is not None:
        plain(args.plain, args.data)
        return 0
    which = args.which or ["smote", "anomaly"]
    flags = {
        "smote": ["--technique", "smote", "--scorer", "classifier"],
        "anomaly": ["--technique", "none", "--scorer", "anomaly"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.parquet"
        start = time.perf_counter()
        n_pos = generate(data, args.rows, args.features, args.positives)
        print(
            f"{args.rows:,} rows x {args.features} features, {n_pos:,} positives "
            f"({n_pos / args.rows:.2%}), generated in {time.perf_counter() - start:.1f} s; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results: dict[str, tuple[Run, Run]] = {}
        for kind in which:
            ours: list[Run] = []
            theirs: list[Run] = []
            for r in range(args.repeat):
                out = Path(tmp) / f"bundle-{kind}-{r}"
                print(f"== {kind}: stream-detector train", flush=True)
                ours.append(
                    measure(
                        [
                            sys.executable,
                            "-m",
                            "stream_detector",
                            "train",
                            "--data",
                            str(data),
                            "--label",
                            LABEL,
                            "--out",
                            str(out),
                            *flags[kind],
                            "--seed",
                            str(SEED),
                        ]
                    )
                )
                print(f"== {kind}: plain script", flush=True)
                theirs.append(
                    measure([sys.executable, __file__, "--plain", kind, "--data", str(data)])
                )
            best = (min(ours, key=lambda m: m.seconds), min(theirs, key=lambda m: m.seconds))
            results[kind] = best
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        names = {"smote": "SMOTE + LogisticRegression", "anomaly": "IsolationForest"}
        for kind, (a, b) in results.items():
            for who, run in (("train", a), ("plain", b)):
                print(
                    f"{names[kind]:<28}{who:<7}{run.seconds:8.1f} s wall  "
                    f"{run.cpu_seconds:8.1f} s cpu  {run.peak_rss_mb:8.0f} MB peak RSS"
                )
            print(
                f"ratio train/plain ({kind}): time {a.seconds / b.seconds:.2f}, "
                f"cpu {a.cpu_seconds / b.cpu_seconds:.2f}, "
                f"peak RSS {a.peak_rss_mb / b.peak_rss_mb:.2f}   (goal <= 1.2)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
