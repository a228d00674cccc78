from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_detector.errors import EventError
from stream_detector.events import EventParser, LabelMessage, parse_timestamp

FEATURES = ("amount", "hour")


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
def test_each_kind_of_bad_event_has_its_reason(parser: EventParser, value: bytes | None, reason: str) -> None:
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
    try:
        event = parser.parse(value)
    except EventError as err:
        assert err.reason in {
            "empty", "too_large", "not_utf8", "not_json", "not_object", "missing_feature",
            "non_numeric", "non_finite", "bad_identifier", "bad_timestamp",
        }
    else:
        assert all(math.isfinite(v) for v in event.values)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["amount", "hour", "event_id", "timestamp", "x"]), json_values))
def test_objects_are_valid_exactly_when_features_are_finite_numbers(obj: dict) -> None:
    parser = EventParser(FEATURES)
    value = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) if _serialisable(obj) else None
    if value is None:
        return
    numbers_ok = all(
        isinstance(obj.get(f), int | float) and not isinstance(obj.get(f), bool)
        and math.isfinite(obj[f]) and abs(obj[f]) < 1e308
        for f in FEATURES
    )
    try:
        event = parser.parse(value)
    except EventError as err:
        if numbers_ok:
            assert err.reason in {"bad_identifier", "bad_timestamp"}
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
    assert LabelMessage.model_validate_json(b'{"event_id": "a", "label": 0, "timestamp": 5}').label == 0
    for bad in (b'{"event_id": "a", "label": 2}', b'{"event_id": "a", "label": "1"}', b'{"label": 1}'):
        with pytest.raises(ValueError, match="validation error"):
            LabelMessage.model_validate_json(bad)
