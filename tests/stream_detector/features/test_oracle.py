"""The engine against a straightforward pure-Python computation of the same features, and
offline-in-one-call against online-in-batches, on simulated and random streams."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_detector.features import FeatureEngine, FeatureSpec
from stream_detector.features.spec import duration_ms
from stream_detector.simulate import TransactionSimulator
from stream_detector.state import MemoryStore

CARD = {
    "numeric": ["amount"],
    "lateness": "1h",
    "windows": [
        {
            "key": "customer_id",
            "windows": ["30m", "1d"],
            "field": "amount",
            "stats": ["count", "sum", "mean", "std", "min", "max"],
            "relative": ["ratio", "zscore"],
            "since_previous": True,
            "distinct": "terminal_id",
        },
        {"key": "terminal_id", "windows": ["2h"], "field": "amount", "stats": ["mean"]},
        {"key": "terminal_id", "windows": ["20m", "40m"], "since_previous": True},
        {
            "key": "terminal_id",
            "windows": ["1d"],
            "delay": "3h",
            "field": "amount",
            "stats": ["count", "max"],
            "labels": ["count", "rate"],
        },
    ],
}


EXACT = Context(prec=400)


def _decimal(value: Fraction | int) -> Decimal:
    value = Fraction(value)
    return EXACT.divide(Decimal(value.numerator), Decimal(value.denominator))


def oracle(spec: FeatureSpec, events: list[dict[str, Any]], known: dict[str, int]) -> np.ndarray:
    """Event by event in arrival order, from the window convention's words, in exact
    arithmetic: sums, means, variances and ratios as fractions of the values' binary
    expansions, square roots and z-scores to 400 digits (enough to hold a tie between two
    floats exactly); each rounded to float64 once."""
    held: dict[tuple[str, str], list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    out = []
    for seq, event in enumerate(events):
        t = event["timestamp"]
        latest = [max((r[0] for r in held[(k, event[k])]), default=t) for k in spec.keys]
        if any(top - t > spec.lateness_ms for top in latest):
            out.append([math.nan] * len(spec.names))
            continue
        row: list[float] = [float(event[name]) for name in spec.numeric]
        for entry in spec.windows:
            history = held[(entry.key, event[entry.key])]
            d = entry.delay_ms
            for w in entry.windows:
                start, end = t - d - duration_ms(w), t - d
                inside = sorted((r for r in history if start <= r[0] < end), key=lambda r: r[:2])
                rows = [r[2] for r in inside] + ([event] if d == 0 else [])
                xs = [Fraction(r[entry.field]) for r in rows] if entry.field else []
                count = len(rows)
                total = sum(xs, Fraction(0))
                mean = total / count if count else Fraction(0)
                var = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / count if count else 0
                std = EXACT.sqrt(_decimal(var))
                stats = {
                    "count": count,
                    "sum": total,
                    "mean": mean,
                    "std": std,
                    "min": min(xs) if xs else 0.0,
                    "max": max(xs) if xs else 0.0,
                }
                row += [float(stats[s]) for s in entry.stats]
                x = Fraction(event[entry.field]) if entry.field else Fraction(0)
                relative = {
                    "ratio": x / mean if mean != 0 else 0.0,
                    "zscore": EXACT.divide(EXACT.subtract(_decimal(x), _decimal(mean)), std)
                    if std > 0
                    else 0.0,
                }
                row += [float(relative[r]) for r in entry.relative]
                if entry.distinct:
                    row.append(len({r[entry.distinct] for r in rows}))
                frauds = sum(1 for r in rows if known.get(r["event_id"], math.inf) <= t)
                labels = {"count": frauds, "rate": frauds / count if count else 0.0}
                row += [labels[lab] for lab in entry.labels]
            if entry.since_previous:
                before = [r[0] for r in history if t - entry.span_ms <= r[0] < t]
                row.append((t - max(before)) / 1000 if before else -1.0)
        out.append(row)
        for k in spec.keys:
            held[(k, event[k])].append((t, seq, event))
    return np.array(out, dtype=np.float64)


def columns(events: list[dict[str, Any]]) -> dict[str, Any]:
    cols = {name: [e[name] for e in events] for name in events[0]} if events else {}
    cols["timestamp"] = np.array(cols["timestamp"], dtype=np.int64)
    return cols


def labels_of(events: list[dict[str, Any]], known: dict[str, int]) -> dict[str, Any]:
    ids = [e["event_id"] for e in events if e["event_id"] in known]
    return {"event_id": ids, "label": [1] * len(ids), "known_at": [known[i] for i in ids]}


@pytest.fixture(scope="module")
def simulated() -> list[dict[str, Any]]:
    tx = TransactionSimulator.from_preset("demo", random_state=3).generate(n_days=10)
    order = np.lexsort((tx["event_id"], tx["timestamp"]))
    return [
        {
            "event_id": str(tx["event_id"][i]),
            "timestamp": int(tx["timestamp"][i]),
            "customer_id": str(tx["customer_id"][i]),
            "terminal_id": str(tx["terminal_id"][i]),
            "amount": float(tx["amount"][i]),
            "is_fraud": int(tx["is_fraud"][i]),
        }
        for i in order
    ]


def test_offline_equals_the_oracle_on_simulated_data(simulated: list[dict[str, Any]]) -> None:
    spec = FeatureSpec.parse(CARD)
    known = {e["event_id"]: e["timestamp"] for e in simulated if e["is_fraud"]}
    assert len(known) > 10
    got = FeatureEngine(spec, MemoryStore()).transform(
        columns(simulated), labels=labels_of(simulated, known), update=False
    )
    expected = oracle(spec, simulated, known)
    assert got.shape == (len(simulated), len(spec.names))
    np.testing.assert_array_equal(got, expected)
    fraud_rate = spec.names.index("terminal_id.fraud_rate.1d.delay3h")
    assert (got[:, fraud_rate] > 0).sum() > 0  # the label features are exercised


def test_online_batches_equal_offline_on_simulated_data(simulated: list[dict[str, Any]]) -> None:
    spec = FeatureSpec.parse(CARD)
    known = {e["event_id"]: e["timestamp"] for e in simulated if e["is_fraud"]}
    offline = FeatureEngine(spec, MemoryStore()).transform(
        columns(simulated), labels=labels_of(simulated, known)
    )
    online = FeatureEngine(spec, MemoryStore())
    rng = np.random.default_rng(0)
    parts, at = [], 0
    while at < len(simulated):
        size = int(rng.integers(1, 300))
        part = simulated[at : at + size]
        parts.append(online.transform(columns(part), labels=labels_of(part, known)))
        at += size
    np.testing.assert_array_equal(np.vstack(parts), offline)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, int], list[int]]:
    n = draw(st.integers(min_value=1, max_value=30))
    events = [
        {
            "event_id": f"e{i}",
            # ten-minute steps: ties, windows' edges and late events are frequent
            "timestamp": draw(st.integers(min_value=0, max_value=36)) * 600_000,
            "customer_id": draw(st.sampled_from(["c1", "c2", "c3"])),
            "terminal_id": draw(st.sampled_from(["t1", "t2"])),
            "amount": draw(st.sampled_from([0.0, 0.1, 1 / 3, 1.5, 7.25, 100.0, 12_345.678, 1e6])),
        }
        for i in range(n)
    ]
    known = {
        e["event_id"]: e["timestamp"] + draw(st.integers(min_value=0, max_value=6)) * 1_800_000
        for e in events
        if draw(st.booleans())
    }
    cuts = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=n), max_size=6))))
    return events, known, cuts


@settings(max_examples=150, deadline=None)
@given(streams())
def test_random_streams_in_any_batches_equal_one_call_and_the_oracle(
    stream: tuple[list[dict[str, Any]], dict[str, int], list[int]],
) -> None:
    events, known, cuts = stream
    spec = FeatureSpec.parse(CARD)
    one = FeatureEngine(spec, MemoryStore()).transform_batch(
        columns(events), labels=labels_of(events, known)
    )
    np.testing.assert_array_equal(one.values, oracle(spec, events, known))
    engine = FeatureEngine(spec, MemoryStore())
    values, late = [], []
    for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True):
        if a == b:
            continue
        part = events[a:b]
        result = engine.transform_batch(columns(part), labels=labels_of(part, known))
        values.append(result.values)
        late.append(result.too_late)
    np.testing.assert_array_equal(np.vstack(values), one.values)
    np.testing.assert_array_equal(np.concatenate(late), one.too_late)
    np.testing.assert_array_equal(np.isnan(one.values).all(axis=1), one.too_late)


def pandas_calendar(spec: FeatureSpec, ts: np.ndarray) -> np.ndarray:
    """The calendar features from pandas' own time zone conversion."""
    import pandas as pd

    stamps = pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True)).tz_convert(spec.time_zone)
    hour = np.asarray(stamps.hour, dtype=np.float64)
    day = np.asarray(stamps.day_of_week, dtype=np.float64)
    start, end = spec.night_hours
    night = (hour >= start) | (hour < end) if start > end else (hour >= start) & (hour < end)
    values = {"hour": hour, "day_of_week": day, "weekend": day >= 5, "night": night}
    return np.column_stack([values[name] for name in spec.calendar]).astype(np.float64)


# around summer-time changes (Paris, New York, Lord Howe's half hour), Kathmandu's +5:45,
# before 1970 and far ahead
_INSTANTS = [1_521_939_600_000, 1_540_688_400_000, 1_520_751_600_000, 1_522_510_200_000,
             -2_000_000_000_000, 0, 4_102_444_800_000]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(
        ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
    ),
    base=st.sampled_from(_INSTANTS),
    steps=st.lists(st.integers(min_value=-7_200_000, max_value=7_200_000), min_size=1),
    night=st.sampled_from([(22, 6), (1, 5)]),
)
def test_calendar_features_equal_pandas_in_any_zone(
    zone: str, base: int, steps: list[int], night: tuple[int, int]
) -> None:
    spec = FeatureSpec.parse(
        {
            "calendar": ["hour", "day_of_week", "weekend", "night"],
            "time_zone": zone,
            "night_hours": list(night),
        }
    )
    ts = base + np.array(steps, dtype=np.int64)
    engine = FeatureEngine(spec, MemoryStore())
    got = engine.transform({"event_id": [f"e{i}" for i in range(len(ts))], "timestamp": ts})
    np.testing.assert_array_equal(got, pandas_calendar(spec, ts))
