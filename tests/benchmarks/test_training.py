from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.slow


def test_training_compares_train_with_the_plain_script(run_benchmark: Callable[..., str]) -> None:
    out = run_benchmark("training.py", "--rows", "4000", "--features", "4", "--positives", "0.02")
    assert "4,000 rows x 4 features, 80 positives" in out, out
    for kind in ("smote", "anomaly"):
        assert re.search(
            rf"^ratio train/plain \({kind}\): time \d+\.\d\d, cpu \d+\.\d\d, peak RSS \d+\.\d\d",
            out,
            re.M,
        ), out
