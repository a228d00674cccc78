"""A finished comparison read back: the same winner and scores, refused on other data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offline.compare import run_compare
from offline.compare_record import read_compare_record, write_compare_record
from offline.config import TrainSettings
from offline.data import Dataset
from stream_detector.errors import DataError

FEATURES = ("amount", "hour", "distance", "velocity")


def dataset(frame: pd.DataFrame) -> Dataset:
    return Dataset(
        X=frame[list(FEATURES)].to_numpy(float),
        y=frame["is_fraud"].to_numpy(np.int64),
        features=FEATURES,
        label="is_fraud",
    )


def test_round_trip_keeps_the_winner_and_its_scores(
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Callable[..., TrainSettings],
) -> None:
    ds = dataset(make_data(300, seed=4))
    settings = make_settings(compare={"techniques": ["none", "random_over"]})
    cmp = run_compare(ds, settings)
    write_compare_record(tmp_path, cmp)
    record = read_compare_record(tmp_path, ds)
    assert record.candidate == cmp.winner.candidate
    np.testing.assert_array_equal(record.mask, cmp.mask)
    assert cmp.winner.scores is not None
    np.testing.assert_array_equal(record.scores[record.mask], cmp.winner.scores[cmp.mask])
    assert record.verdict == cmp.verdict()
    assert [r["pr_auc"] for r in record.ranking] == [r["pr_auc"] for r in cmp.rows()]


def test_other_data_and_missing_records_are_refused(
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Callable[..., TrainSettings],
) -> None:
    frame = make_data(300, seed=5)
    ds = dataset(frame)
    cmp = run_compare(ds, make_settings(compare={"techniques": ["none"], "models": ["logistic"]}))
    write_compare_record(tmp_path, cmp)
    changed = frame.copy()
    changed.loc[7, "amount"] += 1.0
    with pytest.raises(DataError, match="compared other data \\(different rows or values\\)"):
        read_compare_record(tmp_path, dataset(changed))
    with pytest.raises(DataError, match="compared other data \\(300 rows\\)"):
        read_compare_record(tmp_path, dataset(make_data(250, seed=5)))
    with pytest.raises(DataError, match="holds no finished comparison"):
        read_compare_record(tmp_path / "nowhere", ds)
