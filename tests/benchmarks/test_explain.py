from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.slow


def test_explain_prints_both_costs_and_the_additivity_error(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark("explain.py", "--rows", "1", "10", "--repeat", "1", "--min-time", "0.01")
    for model in ("isolation_forest", "gbdt", "linear"):
        for rows in (1, 10):
            line = re.search(
                rf"^{model} +\d+ +{rows} +[\d,.]+ +[\d,.]+ +[\d.]+x +(\S+)$", out, re.M
            )
            assert line, out
            assert float(line.group(1)) < 1e-9
