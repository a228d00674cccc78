from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_features_serve_measures_every_store_and_prints_its_ratios(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark("features_serve.py", "--events", "3000", "--repeat", "1", timeout=600)
    for label in ("(c)", "(f)", "(g)"):
        assert re.search(rf"^{re.escape(label)} .* events/s", out, re.M), out
    for ratio in ("(f)/(c)", "(g)/(c)"):
        assert re.search(rf"^ratio {re.escape(ratio)}: \d+\.\d\d", out, re.M), out
    assert re.search(r"dead letters 0", out), out
    assert re.search(r"^redis: [\d.]+ MB for [\d,]+ keys", out, re.M), out


def test_behaviour_compares_live_with_validation(run_benchmark: Callable[..., str]) -> None:
    out = run_benchmark(
        "behaviour.py", "--technique", "none", "--model", "logistic", "--live-days", "3",
        timeout=900,
    )  # fmt: skip
    for name in ("behavioural", "raw fields"):
        assert re.search(rf"^{name} +.* \d\.\d\d\d +\d\.\d\d +\d\.\d\d$", out, re.M), out
    assert re.search(r"^live AP behavioural / raw fields: \d+\.\d\d", out, re.M), out
