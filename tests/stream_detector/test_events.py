from __future__ import annotations

import math
from typing import get_args

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_detector.errors import EventError
from stream_detector.events import Event, EventParser, InvalidReason, LabelMessage, parse_timestamp

FEATURES = ("amount", "hour")
REASONS = set(get_args(InvalidReason))


def outcome(parser: EventParser, value: bytes | None) -> Event | EventError:
    """The parsed event, or the EventError it raised."""
    try:
        return parser.parse(value)
    except EventError as err:
        return err


@pytest.fixture
def parser() -> EventParser:
    return EventParser(FEATURES, max_bytes=1000)


def reason_of(parser: EventParser, value: bytes | None) -> str:
    with pytest.raises(EventError) as info:
        parser.parse(value)
    return info.value.reason


def test_valid_event_keeps_feature_order_and_identifiers(parser: EventParser) -> None:
    event = parser.parse(
        b'{"hour": 3, "extra": [1, 2], "amount": 12.5, "event_id": "tx-1", '
        b'"entity_id": "c-9", "timestamp": "2018-04-01T00:00:01Z"}'
    )
    assert event.values == (12.5, 3.0)
    assert (event.event_id, event.entity_id, event.timestamp_ms) == ("tx-1", "c-9", 1522540801000)


def test_identifiers_are_optional(parser: EventParser) -> None:
    event = parser.parse(b'{"amount": 1, "hour": 2}')
    assert (event.event_id, event.entity_id, event.timestamp_ms) == (None, None, None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"x" * 1001, "too_large"),
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"amount": 1, "hour": "\xed\xa0\x80"}', "not_utf8"),
        (b"{not json", "not_json"),
        (b'{"amount": 1, "hour": 2', "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (b'{"hour": 2}', "missing_feature"),
        (b'{"amount": "12", "hour": 2}', "non_numeric"),
        (b'{"amount": true, "hour": 2}', "non_numeric"),
        (b'{"amount": null, "hour": 2}', "non_numeric"),
        (b'{"amount": [1], "hour": 2}', "non_numeric"),
        (b'{"amount": NaN, "hour": 2}', "non_finite"),
        (b'{"amount": Infinity, "hour": 2}', "non_finite"),
        (b'{"amount": 1e400, "hour": 2}', "non_finite"),
        (b'{"amount": 1, "hour": 2, "event_id": 7}', "bad_identifier"),
        (b'{"amount": 1, "hour": 2, "event_id": ""}', "bad_identifier"),
        (b'{"amount": 1, "hour": 2, "entity_id": {"a": 1}}', "bad_identifier"),
        (b'{"amount": 1, "hour": 2, "timestamp": "yesterday"}', "bad_timestamp"),
        (b'{"amount": 1, "hour": 2, "timestamp": [1]}', "bad_timestamp"),
        (b'{"amount": ' + b"[" * 300 + b"]" * 300 + b', "hour": 1}', "not_json"),
    ],
)
def test_each_kind_of_bad_event_has_its_reason(
    parser: EventParser, value: bytes | None, reason: str
) -> None:
    assert reason_of(parser, value) == reason


def test_error_message_names_the_feature(parser: EventParser) -> None:
    with pytest.raises(EventError, match="feature 'hour' is missing"):
        parser.parse(b'{"amount": 1}')


def test_feature_names_that_are_not_identifiers() -> None:
    parser = EventParser(["V 1", "class"])
    assert parser.parse(b'{"V 1": 1.5, "class": 2}').values == (1.5, 2.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_event_error(value: bytes) -> None:
    parser = EventParser(FEATURES, max_bytes=200)
    event = outcome(parser, value)
    if isinstance(event, EventError):
        assert event.reason in REASONS
    else:
        assert all(math.isfinite(v) for v in event.values)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["amount", "hour", "event_id", "timestamp", "x"]), json_values)
)
def test_objects_are_valid_exactly_when_features_are_finite_numbers(obj: dict) -> None:
    parser = EventParser(FEATURES)
    value = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) if _serialisable(obj) else None
    if value is None:
        return
    numbers_ok = all(
        isinstance(obj.get(f), int | float)
        and not isinstance(obj.get(f), bool)
        and math.isfinite(obj[f])
        and abs(obj[f]) < 1e308
        for f in FEATURES
    )
    event = outcome(parser, value)
    if isinstance(event, EventError):
        if numbers_ok:
            assert event.reason in {"bad_identifier", "bad_timestamp"}
    else:
        assert numbers_ok
        assert event.values == tuple(float(obj[f]) for f in FEATURES)


