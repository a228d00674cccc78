from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream_detector.errors import DataError
from stream_detector.features import FeatureSpec
from stream_detector.history import history_columns, read_labels

SPEC = FeatureSpec.parse(
    {
        "numeric": ["amount"],
        "windows": [
            {"key": "card", "windows": ["1h"], "field": "amount", "stats": ["mean"]},
            {"key": "card", "windows": ["1h"], "distinct": "shop"},
        ],
    }
)


def frame(**changes: object) -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "event_id": ["c", "a", "b", "d"],
            "card": [7, 7, 8, 7],
            "shop": ["s1", "s2", "s1", "s1"],
            "amount": [1.0, 2.0, 3.0, 4.0],
            "timestamp": ["2024-01-01T00:00:02Z", "2024-01-01T00:00:01Z", "2024-01-01T00:00:01Z",
                          "2024-01-01T00:00:03Z"],
        }
    )  # fmt: skip
    return base.assign(**changes)


def test_rows_sorted_by_time_then_event_id_keys_as_strings() -> None:
    cols = history_columns(frame(), SPEC)
    assert cols.order.tolist() == [1, 2, 0, 3]
    assert cols.events["event_id"].tolist() == ["a", "b", "c", "d"]
    assert cols.events["card"].tolist() == ["7", "8", "7", "7"]
    assert cols.events["timestamp"].tolist() == [1704067201000 + i for i in (0, 0, 1000, 2000)]
    np.testing.assert_array_equal(cols.events["amount"], [2.0, 3.0, 1.0, 4.0])
    assert cols.part(1, 3)["event_id"].tolist() == ["b", "c"]


def test_without_event_ids_rows_are_named_after_their_row() -> None:
    cols = history_columns(frame().drop(columns="event_id"), SPEC)
    assert cols.events["event_id"].tolist() == ["row-1", "row-2", "row-0", "row-3"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"card": [7, None, 8, 7]}, "key column 'card' has 1 missing values"),
        ({"card": [7.5, 7, 8, 7]}, "key column 'card' must hold strings or integers"),
        ({"timestamp": ["x", "y", "z", "w"]}, "column 'timestamp' must hold ISO 8601"),
        ({"timestamp": [1, None, 2, 3]}, "column 'timestamp' has 1 missing values"),
        ({"amount": ["a", "b", "c", "d"]}, "reads 'amount' as a number"),
    ],
)
def test_bad_columns_are_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        history_columns(frame(**changes), SPEC, source="data file h.csv")


def test_a_missing_field_is_named() -> None:
    with pytest.raises(DataError) as info:
        history_columns(frame().drop(columns="shop"), SPEC, source="data file h.csv")
    assert str(info.value).startswith(
        "data file h.csv: the feature spec reads field 'shop', which is not a column"
    )


def test_read_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"event_id": "a", "label": 1, "timestamp": "2024-01-01T00:00:01Z"}\n\n'
        '{"event_id": "b", "label": 0, "timestamp": 5}\n'
    )
    labels = read_labels(path)
    assert labels["event_id"].tolist() == ["a", "b"]
    assert labels["label"].tolist() == [1, 0]
    assert labels["known_at"].tolist() == [1704067201000, 5]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"event_id": "a", "label": 1}', "line 1: no timestamp"),
        ('{"event_id": "a", "label": 2, "timestamp": 1}', "line 1: "),
        ("not json", "line 1: "),
        ('{"event_id": "a", "label": 1, "timestamp": "soon"}', "line 1: "),
    ],
)
def test_bad_label_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DataError, match=message):
        read_labels(path)
    with pytest.raises(DataError, match="cannot read label file"):
        read_labels(tmp_path / "none.jsonl")
