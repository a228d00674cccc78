"""The feature engine on small exact fixtures written by hand: the window convention."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_detector.errors import DataError
from stream_detector.features import FeatureEngine, FeatureSpec
from stream_detector.state import MemoryStore

H = 3_600_000
D = 24 * H


def engine(*windows: dict[str, Any], **spec: Any) -> FeatureEngine:
    return FeatureEngine(FeatureSpec.parse({"windows": list(windows), **spec}), MemoryStore())


def batch(*rows: tuple[Any, ...], fields: tuple[str, ...] = ("k", "amount")) -> dict[str, Any]:
    """Rows of (event_id, timestamp, *fields)."""
    columns: dict[str, Any] = {"event_id": [r[0] for r in rows], "timestamp": [r[1] for r in rows]}
    for j, name in enumerate(fields):
        columns[name] = [r[2 + j] for r in rows]
    columns["timestamp"] = np.array(columns["timestamp"], dtype=np.int64)
    return columns


STATS = {"key": "k", "windows": ["1h"], "field": "amount", "stats": ["count", "sum", "mean"]}


def test_events_of_the_same_millisecond_never_see_each_other() -> None:
    got = engine(STATS).transform(
        batch(("a", 0, "x", 10.0), ("b", 0, "x", 20.0), ("c", 1, "x", 30.0))
    )
    assert got.tolist() == [[1, 10, 10], [1, 20, 20], [3, 60, 20]]


def test_the_order_of_equal_timestamps_does_not_matter() -> None:
    one = engine(STATS).transform(
        batch(("a", 0, "x", 10.0), ("b", 0, "x", 20.0), ("c", 1, "x", 30.0))
    )
    other = engine(STATS).transform(
        batch(("b", 0, "x", 20.0), ("a", 0, "x", 10.0), ("c", 1, "x", 30.0))
    )
    assert one[2].tolist() == other[2].tolist()


def test_an_undelayed_window_includes_the_current_event_and_starts_w_before() -> None:
    got = engine(STATS).transform(
        batch(("a", 0, "x", 10.0), ("b", H - 1, "x", 20.0), ("c", H, "x", 30.0), ("d", H, "y", 1.0))
    )
    # c's window is [0 h, 1 h): a (at 0) is in, c itself too; d is another entity
    assert got.tolist() == [[1, 10, 10], [2, 30, 15], [3, 60, 20], [1, 1, 1]]


def test_a_delayed_window_ends_delay_before_the_event_and_excludes_it() -> None:
    eng = engine(
        {
            "key": "k",
            "windows": ["1h"],
            "delay": "1h",
            "field": "amount",
            "stats": ["count", "mean", "max"],
        }
    )
    got = eng.transform(
        batch(
            ("a", 0, "x", 10.0),
            ("b", H // 2, "x", 30.0),
            ("c", 2 * H, "x", 5.0),
            ("d", 2 * H + H // 2, "x", 1.0),
        )
    )
    # a, b: nothing in their windows (fill 0); c: [0, 1 h) holds a and b; d: [30 min, 90 min) holds b
    assert got.tolist() == [[0, 0, 0], [0, 0, 0], [2, 20, 30], [1, 30, 30]]


def test_std_min_max_ratio_zscore() -> None:
    eng = engine(
        {
            "key": "k",
            "windows": ["1d"],
            "field": "amount",
            "stats": ["std", "min", "max"],
            "relative": ["ratio", "zscore"],
        }
    )
    got = eng.transform(batch(("a", 0, "x", 2.0), ("b", 1, "x", 4.0), ("c", 2, "x", 9.0)))
    # c: values 2, 4, 9; mean 5, population std sqrt(26/3)
    std = np.sqrt(26 / 3)
    np.testing.assert_array_equal(got[0], [0.0, 2.0, 2.0, 1.0, 0.0])
    np.testing.assert_array_equal(got[1], [1.0, 2.0, 4.0, 4.0 / 3.0, 1.0])
    np.testing.assert_allclose(got[2], [std, 2.0, 9.0, 9.0 / 5.0, 4.0 / std], rtol=0, atol=1e-15)


def test_since_previous_and_distinct() -> None:
    eng = engine({"key": "k", "windows": ["1h"], "since_previous": True, "distinct": "terminal"})
    got = eng.transform(
        batch(
            ("a", 0, "x", "t1"),
            ("b", 5_000, "x", "t2"),
            ("c", 6_500, "x", "t1"),
            ("d", 2 * H, "x", "t3"),
            fields=("k", "terminal"),
        )
    )
    assert eng.names == ("k.terminal.distinct.1h", "k.since_previous")
    # d: the previous event (c) is more than the longest window (1 h) back: -1
    assert got.tolist() == [[1, -1], [2, 5.0], [2, 1.5], [1, -1]]


def test_an_entry_with_only_since_previous() -> None:
    eng = engine(
        {
            "key": "k",
            "windows": ["1h"],
            "field": "amount",
            "stats": ["count"],
            "relative": ["ratio"],
        },
        {"key": "k", "windows": ["30m"], "since_previous": True},
        {"key": "t", "windows": ["2h", "1h"], "since_previous": True},
    )
    assert eng.names == ("k.amount.count.1h", "k.amount.ratio.1h", "k.since_previous",
                         "t.since_previous")  # fmt: skip
    first = eng.transform(
        batch(("a", 0, "x", "u", 2.0), ("b", 5_000, "x", "u", 4.0), fields=("k", "t", "amount"))
    )
    then = eng.transform(
        batch(
            ("c", H + 10_000, "x", "u", 1.0),
            ("d", 3 * H + 20_000, "y", "u", 3.0),
            fields=("k", "t", "amount"),
        )
    )
    # c: b is 1 h 5 s back, beyond k's 30 min but within t's longest window (2 h);
    # d: c is 2 h 10 s back, beyond t's 2 h
    assert first.tolist() == [[1, 1.0, -1, -1], [2, 4 / 3, 5.0, 5.0]]
    assert then.tolist() == [[1, 1.0, -1, 3605.0], [1, 1.0, -1, -1]]


def test_labels_count_only_when_known_by_the_event_time() -> None:
    eng = engine({"key": "k", "windows": ["2d"], "delay": "1d", "labels": ["count", "rate"]})
    assert eng.transform(batch(("e1", 0, "t"), fields=("k",))).tolist() == [[0, 0]]
    eng.add_labels({"event_id": ["e1"], "label": [1], "known_at": [2 * D]})
    # e2 at 1.5 d: window [-1.5 d, 0.5 d) holds e1, whose fraud is known only at 2 d
    assert eng.transform(batch(("e2", 3 * D // 2, "t"), fields=("k",))).tolist() == [[0, 0]]
    # e3 at 2.5 d: window [-0.5 d, 1.5 d) holds e1 (e2 is at 1.5 d, not before it)
    assert eng.transform(batch(("e3", 5 * D // 2, "t"), fields=("k",))).tolist() == [[1, 1.0]]
    # e4 at 3 d: window [0, 2 d) holds e1 and e2: one fraud in two events
    assert eng.transform(batch(("e4", 3 * D, "t"), fields=("k",))).tolist() == [[1, 0.5]]


def test_a_label_before_its_event_waits_for_it() -> None:
    eng = engine({"key": "k", "windows": ["2d"], "delay": "1d", "labels": ["count"]})
    eng.add_labels({"event_id": ["e1"], "label": [1], "known_at": [10]})
    eng.add_labels({"event_id": ["e1"], "label": [0], "known_at": [10]})  # 0 changes nothing
    eng.transform(batch(("e1", 0, "t"), fields=("k",)))
    assert eng.transform(batch(("e2", 2 * D, "t"), fields=("k",))).tolist() == [[1]]


def test_offline_labels_are_known_at_the_events_own_time() -> None:
    eng = engine({"key": "k", "windows": ["1d"], "delay": "1d", "labels": ["count"]})
    events = batch(("e1", 0, "t"), ("e2", D // 2, "t"), ("e3", 2 * D - 1, "t"), fields=("k",))
    labels = {"event_id": ["e1", "e2", "e3"], "label": [1, 1, 1], "known_at": events["timestamp"]}
    assert eng.transform(events, labels=labels, update=False).tolist() == [[0], [0], [2]]


LATE = {"key": "k", "windows": ["2h"], "field": "amount", "stats": ["count", "sum"]}


@pytest.mark.parametrize("split", [False, True])
def test_late_events_within_lateness_are_exact_and_beyond_it_refused(split: bool) -> None:
    eng = engine(LATE, lateness="1h")
    rows = [
        ("x", 10 * H, "k1", 1.0),
        ("y", 10 * H - H // 2, "k1", 2.0),  # 30 min behind x: computed, sees nothing before it
        ("z", 11 * H, "k1", 4.0),
        ("w", 8 * H, "k1", 8.0),  # 3 h behind z: too late, not kept
        ("v", 11 * H + H // 2, "k1", 16.0),
    ]
    parts = [batch(r) for r in rows] if split else [batch(*rows)]
    results = [eng.transform_batch(part) for part in parts]
    values = np.vstack([r.values for r in results])
    too_late = np.concatenate([r.too_late for r in results])
    assert too_late.tolist() == [False, False, False, True, False]
    assert np.isnan(values[3]).all()
    # v at 11.5 h: [9.5 h, 11.5 h) holds y (at 9.5 h), x, z; w was not kept
    assert values[[0, 1, 2, 4]].tolist() == [[1, 1], [1, 2], [3, 7], [4, 23]]
    assert sum(r.stats.too_late for r in results) == 1


def test_an_event_too_late_for_one_key_is_kept_for_none() -> None:
    eng = engine(
        {"key": "card", "windows": ["1d"], "stats": ["count"]},
        {"key": "terminal", "windows": ["1d"], "stats": ["count"]},
        lateness="1h",
    )
    fields = ("card", "terminal")
    first = eng.transform_batch(batch(("a", 10 * H, "c1", "t1"), fields=fields))
    late = eng.transform_batch(
        batch(("b", 5 * H, "c2", "t1"), ("c", 6 * H, "c2", "t2"), fields=fields)
    )
    # b is 5 h behind terminal t1's latest: refused; so card c2 has not seen it when c comes
    assert first.values.tolist() == [[1, 1]]
    assert late.too_late.tolist() == [True, False]
    assert late.values[1].tolist() == [1, 1]


def test_the_same_batch_twice_gives_the_same_features_and_state() -> None:
    eng = engine(
        LATE, {"key": "t", "windows": ["1d"], "delay": "1h", "labels": ["count"]}, lateness="1h"
    )
    fields = ("k", "amount", "t")
    first = batch(
        ("a", 10 * H, "k1", 1.0, "t1"), ("b", 10 * H - 60_000, "k1", 2.0, "t1"), fields=fields
    )
    second = batch(("c", 11 * H, "k1", 4.0, "t1"), ("d", 9 * H + 1, "k1", 8.0, "t1"), fields=fields)
    once = np.vstack([eng.transform(first), eng.transform(second)])
    assert np.isnan(once[3]).all()  # d is 2 h behind c: too late
    store = eng.store
    assert isinstance(store, MemoryStore)
    state = {key: bytes(value) for key, value in store._values.items()}
    # a replay after a crash: both batches again, then as one batch
    again = np.vstack([eng.transform(first), eng.transform(second)])
    merged = {k: np.concatenate([first[k], second[k]]) for k in first}
    joined = eng.transform(merged)
    np.testing.assert_array_equal(again, once)
    np.testing.assert_array_equal(joined, once)
    assert {key: bytes(value) for key, value in store._values.items()} == state


def test_state_older_than_the_horizon_is_expired() -> None:
    eng = engine({"key": "k", "windows": ["1h"], "stats": ["count"]}, lateness="1h")
    assert eng.spec.horizon_ms == 2 * H
    eng.transform(batch(("a", 0, "x"), ("b", H, "x"), fields=("k",)))
    eng.transform(batch(("c", 3 * H, "x"), fields=("k",)))
    store = eng.store
    assert isinstance(store, MemoryStore)
    (blob,) = store._values.values()
    row_size = len(blob) // 2
    # a (3 h behind c) is gone, b (2 h behind) is kept
    assert [int.from_bytes(blob[i : i + 8], "little") for i in range(0, len(blob), row_size)] == [
        H,
        3 * H,
    ]


def test_calendar_and_numeric_features_in_a_time_zone() -> None:
    spec = FeatureSpec.parse(
        {
            "numeric": ["amount"],
            "calendar": ["hour", "day_of_week", "weekend", "night"],
            "time_zone": "Europe/Paris",
        }
    )
    eng = FeatureEngine(spec, MemoryStore())
    # 2018-04-01 is a Sunday; 21:30 UTC is 23:30 in Paris (summer time)
    sunday = 1_522_540_800_000
    got = eng.transform(
        {
            "event_id": ["a", "b"],
            "timestamp": np.array([sunday + 21 * H + H // 2, sunday + D + 10 * H]),
            "amount": [3.0, 4.0],
        }
    )
    assert got.tolist() == [[3.0, 23, 6, 1, 1], [4.0, 12, 0, 0, 0]]
    assert eng.last_stats is not None
    assert eng.last_stats.round_trips == 0


def test_batch_stats_count_round_trips_and_entities() -> None:
    eng = engine(STATS)
    result = eng.transform_batch(batch(("a", 0, "x", 1.0), ("b", 0, "y", 1.0)))
    assert (result.stats.events, result.stats.round_trips, result.stats.entities) == (2, 2, 2)
    assert result.stats.store_seconds <= result.stats.seconds
    assert eng.transform_batch(batch(("a", 0, "x", 1.0)), update=False).stats.round_trips == 1


def test_missing_fields_are_data_errors() -> None:
    with pytest.raises(DataError, match="events lack the field 'amount'"):
        engine(STATS).transform({"event_id": ["a"], "timestamp": np.array([0]), "k": ["x"]})
    with pytest.raises(DataError, match="must hold epoch milliseconds"):
        engine(STATS).transform(
            {"event_id": ["a"], "timestamp": ["noon"], "k": ["x"], "amount": [1.0]}
        )


def test_records_and_columns_give_the_same_rows() -> None:
    rows = [{"event_id": "a", "timestamp": 0, "k": "x", "amount": 2.0}]
    assert (
        engine(STATS).from_records(rows).tolist()
        == engine(STATS).from_columns(batch(("a", 0, "x", 2.0))).tolist()
    )


def test_distinct_counts_many_values_in_one_window() -> None:
    eng = engine({"key": "k", "windows": ["1d"], "distinct": "terminal"})
    rows = [(f"e{i}", i, "x", f"t{(i * 7) % 23}") for i in range(60)]
    got = eng.transform(batch(*rows, fields=("k", "terminal")))
    # the i-th event sees terminals (7 j mod 23) for j <= i: min(i + 1, 23) of them
    assert got[:, 0].tolist() == [min(i + 1, 23) for i in range(60)]
