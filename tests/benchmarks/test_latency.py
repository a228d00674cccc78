from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_latency_decides_every_event_and_prints_percentiles(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark("latency.py", "--rates", "200", "--duration", "3", "--warmup", "0.5")
    assert re.search(r"decided 600 of 600\b", out), out
    assert re.search(r"p50 +\d+\.\d ms +p99 +\d+\.\d ms +max +\d+\.\d ms", out), out
    assert re.search(r"serve RSS: \d+\.\d MB after warm-up", out), out
    assert re.search(r"^ratio p99/goal at 200/s: \d+\.\d\d", out, re.M), out