def _serialisable(obj: dict) -> bool:
    try:
        orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2018-04-01T02:00:01+02:00") == 1522540801000
    assert parse_timestamp("2018-04-01 00:00:01") == 1522540801000
    assert parse_timestamp("1522540801000") == 1522540801000
    assert parse_timestamp(1522540801000.0) == 1522540801000
    for bad in (True, float("nan"), "soon", [1]):
        with pytest.raises(ValueError, match="timestamp"):
            parse_timestamp(bad)


def test_label_message_schema() -> None:
    assert (
        LabelMessage.model_validate_json(b'{"event_id": "a", "label": 0, "timestamp": 5}').label
        == 0
    )
    for bad in (
        b'{"event_id": "a", "label": 2}',
        b'{"event_id": "a", "label": "1"}',
        b'{"label": 1}',
    ):
        with pytest.raises(ValueError, match="validation error"):
            LabelMessage.model_validate_json(bad)


# -- parse_many: the batch fast path gives exactly what parse gives, message by message ---------


def _one_by_one(parser: EventParser, values: list[bytes | None]) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    for i, value in enumerate(values):
        try:
            out.append((i, parser.parse(value)))
        except EventError as err:
            out.append((i, (err.reason, str(err))))
    return out


def _batched(parser: EventParser, values: list[bytes | None]) -> list[tuple[int, object]]:
    batch = parser.parse_many(values)
    assert batch.X.shape == (len(batch.positions), len(parser.features))
    assert batch.positions == sorted(batch.positions)
    out: dict[int, object] = {i: (err.reason, str(err)) for i, err in batch.errors}
    for j, i in enumerate(batch.positions):
        assert i not in out
        out[i] = Event(
            batch.event_ids[j],
            batch.entity_ids[j],
            batch.timestamps_ms[j],
            tuple(batch.X[j].tolist()),
            batch.keys[j],
        )
    return sorted(out.items())


def test_parse_many_keeps_input_order_around_invalid_and_large_values(parser: EventParser) -> None:
    values: list[bytes | None] = [
        b'{"amount": 1, "hour": 2, "event_id": "a"}',
        b'{"amount": "1", "hour": 2}',
        b'{"amount": 1e300, "hour": 2, "timestamp": "2018-04-01T00:00:01Z"}',
        None,
        b'{"amount": 18446744073709551615, "hour": 2}',
        b'{"amount": 3.5, "hour": -0.0, "entity_id": "c", "timestamp": 1522540801000.9}',
        b'{"amount": 1, "hour": 2, "timestamp": true}',
    ]
    batch = parser.parse_many(values)
    assert batch.positions == [0, 2, 4, 5]
    assert batch.X.tolist() == [[1.0, 2.0], [1e300, 2.0], [18446744073709551615.0, 2.0], [3.5, 0.0]]
    assert batch.event_ids == ["a", None, None, None]
    assert batch.entity_ids == [None, None, None, "c"]
    assert batch.timestamps_ms == [None, 1522540801000, None, 1522540801000]
    assert [(i, e.reason) for i, e in batch.errors] == [
        (1, "non_numeric"),
        (3, "empty"),
        (6, "bad_timestamp"),
    ]
    assert _batched(parser, values) == _one_by_one(parser, values)


def test_parse_many_with_a_single_feature() -> None:
    parser = EventParser(["amount"])
    values = [b'{"amount": 2.5}', b'{"amount": "2"}', b"{}", b'{"amount": 7, "x": 1}']
    batch = parser.parse_many(values)
    assert batch.positions == [0, 3]
    assert batch.X.tolist() == [[2.5], [7.0]]
    assert [(i, err.reason) for i, err in batch.errors] == [
        (1, "non_numeric"),
        (2, "missing_feature"),
    ]


def test_parse_many_of_nothing(parser: EventParser) -> None:
    batch = parser.parse_many([])
    assert (batch.positions, batch.X.shape, batch.errors) == ([], (0, 2), [])


