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


def test_training_measures_auto_against_the_winner(run_benchmark: Callable[..., str]) -> None:
    out = run_benchmark("training.py", "--auto", "--auto-rows", "3000", timeout=900.0)
    assert re.search(
        r"^ratio auto/winner at [\d,]+ rows: time \d+\.\d\d \(goal <= 5\), "
        r"cpu \d+\.\d\d, peak RSS \d+\.\d\d \(goal <= 1\.5\)",
        out,
        re.M,
    ), out


def test_training_measures_the_quality_of_the_halving_pick(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark(
        "training.py", "--quality", "--datasets", "diabetes", "--seeds", "0", timeout=900.0
    )
    assert re.search(r"^diabetes split 0 seed 0 \([\d,]+ rows; successive halving, ", out, re.M)
    assert re.search(
        r"^ratio halving/exhaustive held-out AP over 2 runs: mean \d\.\d{4}, min \d\.\d{4}",
        out,
        re.M,
    ), out
