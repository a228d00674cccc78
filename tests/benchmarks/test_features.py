from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.slow


def test_features_compares_with_pandas_and_times_both_stores(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark(
        "features.py",
        "--events",
        "20000",
        "--exact-rows",
        "2000",
        "--online-events",
        "30000",
        "--batches",
        "4",
    )
    assert re.search(r"time ratio ours/pandas \d+\.\d\d, peak memory ratio \d+\.\d\d", out), out
    difference = re.search(r"max \|difference\| (\S+)", out)
    assert difference is not None, out
    assert float(difference.group(1)) < 1e-6, out
    # every sampled sum, mean, standard deviation and ratio is the exact value's nearest float
    assert "exact arithmetic on 2,000 sampled events" in out, out
    section = out.split("exact arithmetic on", 1)[1].split("online:", 1)[0]
    exact = re.findall(r"^    (customer_id\.amount\.\w+\.\w+) +(\d+)(?:,|$)", section, re.M)
    assert {name.split(".")[2] for name, _ in exact} == {"count", "sum", "mean", "std", "ratio"}
    assert all(rows == "0" for _, rows in exact), out
    assert re.search(r"MemoryStore: \d+\.\d us/event", out), out
    assert re.search(r"RedisStore: \d+\.\d us/event", out), out
    assert re.search(r"Redis/memory time ratio \d+\.\d\d", out), out
    assert re.search(r"customer_id: \d+ bytes per key", out), out
