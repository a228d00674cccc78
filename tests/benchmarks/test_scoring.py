from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.slow


def test_scoring_prints_a_ratio_per_scorer_and_batch_size(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark("scoring.py", "--rows", "1", "100", "--repeat", "1", "--min-time", "0.01")
    for model in ("isolation_forest", "linear", "gbdt"):
        for rows in (1, 100):
            assert re.search(rf"^{model} +{rows} +[\d,]+ +[\d,]+ +[\d.]+x ", out, re.M), out
