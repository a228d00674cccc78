"""Validation of feedback label messages from the ``labels`` topic.

A label is ``{"event_id": str, "label": 0 or 1, "timestamp": ...}`` as
:class:`~stream_detector.events.LabelMessage` defines it; the timestamp, when present, must be
ISO 8601 or epoch milliseconds. A message that fails is not an exception for the caller to
handle: it comes back as an :class:`~stream_detector.errors.EventError` whose ``reason`` is one
of :data:`LabelReason`, so the service dead-letters it, counts it and moves on, as it does
with events.

Examples
--------
>>> parser = LabelParser()
>>> label = parser.parse(b'{"event_id": "tx-1", "label": 1, "timestamp": 1522540801000}')
>>> label.event_id, label.label
('tx-1', 1)
>>> try:
...     parser.parse(b'{"event_id": "tx-1", "label": 2}')
... except EventError as err:
...     print(err.reason, "|", err)
bad_label | label: expected 0 or 1; got 2
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stream_detector.errors import EventError
from stream_detector.events import (
    DEFAULT_MAX_EVENT_BYTES,
    LabelMessage,
    LabelReason,
    check_size,
    parse_timestamp,
)
from stream_detector.rejection import rejection

__all__ = ["LabelParser", "LabelReason"]

_MAX_SHOWN = 64


class LabelParser:
    """Validates label message bytes.

    Parameters
    ----------
    max_bytes
        Longer messages are refused before parsing (reason ``too_large``).
    """

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes

    def parse(self, value: bytes | None) -> LabelMessage:
        """Validate one message value; raise EventError with a :data:`LabelReason` if invalid."""
        value = check_size(value, self.max_bytes, "label message")
        try:
            label = LabelMessage.model_validate_json(value)
        except ValidationError as exc:
            raise _label_error(exc, value) from None
        try:
            parse_timestamp(label.timestamp)
        except ValueError as exc:
            raise EventError("bad_timestamp", str(exc)) from None
        return label


def _label_error(exc: ValidationError, value: bytes) -> EventError:
    return rejection(
        exc,
        value,
        what="label message",
        identifiers=("event_id",),
        missing=lambda field: EventError("missing_field", f"label message has no {field!r}"),
        invalid=_bad_label,
    )


def _bad_label(field: str, err: ErrorDetails) -> EventError:
    shown = repr(err.get("input"))[:_MAX_SHOWN]
    return EventError("bad_label", f"{field}: expected 0 or 1; got {shown}")
