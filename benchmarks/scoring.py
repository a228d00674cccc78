"""Throughput of the compiled scorers against scikit-learn, on the same model and the same rows.

Fits three models on River's shuttle data (49,097 rows, 9 features): IsolationForest
(n_estimators=100, random_state=0), StandardScaler + LogisticRegression, and
HistGradientBoostingClassifier. For each batch size it times our compiled scorer and
scikit-learn's own scoring (``-score_samples``, ``predict_proba[:, 1]``) on the first rows of
the data, takes the best of several timeit-style repeats, and prints rows per second and the
ratio ours / scikit-learn (above 1 means the compiled scorer is faster). The last column is
the largest difference between the two scores on that batch.

    python benchmarks/scoring.py [--rows 1 10 100 1000 10000] [--repeat 7] [--min-time 0.2]
                                 [--sklearn-threads N] [--clock wall|cpu]

Timings are wall clock. scikit-learn's HistGradientBoosting predicts with every core through
OpenMP, the compiled scorers with one; ``--sklearn-threads 1`` compares one core with one core.
On a busy machine wall-clock figures are noisy (OpenMP suffers most; the load average is
printed); ``--sklearn-threads 1 --clock cpu`` times CPU seconds of this process instead, which
the other processes disturb much less.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
import timeit
from collections.abc import Callable
from functools import partial
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from stream_detector.scoring import (
    GradientBoostingScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
)

Array = npt.NDArray[np.float64]


def load_shuttle() -> tuple[Array, Array]:
    """Features and labels of River's shuttle data set."""
    spec = find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("river is not installed; it ships the shuttle data")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "shuttle.csv.gz"
    with gzip.open(path, "rt") as text:
        data = np.loadtxt(text, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1]


def best_seconds(
    call: Callable[[], object], *, repeat: int, min_time: float, clock: Callable[[], float]
) -> float:
    """Best time of one call over ``repeat`` runs of enough calls to last ``min_time``."""
    timer = timeit.Timer(call, timer=clock)
    number, elapsed = timer.autorange()
    number = max(1, int(number * min_time / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the best is kept")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repeat")
    parser.add_argument(
        "--sklearn-threads", type=int, default=None, help="OpenMP threads for scikit-learn"
    )
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    timing = {"repeat": args.repeat, "min_time": args.min_time, "clock": clock}

    X, y = load_shuttle()
    iforest = IsolationForest(n_estimators=100, random_state=0).fit(X)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    hgb = HistGradientBoostingClassifier(random_state=0).fit(X, y)
    models: list[tuple[str, Scorer, Callable[[Array], Array]]] = [
        ("isolation_forest", IsolationForestScorer.from_sklearn(iforest), iforest.score_samples),
        ("linear", LinearScorer.from_sklearn(linear), lambda r: linear.predict_proba(r)[:, 1]),
        ("gbdt", GradientBoostingScorer.from_sklearn(hgb), lambda r: hgb.predict_proba(r)[:, 1]),
    ]

    threads = args.sklearn_threads or "all"
    print(
        f"shuttle {X.shape[0]} x {X.shape[1]}; {os.cpu_count()} CPUs; scikit-learn threads: "
        f"{threads}; {args.clock} clock; load average {os.getloadavg()[0]:.2f}"
    )
    header = f"{'model':<17} {'rows':>6} {'ours rows/s':>13} {'sklearn rows/s':>15} {'ratio':>9}"
    print(header + f" {'max |diff|':>11}")
    print("-" * (len(header) + 12))
    for name, scorer, reference in models:
        for n in args.rows:
            rows = np.resize(X, (n, X.shape[1]))  # the first n rows, repeated if n > 49,097
            expected = reference(rows)
            if name == "isolation_forest":
                expected = -expected
            diff = float(np.abs(scorer.score_samples(rows) - expected).max())
            ours = best_seconds(partial(scorer.score_samples, rows), **timing)
            with threadpool_limits(limits=args.sklearn_threads, user_api="openmp"):
                theirs = best_seconds(partial(reference, rows), **timing)
            print(
                f"{name:<17} {n:>6} {n / ours:>13,.0f} {n / theirs:>15,.0f} "
                f"{theirs / ours:>8.1f}x {diff:>11.1e}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
