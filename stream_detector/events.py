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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, create_model
from pydantic_core import ErrorDetails

from stream_detector.errors import EventError
from stream_detector.rejection import rejection

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "Event",
    "EventBatch",
    "EventParser",
    "InvalidReason",
    "LabelMessage",
    "LabelReason",
    "check_size",
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

LabelReason = Literal[
    "empty",
    "too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "bad_identifier",
    "bad_label",
    "bad_timestamp",
]
"""Why a label message was dead-lettered: the ``reason`` label of
``stream_detector_labels_invalid_total`` and the dead letter's ``error.type`` header."""

DEFAULT_MAX_EVENT_BYTES = 1_048_576
_MAX_ID_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event: identifiers and the feature values in the bundle's order."""

    event_id: str | None
    entity_id: str | None
    timestamp_ms: int | None
    values: tuple[float, ...]


@dataclass(slots=True)
class EventBatch:
    """A batch of messages validated at once: the valid events as columns, the rest as errors.

    Row ``j`` of ``X`` and item ``j`` of each list belong to message ``positions[j]`` of the
    input; ``errors`` holds ``(position, EventError)`` of the invalid messages, in input order.
    """

    positions: list[int] = field(default_factory=list)
    X: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    event_ids: list[str | None] = field(default_factory=list)
    entity_ids: list[str | None] = field(default_factory=list)
    timestamps_ms: list[int | None] = field(default_factory=list)
    errors: list[tuple[int, EventError]] = field(default_factory=list)


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


_NUMBER_TYPES = frozenset({int, float})
_EXACT = 2.0**53
"""Integers up to this size are exact floats: both JSON parsers agree on every number below."""


class _NotPlain(Exception):
    """The fast path of :meth:`EventParser.parse_many` declines a message."""


_IDENTIFIERS = frozenset({"event_id", "entity_id"})


