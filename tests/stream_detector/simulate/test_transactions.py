"""The columnar container of simulated transactions: shape, events, labels, column sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stream_detector.errors import DataError
from stream_detector.features import IDENTIFIER_COLUMNS, NumericFeatures
from stream_detector.simulate import (
    ALL_COLUMNS,
    DEFAULT_FEATURES,
    EVENT_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    TRAINING_COLUMNS,
    Transactions,
    TransactionSimulator,
)


@pytest.fixture(scope="module")
def tx() -> Transactions:
    return TransactionSimulator.from_preset("demo", random_state=21).generate(
        start_day=30, n_days=2
    )


def test_events_carry_identifiers_and_features_but_no_label(tx: Transactions) -> None:
    events = list(tx.iter_events())
    assert len(events) == len(tx)
    assert all(list(event) == list(EVENT_COLUMNS) for event in events)
    first = events[0]
    assert LABEL_COLUMN not in first
    assert "fraud_scenario" not in first
    assert isinstance(first["event_id"], str)
    assert isinstance(first["entity_id"], str)
    assert type(first["timestamp"]) is int
    assert type(first["amount"]) is float
    assert [e["amount"] for e in events] == tx["amount"].tolist()
    assert [e["event_id"] for e in events] == tx["event_id"].tolist()


def test_labels_follow_their_events_by_the_delay(tx: Transactions) -> None:
    labels = list(tx.iter_labels(delay_ms=2500))
    assert [label["event_id"] for label in labels] == tx["event_id"].tolist()
    assert [label["label"] for label in labels] == tx[LABEL_COLUMN].tolist()
    assert [label["timestamp"] for label in labels] == (tx["timestamp"] + 2500).tolist()
    assert set(labels[0]) == {"event_id", "label", "timestamp"}
    assert sum(label["label"] for label in labels) == tx.n_frauds > 0
    with pytest.raises(DataError, match="label delay must be >= 0 ms; got -1"):
        next(tx.iter_labels(delay_ms=-1))


def test_training_columns_hold_exactly_the_default_features_and_the_label(
    tx: Transactions,
) -> None:
    """A trainer that takes every numeric non-identifier column gets DEFAULT_FEATURES; the
    key columns of the behavioural features are the only strings besides the identifiers."""
    frame = pd.DataFrame({name: tx[name] for name in TRAINING_COLUMNS})
    others = [c for c in frame.columns if c not in IDENTIFIER_COLUMNS]
    strings = [c for c in others if not pd.api.types.is_numeric_dtype(frame[c])]
    assert strings == ["customer_id", "terminal_id"]
    numeric = [
        c
        for c in frame.select_dtypes("number").columns
        if c not in IDENTIFIER_COLUMNS and c != LABEL_COLUMN
    ]
    assert numeric == list(DEFAULT_FEATURES)
    assert set(DEFAULT_FEATURES) <= set(FEATURE_COLUMNS) <= set(EVENT_COLUMNS)
    assert set(EVENT_COLUMNS) | {LABEL_COLUMN} <= set(ALL_COLUMNS)


def test_the_feature_step_reads_the_columns(tx: Transactions) -> None:
    step = NumericFeatures(DEFAULT_FEATURES)
    expected = np.column_stack([tx[name].astype(np.float64) for name in DEFAULT_FEATURES])
    np.testing.assert_array_equal(step.from_columns(tx.columns), expected)
    np.testing.assert_array_equal(step.from_records(list(tx.head(50).iter_events())), expected[:50])
    np.testing.assert_array_equal(step.from_columns(pd.DataFrame(tx.columns)), expected)


def test_head_take_concatenate_and_empty(tx: Transactions) -> None:
    assert len(tx.head(10)) == 10
    assert tx.take([3, 1])["event_id"].tolist() == [tx["event_id"][3], tx["event_id"][1]]
    mask = tx[LABEL_COLUMN] == 1
    assert tx.take(mask).n_frauds == len(tx.take(mask)) == tx.n_frauds
    joined = Transactions.concatenate([tx.head(5), tx.take(np.arange(5, len(tx)))])
    for name in ALL_COLUMNS:
        np.testing.assert_array_equal(joined[name], tx[name])
    empty = Transactions.concatenate([])
    assert len(empty) == 0
    assert empty.fraud_rate == 0.0
    assert list(empty.iter_events()) == []
    assert empty["timestamp"].dtype == np.int64
    assert empty["amount"].dtype == np.float64
    assert repr(tx.head(3)) == "Transactions(n=3, frauds=0)"
    assert sum(tx.scenario_counts().values()) == len(tx)


def test_columns_must_be_complete_and_of_equal_length(tx: Transactions) -> None:
    columns = tx.head(4).columns
    del columns["amount"]
    with pytest.raises(DataError, match=r"missing \['amount'\], unexpected \[\]"):
        Transactions(columns)
    uneven = {**tx.head(4).columns, "amount": np.zeros(3)}
    with pytest.raises(DataError, match="one-dimensional and of equal length"):
        Transactions(uneven)
    with pytest.raises(DataError, match=r"unknown transaction columns \['nope'\]"):
        tx.rows(["amount", "nope"])
