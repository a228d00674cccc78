"""Event schemas and validation.

An event is a flat JSON object. Every feature named in the model bundle must be present as a
finite number; ``event_id`` and ``entity_id`` are optional strings; ``timestamp`` is optional,
ISO 8601 or epoch milliseconds. Other fields pass through and are ignored.

Validation runs in pydantic's JSON parser straight from the message bytes (UTF-8, syntax,
nesting depth, types and finiteness in one pass). A message that fails is not an exception for
the caller to handle: it comes back as an :class:`~stream_detector.errors.EventError` whose
``reason`` is one of :data:`InvalidReason`, so the service can dead-letter it, count it and
move on.

Examples
--------
>>> parser = EventParser(["amount", "hour"])
>>> event = parser.parse(b'{"event_id": "tx-1", "amount": 12.5, "hour": 3, "note": "x"}')
>>> event.event_id, event.values
('tx-1', (12.5, 3.0))
>>> parser.parse(b'{"amount": "12", "hour": 3}')
Traceback (most recent call last):
...
stream_detector.errors.EventError: feature 'amount': Input should be a valid number
>>> try:
...     parser.parse(b'{"hour": 3}')
... except EventError as err:
...     print(err.reason)
missing_feature
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from stream_detector.errors import EventError

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "Event",
    "EventParser",
    "InvalidReason",
    "LabelMessage",
    "parse_timestamp",
]

InvalidReason = Literal[
    "empty",
    "too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_feature",
    "non_numeric",
    "non_finite",
    "bad_identifier",
    "bad_timestamp",
]
"""Why a message was dead-lettered: the ``reason`` label and the ``error.type`` header."""

DEFAULT_MAX_EVENT_BYTES = 1_048_576
_MAX_ID_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event: identifiers and the feature values in the bundle's order."""

    event_id: str | None
    entity_id: str | None
    timestamp_ms: int | None
    values: tuple[float, ...]


def parse_timestamp(value: Any) -> int | None:
    """Epoch milliseconds from an ISO 8601 string or a number of epoch milliseconds.

    Naive ISO times are taken as UTC.

    >>> parse_timestamp("2018-04-01T00:00:01Z")
    1522540801000
    >>> parse_timestamp(1522540801000)
    1522540801000
    >>> parse_timestamp(None) is None
    True
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be ISO 8601 or epoch milliseconds; got {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"timestamp must be finite; got {value!r}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"timestamp is not ISO 8601 or epoch ms: {value[:64]!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    raise ValueError(
        f"timestamp must be ISO 8601 or epoch milliseconds; got {type(value).__name__}"
    )


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, frozen=True)

    event_id: str | None = Field(default=None, min_length=1, max_length=_MAX_ID_LENGTH)
    entity_id: str | None = Field(default=None, max_length=_MAX_ID_LENGTH)
    timestamp: int | float | str | None = None


_FEATURE_ERRORS = {
    "missing": "missing_feature",
    "finite_number": "non_finite",
}


class EventParser:
    """Validates event bytes against the bundle's features.

    Parameters
    ----------
    features
        The bundle's ordered feature names.
    max_bytes
        Messages longer than this are refused before parsing (reason ``too_large``).
    """

    def __init__(
        self, features: Sequence[str], *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        self.features = tuple(features)
        self.max_bytes = max_bytes
        fields: dict[str, Any] = {
            f"f{i}": (float, Field(alias=name)) for i, name in enumerate(self.features)
        }
        self._model: type[_Envelope] = create_model(  # type: ignore[call-overload]
            "EventModel", __base__=_Envelope, **fields
        )
        self._alias = {f"f{i}": name for i, name in enumerate(self.features)}
        self._values = operator.attrgetter(*fields) if len(fields) > 1 else None

    def parse(self, value: bytes | None) -> Event:
        """Validate one message value; raise EventError with a reason when it is invalid."""
        if not value:
            raise EventError("empty", "message value is empty")
        if len(value) > self.max_bytes:
            raise EventError(
                "too_large", f"message is {len(value)} bytes; the limit is {self.max_bytes}"
            )
        try:
            model = self._model.model_validate_json(value)
        except ValidationError as exc:
            raise self._event_error(exc, value) from None
        try:
            timestamp_ms = parse_timestamp(model.timestamp)
        except ValueError as exc:
            raise EventError("bad_timestamp", str(exc)) from None
        getter = self._values
        values = tuple(getter(model)) if getter is not None else (model.f0,)  # type: ignore[attr-defined]
        return Event(model.event_id, model.entity_id, timestamp_ms, values)

    def _event_error(self, exc: ValidationError, value: bytes) -> EventError:
        err = exc.errors(include_url=False)[0]
        kind = err["type"]
        loc = err["loc"]
        if kind == "json_invalid":
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as ude:
                return EventError("not_utf8", f"message is not valid UTF-8: {ude.reason}")
            return EventError("not_json", f"message is not JSON: {err['msg']}")
        if kind in ("model_type", "model_attributes_type"):
            return EventError("not_object", "message is not a JSON object")
        field = str(loc[0]) if loc else ""
        if field in ("event_id", "entity_id"):
            return EventError("bad_identifier", f"{field}: {err['msg']}")
        if field == "timestamp":
            return EventError("bad_timestamp", f"timestamp: {err['msg']}")
        name = self._alias.get(field, field)
        reason = _FEATURE_ERRORS.get(kind, "non_numeric")
        if reason == "missing_feature":
            return EventError(reason, f"feature {name!r} is missing")
        return EventError(reason, f"feature {name!r}: {err['msg']}")


class LabelMessage(BaseModel):
    """Feedback that arrives later: ``{"event_id", "label", "timestamp"}``.

    >>> LabelMessage.model_validate_json(b'{"event_id": "tx-1", "label": 1}').label
    1
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    label: Literal[0, 1]
    timestamp: int | float | str | None = None
