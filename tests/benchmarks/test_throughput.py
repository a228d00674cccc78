from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_throughput_runs_every_measurement_and_prints_its_ratios(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark("throughput.py", "--events", "3000", "--repeat", "1")
    for label in ("(a)", "(b)", "(b')", "(c)", "(d)", "(e)"):
        assert re.search(rf"^{re.escape(label)} .* events/s", out, re.M), out
    for ratio in ("(c)/(b)", "(d)/(a)", "(e)/(c)"):
        assert re.search(rf"^ratio {re.escape(ratio)}: \d+\.\d\d", out, re.M), out
    assert "lost 0, duplicates" in out, out
