"""CSV and JSON Lines files of simulated transactions, read back with pandas and orjson."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stream_detector.errors import ConfigError, DataError
from stream_detector.simulate import (
    ALL_COLUMNS,
    TRAINING_COLUMNS,
    Transactions,
    TransactionSimulator,
)
from stream_detector.simulate.output import infer_format, write_csv, write_jsonl


@pytest.fixture(scope="module")
def tx() -> Transactions:
    return TransactionSimulator.from_preset("demo", random_state=8).generate(start_day=25, n_days=2)


@pytest.mark.parametrize("columns", [TRAINING_COLUMNS, ALL_COLUMNS])
def test_csv_reads_back_exactly(tx: Transactions, tmp_path: Path, columns: tuple[str, ...]) -> None:
    path = tmp_path / "history.csv"
    assert write_csv(tx, path, columns=columns) == len(tx)
    frame = pd.read_csv(path)
    assert list(frame.columns) == list(columns)
    assert len(frame) == len(tx)
    assert tx.n_frauds > 0
    for name in columns:
        np.testing.assert_array_equal(frame[name].to_numpy(), tx[name], err_msg=name)


def test_jsonl_events_read_back_exactly_and_hold_no_label(tx: Transactions, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert write_jsonl(tx.iter_events(), path) == len(tx)
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == list(tx.iter_events())
    assert all(b'"is_fraud"' not in line for line in lines)


def test_jsonl_to_a_text_stream_matches_the_file(tx: Transactions, tmp_path: Path) -> None:
    text = io.StringIO()
    labels = list(tx.head(20).iter_labels(delay_ms=1000))
    write_jsonl(labels, text)
    write_jsonl(labels, tmp_path / "labels.jsonl")
    assert text.getvalue().encode() == (tmp_path / "labels.jsonl").read_bytes()
    assert orjson.loads(text.getvalue().splitlines()[0]) == labels[0]


def test_unwritable_path_is_a_data_error(tx: Transactions, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "out.csv"
    with pytest.raises(DataError, match=r"cannot write .*out\.csv: No such file or directory"):
        write_csv(tx, missing)
    with pytest.raises(DataError, match=r"cannot write .*out\.csv"):
        write_jsonl(tx.iter_events(), missing)


@given(
    stem=st.text(st.characters(blacklist_characters="/\x00"), min_size=1, max_size=20),
    suffix=st.sampled_from([".csv", ".CSV", ".jsonl", ".json", ".ndjson", ".JSONL"]),
)
def test_format_follows_the_suffix(stem: str, suffix: str) -> None:
    expected = "csv" if suffix.lower() == ".csv" else "jsonl"
    assert infer_format(f"out/{stem}{suffix}") == expected


@given(suffix=st.text(st.characters(whitelist_categories=["Ll", "Nd"]), max_size=6))
def test_unknown_suffixes_are_config_errors(suffix: str) -> None:
    assume(f".{suffix}" not in {".csv", ".jsonl", ".json", ".ndjson"})
    with pytest.raises(ConfigError, match="cannot tell the format of"):
        infer_format(f"data.{suffix}" if suffix else "data")
