from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_latency_measures_serve_beside_the_baseline_and_its_memory(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark(
        "latency.py",
        *("--rates", "200", "--duration", "3", "--warmup", "0.5", "--rounds", "1"),
        *("--rss-duration", "4", "--rss-rate", "100"),
    )
    assert re.search(r"200/s serve .*outputs for 600 of 600 events", out), out
    assert re.search(r"200/s baseline pipe .*outputs for 600 of 600 events", out), out
    assert len(re.findall(r"p50 +\d+\.\d ms +p99 +\d+\.\d ms +max +\d+\.\d ms", out)) == 4, out
    assert re.search(
        r"^at 200/s: serve p99 \d+\.\d ms, baseline pipe p99 \d+\.\d ms: "
        r"ratio serve/baseline \d+\.\d\d; p99/goal \d+\.\d\d",
        out,
        re.M,
    ), out
    assert re.search(
        r"^serve RSS over 4 s at 100/s \(400 of 400 events decided\): \d+\.\d MB after warm-up, "
        r"\d+\.\d MB at the end, max \d+\.\d MB; second half [+-]\d+\.\d\d MB/min",
        out,
        re.M,
    ), out
