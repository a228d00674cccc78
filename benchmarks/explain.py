"""Cost of the reasons of an alert: additive attributions (TreeSHAP) against occlusion.

Fits on River's shuttle data (49,097 rows, 9 features) an IsolationForest of 100 trees
(random_state=0), a HistGradientBoostingClassifier of 100 trees (early stopping off) and a
StandardScaler + LogisticRegression, compiles them, and for each batch size times
``top_reasons`` (additive contributions: TreeSHAP for the trees) and ``occlusion_reasons`` (the
method it replaces: the score again with each feature set to its median) on the first
anomalous rows, the way alerts are explained. Prints the cost per alert of each and the ratio
(above 1: the additive reasons are dearer), and how far the contributions are from adding up
(largest ``|sum of contributions - (score - baseline)|`` over the batch).

    python benchmarks/explain.py [--rows 1 10 100] [--repeat 5] [--min-time 0.2]
                                 [--clock wall|cpu]

``--clock cpu`` times CPU seconds of this process, which other processes on a busy machine
disturb much less than the wall clock.
"""

from __future__ import annotations

import argparse
import os
import time
import timeit
from collections.abc import Callable
from functools import partial

import numpy as np
from scoring import load_shuttle
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
    top_reasons,
)
from stream_detector.scoring.explain import occlusion_reasons


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
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=5, help="repeats; the best is kept")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repeat")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    X, y = load_shuttle()
    with threadpool_limits(limits=1, user_api="openmp"):
        iforest = IsolationForest(n_estimators=100, random_state=0).fit(X)
        hgb = HistGradientBoostingClassifier(
            max_iter=100, early_stopping=False, random_state=0
        ).fit(X, y)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    models: list[tuple[str, Scorer]] = [
        ("isolation_forest", IsolationForestScorer.from_sklearn(iforest)),
        ("gbdt", GradientBoostingScorer.from_sklearn(hgb)),
        ("linear", LinearScorer.from_sklearn(linear)),
    ]
    reference = np.median(X, axis=0)
    names = [f"f{i}" for i in range(1, X.shape[1] + 1)]
    alerts = X[y == 1]

    print(
        f"shuttle {X.shape[0]} x {X.shape[1]}; {os.cpu_count()} CPUs; {args.clock} clock; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'model':<17} {'trees':>5} {'rows':>5} {'additive us/alert':>18} "
        f"{'occlusion us/alert':>19} {'ratio':>7} {'max |sum err|':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, scorer in models:
        trees = getattr(getattr(scorer, "trees", None), "n_trees", 0)
        top_reasons(scorer, alerts[:2], reference, names)  # compile before timing
        for n in args.rows:
            rows = np.resize(alerts, (n, X.shape[1]))
            scores = scorer.attribute(rows, reference).scores()
            error = float(np.abs(scores.phi.sum(axis=1) - (scores.output - scores.base)).max())
            timing = {"repeat": args.repeat, "min_time": args.min_time, "clock": clock}
            additive = best_seconds(partial(top_reasons, scorer, rows, reference, names), **timing)
            occlusion = best_seconds(
                partial(occlusion_reasons, scorer, rows, reference, names), **timing
            )
            print(
                f"{name:<17} {trees:>5} {n:>5} {1e6 * additive / n:>18,.1f} "
                f"{1e6 * occlusion / n:>19,.1f} {additive / occlusion:>6.2f}x {error:>14.1e}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
