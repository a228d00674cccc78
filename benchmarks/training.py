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

``--auto`` measures ``train --technique auto`` instead, on the simulator's history
(``stream-detector simulate --preset book``, cut to ``--auto-rows`` rows, default 100,000,
400,000 and all 1,760,239):

- at every size, ``train --technique auto`` (its search: successive halving on this much data)
  and then the winning candidate's own ``train`` (``--technique T --scorer S --model M``; a
  blend is measured against its costlier member's), each in its own child process: wall time
  and peak RSS, and their ratios (goals: auto <= 5x the winner's time, <= 1.5x its memory;
  on a loaded machine the CPU-time ratio is the one to read), and what each rung of auto's
  search cost (rows, candidates, wall and CPU seconds, from the manifest's ``selection.rungs``);
- how auto's time grows with the rows (ratio to the smallest size).

``--quality`` measures what halving costs in quality: on each data set of
``benchmarks/quality.py`` (shuttle and the simulator cut to 14,000 training rows), for seeds 0
and 1, the search is run twice on the same training rows, exhaustive and halving (with
``compare.min_rows: 100``: as many rungs as the data allows, harsher than the default), and the
candidate each picks is trained on all the training rows and scored on the held-out rows. It
prints the held-out average precision of both picks and their ratio (goal: >= 0.99 on average,
never below 0.97). ``--min-rows 0 --full`` measures what a user gets: the default
``compare.min_rows`` on the data sets whole (the small ones are then searched exhaustively, as
``auto`` does by default: leave them out with ``--datasets shuttle simulator``).

    python benchmarks/training.py --auto [--auto-rows 100000 400000 0] [--data FILE.csv]
    python benchmarks/training.py --quality [--datasets digits simulator] [--seeds 0 1]
                                  [--min-rows 100] [--full]
"""

from __future__ import annotations

import argparse
import json
import logging
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


# -- train --technique auto at scale ------------------------------------------------------------


def simulate(path: Path, rows: int) -> None:
    """The simulator's book-sized history, its first ``rows`` transactions (0: all)."""
    count = ["--count", str(rows)] if rows else []
    command = [sys.executable, "-m", "stream_detector", "simulate", "--preset", "book"]
    subprocess.run([*command, *count, "--output", str(path)], check=True, stdout=subprocess.DEVNULL)


def raw_fields_config(directory: Path) -> Path:
    """A training config that leaves the simulator's card and terminal ids out: the search is
    measured on the numeric fields as they are, not on the behavioural features."""
    path = directory / "train.yaml"
    path.write_text("data:\n  exclude: [customer_id, terminal_id]\n", encoding="utf-8")
    return path


def train_command(data: Path, out: Path, *flags: str) -> list[str]:
    """``stream-detector train`` on the simulator's label and numeric fields, quiet, seed 0."""
    return [
        *(sys.executable, "-m", "stream_detector", "train", "--data", str(data)),
        *("--config", str(raw_fields_config(out.parent))),
        *("--label", "is_fraud", "--out", str(out), "--seed", str(SEED), "--quiet", *flags),
    ]


def winner_flags(bundle: Path) -> list[str]:
    """The ``train`` flags of the candidate ``auto`` chose (a blend: its gradient-boosting
    member, the costlier one)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    members = manifest.get("members")
    if members:
        costly = next((m for m in members if m["model"] == "hgb"), members[0])
        scorer, model, technique = costly["scorer"], costly["model"], costly["technique"]
    else:
        scorer, model, technique = manifest["scorer"], manifest["model"], manifest["technique"]
    flags = ["--technique", technique, "--scorer", scorer]
    return flags + (["--model", model] if model else [])


def rung_costs(bundle: Path) -> None:
    """Print what each rung of ``auto``'s search cost (the manifest's ``selection.rungs``)."""
    selection = json.loads((bundle / "manifest.json").read_text()).get("selection", {})
    for i, cost in enumerate(selection.get("rungs", []), start=1):
        print(
            f"  rung {i}: {cost['candidates']:>2} candidates on {cost['rows']:>9,} rows "
            f"{cost['seconds']:8.1f} s ({cost['cpu_seconds']:.1f} s cpu)"
        )
    print(f"  search: {selection.get('search')}; picked: {selection.get('verdict')}")


def auto_scale(sizes: list[int], data: Path | None) -> None:
    """``train --technique auto`` against the winner's own ``train``, at each size."""
    table: list[tuple[int, Run, Run, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = Path(tmp) / f"history-{rows}.csv"
            if data is not None and rows == 0:
                path = data
            else:
                start = time.perf_counter()
                simulate(path, rows)
                print(f"simulated {rows or 'all'} rows in {time.perf_counter() - start:.0f} s")
            n = sum(1 for _ in path.open()) - 1
            print(
                f"== {n:,} rows: train --technique auto; load {os.getloadavg()[0]:.2f}", flush=True
            )
            auto = measure(train_command(path, Path(tmp) / f"auto-{rows}", "--technique", "auto"))
            rung_costs(Path(tmp) / f"auto-{rows}")
            flags = winner_flags(Path(tmp) / f"auto-{rows}")
            print(f"== {n:,} rows: train {' '.join(flags)}", flush=True)
            alone = measure(train_command(path, Path(tmp) / f"alone-{rows}", *flags))
            table.append((n, auto, alone, " ".join(flags)))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    base = table[0]
    for n, auto, alone, flags in table:
        print(
            f"{n:>10,} rows  auto {auto.seconds:8.1f} s ({auto.cpu_seconds:.1f} s cpu) "
            f"{auto.peak_rss_mb:6.0f} MB   winner ({flags}) {alone.seconds:8.1f} s "
            f"({alone.cpu_seconds:.1f} s cpu) {alone.peak_rss_mb:6.0f} MB"
        )
        print(
            f"ratio auto/winner at {n:,} rows: time {auto.seconds / alone.seconds:.2f} (goal <= 5), "
            f"cpu {auto.cpu_seconds / alone.cpu_seconds:.2f}, "
            f"peak RSS {auto.peak_rss_mb / alone.peak_rss_mb:.2f} (goal <= 1.5); "
            f"auto time {auto.seconds / base[1].seconds:.2f}x that at {base[0]:,} rows "
            f"({n / base[0]:.1f}x the rows)"
        )


# -- quality of the halving search ---------------------------------------------------------------


def pick_quality(datasets: list[str], seeds: list[int], min_rows: int, full: bool) -> None:
    """Held-out average precision of the halving search's pick against the exhaustive one's.

    ``min_rows`` is ``compare.min_rows`` for both searches (0: the configured default);
    ``full`` takes the data sets whole instead of cut to about 14,000 training rows."""
    sys.path.insert(0, str(Path(__file__).parent))

    import quality  # the data sets of benchmarks/quality.py
    from sklearn.metrics import average_precision_score

    from offline.compare import run_compare
    from offline.config import TrainSettings
    from offline.data import load_dataset

    logging.getLogger("offline").setLevel(logging.WARNING)
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in datasets:
            loaded = quality.DATASETS[name](not full)
            if loaded is None:
                continue
            label, splits = loaded
            for i, (train, test) in enumerate(splits[:2]):
                # Ids as text (the simulator's card and terminal) are left out, as in --auto.
                ids = [
                    c
                    for c in train.columns
                    if not pd.api.types.is_numeric_dtype(train[c]) and c not in (label, "timestamp")
                ]
                train.to_csv(Path(tmp) / "train.csv", index=False)
                test.to_csv(Path(tmp) / "test.csv", index=False)
                for seed in seeds:
                    picks = {}
                    for search in ("exhaustive", "halving"):
                        settings = TrainSettings.load(
                            overrides={
                                "seed": seed,
                                "compare": {"search": search}
                                | ({"min_rows": min_rows} if min_rows else {}),
                                "data": {"exclude": ids},
                            }
                        )
                        ds = load_dataset(Path(tmp) / "train.csv", label, settings.data)
                        start = time.perf_counter()
                        cmp = run_compare(ds, settings)
                        seconds = time.perf_counter() - start
                        est = cmp.winner.candidate.estimator(settings).fit(ds.X, ds.y)
                        held = test[list(ds.features)].to_numpy(dtype=np.float64)
                        scores = est.score_samples(held)
                        ap = float(average_precision_score(test[label].to_numpy(), scores))
                        picks[search] = (ap, cmp.winner.candidate.name, seconds, cmp.search)
                    (a, a_name, a_s, _), (b, b_name, b_s, how) = (
                        picks["exhaustive"],
                        picks["halving"],
                    )
                    ratios.append(b / a)
                    print(
                        f"{name} split {i} seed {seed} ({ds.n:,} rows; {how}): "
                        f"exhaustive {a:.4f} {a_name} ({a_s:.0f} s) | "
                        f"halving {b:.4f} {b_name} ({b_s:.0f} s) | ratio {b / a:.4f}",
                        flush=True,
                    )
    print(
        f"ratio halving/exhaustive held-out AP over {len(ratios)} runs: mean "
        f"{float(np.mean(ratios)):.4f}, min {min(ratios):.4f} (goals >= 0.99, >= 0.97)"
    )


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
    parser.add_argument("--data", help="with --plain: the data file; with --auto: the full history")
    parser.add_argument("--auto", action="store_true", help="train --technique auto at scale")
    parser.add_argument(
        "--auto-rows", type=int, nargs="+", default=[100_000, 400_000, 0], help="0: all rows"
    )
    parser.add_argument("--quality", action="store_true", help="halving's pick vs exhaustive's")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["breast_cancer", "digits", "diabetes", "shuttle", "simulator"],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--min-rows", type=int, default=100, help="--quality: compare.min_rows (0: the default)"
    )
    parser.add_argument(
        "--full", action="store_true", help="--quality: the data sets whole, not cut to 14,000"
    )
    args = parser.parse_args(argv)
    if args.plain is not None:
        plain(args.plain, args.data)
        return 0
    if args.auto:
        auto_scale(args.auto_rows, Path(args.data) if args.data else None)
        return 0
    if args.quality:
        pick_quality(args.datasets, args.seeds, args.min_rows, args.full)
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
