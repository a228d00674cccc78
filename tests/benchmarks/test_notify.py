from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_notify_benchmark_measures_both_sides_and_prints_its_ratios(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark("notify.py", "--alerts", "300", "--repeat", "1")
    for label in ("(a)", "(b)", "(c)"):
        assert re.search(rf"^{re.escape(label)} .* alerts/s .* lost 0, duplicates 0$", out, re.M), (
            out
        )
    for ratio in ("(b)/(a)", "(c)/(a)"):
        assert re.search(rf"^ratio {re.escape(ratio)}: \d+\.\d\d$", out, re.M), out