def check_size(value: bytes | None, max_bytes: int, what: str) -> bytes:
    """``value`` if it is neither empty nor over ``max_bytes``; else EventError (``empty``,
    ``too_large``) naming ``what`` the value is.

    >>> check_size(b"", 10, "label message")
    Traceback (most recent call last):
    ...
    stream_detector.errors.EventError: label message value is empty
    """
    if not value:
        raise EventError("empty", f"{what} value is empty")
    if len(value) > max_bytes:
        raise EventError("too_large", f"{what} is {len(value)} bytes; the limit is {max_bytes}")
    return value


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
        self._model: type[_Envelope] = create_model("EventModel", __base__=_Envelope, **fields)
        self._alias = {f"f{i}": name for i, name in enumerate(self.features)}
        # The features of a parsed document, as a tuple (KeyError when one is missing).
        getter = operator.itemgetter(*self.features)
        self._row_of: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            getter if len(self.features) > 1 else lambda doc: (getter(doc),)
        )
        self._values = operator.attrgetter(*fields) if len(fields) > 1 else None

    def parse(self, value: bytes | None) -> Event:
        """Validate one message value; raise EventError with a reason when it is invalid."""
        value = check_size(value, self.max_bytes, "message")
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

    def parse_many(self, values: Sequence[bytes | None]) -> EventBatch:
        """Validate a batch of message values at once, with the results :meth:`parse` gives.

        Plainly valid events take a fast path: ``orjson`` parses each value, plain type and
        length checks stand in for the schema, and one vectorised check over the batch's
        feature matrix keeps values within +-2**53 (where every JSON number converts to the
        same float in both parsers). Any message the fast path does not accept is handed to
        :meth:`parse`, so invalid messages get exactly its reasons and messages.

        Examples
        --------
        >>> parser = EventParser(["amount", "hour"])
        >>> batch = parser.parse_many([b'{"amount": 12.5, "hour": 3}', b'{"hour": 3}',
        ...                            b'{"event_id": "tx-9", "amount": 1, "hour": 0}'])
        >>> batch.positions, batch.X.tolist(), batch.event_ids
        ([0, 2], [[12.5, 3.0], [1.0, 0.0]], [None, 'tx-9'])
        >>> [(i, err.reason) for i, err in batch.errors]
        [(1, 'missing_feature')]
        """
        max_bytes, loads, row_of = self.max_bytes, orjson.loads, self._row_of
        positions: list[int] = []
        rows: list[tuple[Any, ...]] = []
        event_ids: list[str | None] = []
        entity_ids: list[str | None] = []
        stamps: list[int | None] = []
        slow: list[int] = []
        for i, value in enumerate(values):
            try:
                if not value or len(value) > max_bytes:
                    raise _NotPlain
                doc = loads(value)
                if type(doc) is not dict:
                    raise _NotPlain
                row = row_of(doc)
                if not _NUMBER_TYPES.issuperset(map(type, row)):
                    raise _NotPlain
                event_id = doc.get("event_id")
                if event_id is not None and (
                    type(event_id) is not str or not 0 < len(event_id) <= _MAX_ID_LENGTH
                ):
                    raise _NotPlain
                entity_id = doc.get("entity_id")
                if entity_id is not None and (
                    type(entity_id) is not str or len(entity_id) > _MAX_ID_LENGTH
                ):
                    raise _NotPlain
                stamp = doc.get("timestamp")
                if stamp is not None and type(stamp) is not int:
                    if type(stamp) is str:
                        stamp = parse_timestamp(stamp)
                    elif type(stamp) is float and abs(stamp) < _EXACT:
                        stamp = int(stamp)
                    else:
                        raise _NotPlain
            except (_NotPlain, KeyError, ValueError):  # orjson.JSONDecodeError is a ValueError
                slow.append(i)
                continue
            positions.append(i)
            rows.append(row)
            event_ids.append(event_id)
            entity_ids.append(entity_id)
            stamps.append(stamp)
        X = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.features))
        plain: npt.NDArray[np.bool_] = np.asarray((np.abs(X) < _EXACT).all(axis=1))
        if not slow and plain.all():
            return EventBatch(positions, X, event_ids, entity_ids, stamps)
        return self._merge_slow(
            values, slow, plain, EventBatch(positions, X, event_ids, entity_ids, stamps)
        )

    def _merge_slow(
        self,
        values: Sequence[bytes | None],
        slow: list[int],
        plain: npt.NDArray[np.bool_],
        fast: EventBatch,
    ) -> EventBatch:
        """Validate the messages the fast path left with :meth:`parse`; merge in input order."""
        keep = np.flatnonzero(plain).tolist()
        slow = sorted(slow + [fast.positions[j] for j in np.flatnonzero(~plain).tolist()])
        merged = EventBatch(
            positions=[fast.positions[j] for j in keep],
            event_ids=[fast.event_ids[j] for j in keep],
            entity_ids=[fast.entity_ids[j] for j in keep],
            timestamps_ms=[fast.timestamps_ms[j] for j in keep],
        )
        slow_rows: list[tuple[float, ...]] = []
        for i in slow:
            try:
                event = self.parse(values[i])
            except EventError as err:
                merged.errors.append((i, err))
                continue
            merged.positions.append(i)
            merged.event_ids.append(event.event_id)
            merged.entity_ids.append(event.entity_id)
            merged.timestamps_ms.append(event.timestamp_ms)
            slow_rows.append(event.values)
        X = np.concatenate(
            [fast.X[keep], np.array(slow_rows, dtype=np.float64).reshape(len(slow_rows), -1)]
            if slow_rows
            else [fast.X[keep]]
        )
        order = np.argsort(np.asarray(merged.positions), kind="stable")
        if (order[1:] < order[:-1]).any():
            pick = order.tolist()
            merged.positions = [merged.positions[j] for j in pick]
            merged.event_ids = [merged.event_ids[j] for j in pick]
            merged.entity_ids = [merged.entity_ids[j] for j in pick]
            merged.timestamps_ms = [merged.timestamps_ms[j] for j in pick]
            X = X[order]
        merged.X = X
        return merged

    def _event_error(self, exc: ValidationError, value: bytes) -> EventError:
        return rejection(
            exc,
            value,
            what="message",
            identifiers=_IDENTIFIERS,
            missing=self._missing_feature,
            invalid=self._invalid_feature,
        )

    def _missing_feature(self, field: str) -> EventError:
        return EventError(
            "missing_feature", f"feature {self._alias.get(field, field)!r} is missing"
        )

    def _invalid_feature(self, field: str, err: ErrorDetails) -> EventError:
        reason = "non_finite" if err["type"] == "finite_number" else "non_numeric"
        return EventError(reason, f"feature {self._alias.get(field, field)!r}: {err['msg']}")


class LabelMessage(BaseModel):
    """Feedback that arrives later: ``{"event_id", "label", "timestamp"}``.

    >>> LabelMessage.model_validate_json(b'{"event_id": "tx-1", "label": 1}').label
    1
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    label: Annotated[int, Strict(), Field(ge=0, le=1)]
    """0 or 1 as a JSON integer; ``true`` or ``1.0`` are refused."""
    timestamp: int | float | str | None = None
