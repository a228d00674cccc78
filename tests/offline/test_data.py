"""Loading and checking data files: every bad input a user can cause has a clear error."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offline.config import DataSettings
from offline.data import load_dataset, read_table
from stream_detector.errors import DataError

Write = Callable[..., Path]


def small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d", "e"],
            "amount": [10.0, 250.0, 12.0, 9.5, 300.0],
            "hour": [3, 2, 4, 14, 1],
            "is_fraud": [0, 1, 0, 0, 1],
        }
    )


def load_error(path: Path, label: str = "is_fraud", **settings: object) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(path, label, DataSettings(**settings))  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_csv_and_parquet_load_the_same(write_csv: Write) -> None:
    a = load_dataset(write_csv(small(), "d.csv"), "is_fraud")
    b = load_dataset(write_csv(small(), "d.parquet"), "is_fraud")
    assert a.features == b.features == ("amount", "hour")
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, [0, 1, 0, 0, 1])
    assert a.timestamps is None
    assert a.amount is not None
    assert a.amount.tolist() == [10.0, 250.0, 12.0, 9.5, 300.0]


def test_gzipped_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv.gz"
    with gzip.open(path, "wt") as fh:
        small().to_csv(fh, index=False)
    assert load_dataset(path, "is_fraud").n == 5


def test_missing_file(tmp_path: Path) -> None:
    assert load_error(tmp_path / "nope.csv") == f"data file {tmp_path / 'nope.csv'} does not exist"


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert "is not a regular file" in load_error(tmp_path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    assert "must be CSV" in load_error(path)
    assert "'.xlsx'" in load_error(path)


def test_empty_and_corrupt_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert load_error(empty) == f"data file {empty} is empty"
    header_only = tmp_path / "h.csv"
    header_only.write_text("a,is_fraud\n")
    assert load_error(header_only) == f"data file {header_only} has no rows"
    corrupt = tmp_path / "c.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    assert f"data file {corrupt} cannot be read" in load_error(corrupt)
    binary = tmp_path / "b.csv.gz"
    binary.write_bytes(b"\x00\x01 not gzip")
    assert f"data file {binary} cannot be read" in load_error(binary)


def test_label_column_absent(write_csv: Write) -> None:
    message = load_error(write_csv(small()), label="fraud")
    assert message.startswith("label column 'fraud' is not in data file")
    assert "event_id, amount, hour, is_fraud" in message


@pytest.mark.parametrize(
    ("values", "found"),
    [
        ([0, 1, 2, 0, 1], "found values 0, 1, 2"),
        (["no", "yes", "no", "no", "yes"], "found values 'no', 'yes'"),
        ([0.0, 0.5, 1.0, 0.0, 1.0], "found values 0.0, 0.5, 1.0"),
        ([-1, 1, 1, -1, 1], "found values -1, 1"),
    ],
)
def test_label_not_binary_says_what_was_found(write_csv: Write, values: list, found: str) -> None:
    frame = small().assign(is_fraud=values)
    message = load_error(write_csv(frame))
    assert message == f"label column 'is_fraud' must hold only 0 and 1; {found}"


def test_label_bool_and_float_01_are_fine(write_csv: Write) -> None:
    for values in ([False, True, False, False, True], [0.0, 1.0, 0.0, 0.0, 1.0]):
        ds = load_dataset(write_csv(small().assign(is_fraud=values)), "is_fraud")
        assert ds.y.tolist() == [0, 1, 0, 0, 1]


def test_label_missing_values(write_csv: Write) -> None:
    frame = small().assign(is_fraud=[0, 1, None, 0, 1])
    assert load_error(write_csv(frame)) == (
        "label column 'is_fraud' has 1 missing values; every row needs a label 0 or 1"
    )


def test_non_numeric_columns_are_named(write_csv: Write) -> None:
    frame = small().assign(merchant=["x", "y", "z", "x", "y"], country=["FR"] * 5)
    message = load_error(write_csv(frame))
    assert "not numeric: ['merchant', 'country']" in message
    assert "data.exclude" in message
    ds = load_dataset(write_csv(frame), "is_fraud", DataSettings(exclude=("merchant", "country")))
    assert ds.features == ("amount", "hour")


def test_no_feature_columns(write_csv: Write) -> None:
    frame = small()[["event_id", "is_fraud"]].assign(timestamp=np.arange(5) * 1000)
    message = load_error(write_csv(frame))
    assert message.startswith("no feature columns: besides the label 'is_fraud'")


def test_identifiers_are_never_features(write_csv: Write) -> None:
    frame = small().assign(entity_id=[1, 2, 3, 4, 5], timestamp=[5, 4, 3, 2, 1])
    ds = load_dataset(write_csv(frame), "is_fraud")
    assert ds.features == ("amount", "hour")


def test_missing_values_refused_by_default(write_csv: Write) -> None:
    frame = small().assign(amount=[10.0, None, 12.0, np.inf, 300.0], hour=[3, 2, None, 1, 1])
    message = load_error(write_csv(frame))
    assert message == (
        "feature columns have missing or infinite values: 'amount' (2), 'hour' (1); "
        "fill them, or set data.missing: impute_median in the config"
    )


def test_missing_values_imputed_with_medians_and_logged(
    write_csv: Write, caplog: pytest.LogCaptureFixture
) -> None:
    frame = small().assign(amount=[10.0, None, 12.0, 9.5, 300.0])
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(write_csv(frame), "is_fraud", DataSettings(missing="impute_median"))
    assert ds.X[1, 0] == np.median([10.0, 12.0, 9.5, 300.0])
    assert ds.notes["imputed_values"] == {"amount": 1}
    assert "imputed missing values with column medians: 'amount' (1)" in caplog.text


def test_imputing_from_given_values(write_csv: Write) -> None:
    frame = small().assign(amount=[10.0, None, 12.0, 9.5, 300.0])
    ds = load_dataset(
        write_csv(frame),
        "is_fraud",
        DataSettings(missing="impute_median"),
        features=["hour", "amount"],
        fill_values=[0.0, 42.0],
    )
    assert ds.features == ("hour", "amount")
    assert ds.X[1].tolist() == [2.0, 42.0]


def test_constant_columns_dropped_with_a_warning(
    write_csv: Write, caplog: pytest.LogCaptureFixture
) -> None:
    frame = small().assign(currency=[1] * 5)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(write_csv(frame), "is_fraud")
    assert ds.features == ("amount", "hour")
    assert ds.notes["dropped_constant_columns"] == ["currency"]
    assert "dropped constant feature columns: ['currency']" in caplog.text


def test_constant_columns_refused_when_configured(write_csv: Write) -> None:
    frame = small().assign(currency=[1] * 5)
    message = load_error(write_csv(frame), constant_columns="refuse")
    assert message == (
        "feature columns are constant: ['currency']; remove them, or set "
        "data.constant_columns: drop in the config"
    )


def test_all_constant_is_no_feature(write_csv: Write) -> None:
    frame = small().assign(amount=[1.0] * 5, hour=[2] * 5)
    assert load_error(write_csv(frame)) == (
        "no feature columns: every feature column is constant (['amount', 'hour'])"
    )


def test_given_features_must_exist(write_csv: Write) -> None:
    with pytest.raises(DataError, match=r"feature columns missing from the data: \['velocity'\]"):
        load_dataset(write_csv(small()), "is_fraud", features=["amount", "velocity"])


def test_iso_timestamps_sort_rows(write_csv: Write) -> None:
    frame = small().assign(
        timestamp=[
            "2024-01-03T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-01-02T12:00:00+02:00",
            "2024-01-01T00:00:00Z",
            "2024-01-05T00:00:00Z",
        ]
    )
    ds = load_dataset(write_csv(frame), "is_fraud")
    assert ds.X[:, 0].tolist() == [250.0, 9.5, 12.0, 10.0, 300.0]  # stable for equal times
    assert ds.timestamps is not None
    assert ds.timestamps[0] == pd.Timestamp("2024-01-01T00:00:00Z").value // 1_000_000
    assert np.all(np.diff(ds.timestamps) >= 0)
    assert ds.amount is not None
    assert ds.amount.tolist() == ds.X[:, 0].tolist()


def test_epoch_millisecond_timestamps(write_csv: Write) -> None:
    frame = small().assign(timestamp=[5000, 1000, 3000, 2000, 4000])
    ds = load_dataset(write_csv(frame), "is_fraud")
    assert ds.timestamps is not None
    assert ds.timestamps.tolist() == [1000, 2000, 3000, 4000, 5000]
    assert ds.y.tolist() == [1, 0, 0, 1, 0]


def test_bad_timestamps(write_csv: Write) -> None:
    frame = small().assign(timestamp=["yesterday", "x", "y", "z", "w"])
    message = load_error(write_csv(frame))
    assert message == (
        "column 'timestamp' must hold ISO 8601 times or epoch milliseconds; got e.g. 'yesterday'"
    )


def test_read_table_returns_frame(write_csv: Write) -> None:
    assert list(read_table(write_csv(small())).columns) == list(small().columns)
