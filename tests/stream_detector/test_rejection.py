"""One mapping from a pydantic validation error to a dead-letter reason, for events and labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import ErrorDetails

from stream_detector.errors import EventError
from stream_detector.events import EventParser
from stream_detector.online import LabelParser
from stream_detector.rejection import rejection


class _Ping(BaseModel):
    model_config = ConfigDict(strict=True)

    ping_id: str = Field(min_length=1)
    host: str | None = None
    timestamp: int | None = None
    count: Annotated[int, Strict()]


def _missing(field: str) -> EventError:
    return EventError("missing_field", f"no {field}")


def _invalid(field: str, err: ErrorDetails) -> EventError:
    return EventError("bad_count", f"{field} is {err['type']}")


def _ping_rejection(value: bytes) -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        _Ping.model_validate_json(value)
    err = rejection(
        info.value,
        value,
        what="ping",
        identifiers=("ping_id", "host"),
        missing=_missing,
        invalid=_invalid,
    )
    return err.reason, str(err)


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (b"\xff{}", "not_utf8", "ping is not valid UTF-8: invalid start byte"),
        (b'{"ping_id": "\xed\xa0\x80"}', "not_utf8", "ping is not valid UTF-8: invalid"),
        (b"{oops", "not_json", "ping is not JSON: Invalid JSON: key must be a string"),
        (b"[1]", "not_object", "ping is not a JSON object"),
        (b"7", "not_object", "ping is not a JSON object"),
        (b'{"count": 1}', "missing_field", "no ping_id"),
        # a missing field is reported as missing, whatever else is wrong after it
        (b'{"count": "x"}', "missing_field", "no ping_id"),
        (b'{"ping_id": "", "count": 1}', "bad_identifier", "ping_id: String should have at least"),
        (b'{"ping_id": "p", "host": 3, "count": 1}', "bad_identifier", "host: Input should be"),
        (b'{"ping_id": "p", "timestamp": "x", "count": 1}', "bad_timestamp", "timestamp: Input"),
        (b'{"ping_id": "p", "count": 1.5}', "bad_count", "count is int_type"),
    ],
)
def test_each_branch_gives_its_reason_and_message(value: bytes, reason: str, message: str) -> None:
    got_reason, got_message = _ping_rejection(value)
    assert got_reason == reason
    assert got_message.startswith(message)


def _rejected(parse: Callable[[bytes], object], value: bytes) -> tuple[str, str]:
    with pytest.raises(EventError) as info:
        parse(value)
    return info.value.reason, str(info.value)


@pytest.mark.parametrize(
    "value", [b"\xff\xfe{}", b'{"event_id": "\xed\xa0\x80"}', b"{not json", b"[1, 2]", b"42"]
)
def test_events_and_labels_reject_a_bad_envelope_alike(value: bytes) -> None:
    event_reason, event_message = _rejected(EventParser(["amount"]).parse, value)
    label_reason, label_message = _rejected(LabelParser().parse, value)
    assert event_reason == label_reason
    assert event_message.startswith("message ")
    assert label_message == "label " + event_message


@pytest.mark.parametrize(
    ("value", "event", "label"),
    [
        (
            b'{"event_id": 7, "label": 1, "amount": 1}',
            ("bad_identifier", "event_id: Input should be a valid string"),
            ("bad_identifier", "event_id: Input should be a valid string"),
        ),
        (
            b'{"event_id": "e", "label": 1, "amount": 1, "timestamp": [1]}',
            ("bad_timestamp", "timestamp: Input should be a valid integer"),
            ("bad_timestamp", "timestamp: Input should be a valid integer"),
        ),
        (
            b'{"label": 1}',
            ("missing_feature", "feature 'amount' is missing"),
            ("missing_field", "label message has no 'event_id'"),
        ),
        (
            b'{"event_id": "e", "label": 9, "amount": NaN}',
            ("non_finite", "feature 'amount': Input should be a finite number"),
            ("bad_label", "label: expected 0 or 1; got 9"),
        ),
        (
            b'{"event_id": "e", "label": "1", "amount": "1"}',
            ("non_numeric", "feature 'amount': Input should be a valid number"),
            ("bad_label", "label: expected 0 or 1; got '1'"),
        ),
    ],
)
def test_dead_letter_reasons_and_messages_of_fields(
    value: bytes, event: tuple[str, str], label: tuple[str, str]
) -> None:
    assert _rejected(EventParser(["amount"]).parse, value) == event
    assert _rejected(LabelParser().parse, value) == label