json_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
field_values = (
    json_numbers
    | st.sampled_from(["true", "null", '"12"', "[1]", "NaN", "-Infinity", '""', '"x"', '"\\ud800"'])
    | st.text(max_size=6).map(lambda s: orjson.dumps(s).decode())
    | st.sampled_from(['"2018-04-01T00:00:01Z"', '"1522540801000"', '"2018-13-01"', '" 12 "'])
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["amount", "hour", "event_id", "entity_id", "timestamp", "x"]),
            field_values,
        ).map(lambda obj: ("{" + ", ".join(f'"{k}": {v}' for k, v in obj.items()) + "}").encode()),
        max_size=8,
    )
)
def test_parse_many_equals_parse_on_json_objects(values: list[bytes]) -> None:
    parser = EventParser(FEATURES, max_bytes=120)
    assert _batched(parser, list(values)) == _one_by_one(parser, list(values))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60) | st.none(), max_size=6))
def test_parse_many_equals_parse_on_arbitrary_bytes(values: list[bytes | None]) -> None:
    parser = EventParser(FEATURES, max_bytes=40)
    assert _batched(parser, values) == _one_by_one(parser, values)


# -- key fields and required timestamps (behavioural features) ------------------------------

KEYS = ("customer_id", "terminal_id")


@pytest.fixture
def keyed() -> EventParser:
    return EventParser(["amount"], keys=KEYS, require_timestamp=True, max_bytes=1000)


def test_key_fields_are_strings_or_integers(keyed: EventParser) -> None:
    event = keyed.parse(b'{"customer_id": "c-1", "terminal_id": 42, "amount": 1, "timestamp": 5}')
    assert event.keys == ("c-1", "42")
    assert event.values == (1.0,)


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (b'{"terminal_id": "t", "amount": 1, "timestamp": 5}', "missing_key", "'customer_id'"),
        (
            b'{"customer_id": null, "terminal_id": "t", "amount": 1, "timestamp": 5}',
            "missing_key",
            "'customer_id'",
        ),
        (
            b'{"customer_id": "", "terminal_id": "t", "amount": 1, "timestamp": 5}',
            "bad_identifier",
            "'customer_id'",
        ),
        (
            b'{"customer_id": 1.5, "terminal_id": "t", "amount": 1, "timestamp": 5}',
            "bad_identifier",
            "'customer_id'",
        ),
        (
            b'{"customer_id": true, "terminal_id": "t", "amount": 1, "timestamp": 5}',
            "bad_identifier",
            "'customer_id'",
        ),
        (b'{"customer_id": "c", "terminal_id": "t", "amount": 1}', "bad_timestamp", "missing"),
        (
            b'{"customer_id": "c", "terminal_id": "t", "amount": 1, "timestamp": "soon"}',
            "bad_timestamp",
            "soon",
        ),
    ],
)
def test_bad_keys_and_timestamps_have_their_reasons(
    keyed: EventParser, value: bytes, reason: str, message: str
) -> None:
    with pytest.raises(EventError) as info:
        keyed.parse(value)
    assert info.value.reason == reason
    assert message in str(info.value)
    batch = keyed.parse_many([value])
    assert [(i, err.reason) for i, err in batch.errors] == [(0, reason)]


def test_a_timestamp_is_optional_without_windows() -> None:
    parser = EventParser(["amount"], keys=["customer_id"])
    assert parser.parse(b'{"customer_id": "c", "amount": 1}').timestamp_ms is None


def test_keys_only_parser_has_an_empty_matrix() -> None:
    parser = EventParser([], keys=["customer_id"], require_timestamp=True)
    batch = parser.parse_many([b'{"customer_id": "c", "timestamp": 1}', b'{"timestamp": 1}'])
    assert batch.X.shape == (1, 0)
    assert batch.keys == [("c",)]
    assert [err.reason for _, err in batch.errors] == ["missing_key"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["amount", "customer_id", "terminal_id", "event_id", "timestamp"]),
            field_values | st.sampled_from(["7", '"c-7"', "-3", "1e3", "12345678901234567890"]),
        ).map(lambda obj: ("{" + ", ".join(f'"{k}": {v}' for k, v in obj.items()) + "}").encode()),
        max_size=8,
    )
)
def test_parse_many_equals_parse_with_keys(values: list[bytes]) -> None:
    parser = EventParser(["amount"], keys=KEYS, require_timestamp=True, max_bytes=160)
    assert _batched(parser, list(values)) == _one_by_one(parser, list(values))
