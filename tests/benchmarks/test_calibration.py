from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.slow


def test_calibration_prints_before_and_after_per_data_set(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark(
        "calibration.py", "--datasets", "breast_cancer", "--quick", "--model", "logistic"
    )
    number = r"[\d.]+ -> [\d.]+"
    change = r"[+-][\d.]+ \+- [\d.]+"  # held-out log loss, calibrated - not, and its SE
    line = rf"^breast_cancer +3 +[a-z/]+ +{number} +{number} +[\d.]+ +{number} +{change} +{number}$"
    assert re.search(line, out, re.M), out
