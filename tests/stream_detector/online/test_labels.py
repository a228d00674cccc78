"""Label messages: valid ones parse, anything else is an EventError with a stable reason."""

from __future__ import annotations

from typing import get_args

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_detector.errors import EventError
from stream_detector.events import LabelMessage
from stream_detector.online import LabelParser, LabelReason

REASONS = set(get_args(LabelReason))


def outcome(parser: LabelParser, value: bytes) -> tuple[str | None, LabelMessage | None]:
    """(reason, None) for an invalid message, (None, label) for a valid one."""
    try:
        return None, parser.parse(value)
    except EventError as err:
        return err.reason, None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b'{"event_id": "x", "label": 1, "pad": "' + b"y" * 300 + b'"}', "too_large"),
        (b"\xff\xfe", "not_utf8"),
        (b"{label: 1}", "not_json"),
        (b"[1, 0]", "not_object"),
        (b'"tx-1"', "not_object"),
        (b'{"label": 1}', "missing_field"),
        (b'{"event_id": "tx-1"}', "missing_field"),
        (b'{"event_id": "tx-1", "label": 2}', "bad_label"),
        (b'{"event_id": "tx-1", "label": "1"}', "bad_label"),
        (b'{"event_id": "tx-1", "label": null}', "bad_label"),
        (b'{"event_id": "", "label": 1}', "bad_identifier"),
        (b'{"event_id": 17, "label": 1}', "bad_identifier"),
        (b'{"event_id": "tx-1", "label": 0, "timestamp": "yesterday"}', "bad_timestamp"),
        (b'{"event_id": "tx-1", "label": 0, "timestamp": [1]}', "bad_timestamp"),
    ],
)
def test_invalid_labels_have_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(EventError) as info:
        LabelParser(max_bytes=256).parse(value)
    assert info.value.reason == reason
    assert "\n" not in str(info.value)


def test_valid_labels_parse() -> None:
    parser = LabelParser()
    label = parser.parse(
        b'{"event_id": "tx-9", "label": 0, "timestamp": "2018-04-01T00:00:01Z", "x": 1}'
    )
    assert (label.event_id, label.label) == ("tx-9", 0)
    assert parser.parse(b'{"event_id": "tx-9", "label": 1}').timestamp is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_give_a_known_reason(value: bytes) -> None:
    reason, label = outcome(LabelParser(max_bytes=150), value)
    if label is None:
        assert reason in REASONS
    else:
        assert label.label in (0, 1)
        assert label.event_id


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["event_id", "label", "timestamp", "other"]), json_values, max_size=4
    )
)
def test_json_objects_are_accepted_exactly_as_label_message_accepts_them(obj: dict) -> None:
    """The parser adds only the timestamp check to LabelMessage (the contract's schema)."""
    value = orjson.dumps(obj)
    try:
        expected: LabelMessage | None = LabelMessage.model_validate_json(value)
    except ValueError:
        expected = None
    reason, got = outcome(LabelParser(), value)
    if got is None:
        assert reason in REASONS
        assert expected is None or reason == "bad_timestamp"
    else:
        assert got == expected
