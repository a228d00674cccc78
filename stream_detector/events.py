"""Event schemas and validation.

An event is a flat JSON object. Every numeric field the model bundle reads must be present as a
finite number; ``event_id`` and ``entity_id`` are optional strings; ``timestamp`` is optional,
ISO 8601 or epoch milliseconds. A bundle with behavioural features also declares key fields
(``customer_id``, ``terminal_id``, ...), each a non-empty string or an integer (read as its
decimal string), and, when it has time windows, requires the timestamp. Other fields pass
through and are ignored.

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
    "missing_key",
    "too_late",
]
"""Why a message was dead-lettered: the ``reason`` label and the ``error.type`` header.

``missing_key``: a key field of the behavioural features is absent or null (a key of another
type is ``bad_identifier``); ``bad_timestamp`` also covers a missing timestamp when the bundle
has time windows; ``too_late``: the event is older than its entity's latest event by more
than the feature spec's ``lateness`` (decided by the feature engine, not the parser)."""

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
    keys: tuple[str, ...] = ()
    """The key fields' values, in the parser's ``keys`` order."""


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
    keys: list[tuple[str, ...]] = field(default_factory=list)
    """Each valid event's key values, in the parser's ``keys`` order (empty tuples without)."""


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
_KeyValue = Annotated[str, Field(min_length=1, max_length=_MAX_ID_LENGTH)] | int


def _key_text(value: Any) -> str:
    """A key field's value as a string: strings as they are, integers in decimal."""
    return value if type(value) is str else str(value)


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
        The ordered numeric fields the bundle reads (may be empty when ``keys`` are given).
    keys
        Key fields every event must carry (``missing_key`` otherwise), each a non-empty
        string or an integer.
    require_timestamp
        Refuse an event without a timestamp (``bad_timestamp``): time windows need it.
    timestamp
        The field that holds the event time (the feature spec's ``timestamp``).
    max_bytes
        Messages longer than this are refused before parsing (reason ``too_large``).

    Examples
    --------
    >>> parser = EventParser(["amount"], keys=["customer_id"], require_timestamp=True)
    >>> event = parser.parse(b'{"customer_id": 17, "amount": 3.5, "timestamp": 1000}')
    >>> event.keys, event.values, event.timestamp_ms
    (('17',), (3.5,), 1000)
    >>> for bad in (b'{"amount": 3.5, "timestamp": 1000}', b'{"customer_id": "c", "amount": 1}'):
    ...     try:
    ...         parser.parse(bad)
    ...     except EventError as err:
    ...         print(err.reason, "|", err)
    missing_key | key field 'customer_id' is missing
    bad_timestamp | timestamp is missing; the bundle's time windows need the event time
    >>> EventParser(["amount"], timestamp="event_time").parse(
    ...     b'{"amount": 1, "event_time": "1970-01-01T00:00:02Z", "timestamp": 5}').timestamp_ms
    2000
    """

    def __init__(
        self,
        features: Sequence[str],
        *,
        keys: Sequence[str] = (),
        require_timestamp: bool = False,
        timestamp: str = "timestamp",
        max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.features = tuple(features)
        self.keys = tuple(keys)
        self.require_timestamp = require_timestamp
        self.timestamp = timestamp
        self.max_bytes = max_bytes
        fields: dict[str, Any] = {
            f"f{i}": (float, Field(alias=name)) for i, name in enumerate(self.features)
        }
        key_fields: dict[str, Any] = {
            f"k{i}": (_KeyValue, Field(alias=name)) for i, name in enumerate(self.keys)
        }
        time_field: dict[str, Any] = {}
        if timestamp != "timestamp":
            # The event time under the spec's name; a field called ``timestamp`` is then
            # an ordinary field, ignored like any other.
            time_field["timestamp"] = (
                int | float | str | None,
                Field(default=None, alias=timestamp),
            )
        self._model: type[_Envelope] = create_model(
            "EventModel", __base__=_Envelope, **fields, **key_fields, **time_field
        )
        self._alias = {f"f{i}": name for i, name in enumerate(self.features)}
        self._key_alias = {f"k{i}": name for i, name in enumerate(self.keys)}
        # The features of a parsed document, as a tuple (KeyError when one is missing).
        self._row_of = _tuple_getter(self.features)
        self._keys_of = _tuple_getter(self.keys)
        self._values = operator.attrgetter(*fields) if len(fields) > 1 else None
        self._key_values = _tuple_getter(tuple(key_fields), attributes=True)

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
        if timestamp_ms is None and self.require_timestamp:
            raise EventError(
                "bad_timestamp",
                f"{self.timestamp} is missing; the bundle's time windows need the event time",
            )
        getter = self._values
        if getter is not None:
            values = tuple(getter(model))
        else:
            values = (model.f0,) if self.features else ()  # type: ignore[attr-defined]
        keys = tuple(_key_text(v) for v in self._key_values(model))
        return Event(model.event_id, model.entity_id, timestamp_ms, values, keys)

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
        max_bytes, loads, row_of, keys_of = (
            self.max_bytes,
            orjson.loads,
            self._row_of,
            self._keys_of,
        )
        need_time, time_field = self.require_timestamp, self.timestamp
        positions: list[int] = []
        rows: list[tuple[Any, ...]] = []
        key_rows: list[tuple[str, ...]] = []
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
                keys = keys_of(doc)
                if keys and not all(type(k) is str and 0 < len(k) <= _MAX_ID_LENGTH for k in keys):
                    keys = _plain_keys(keys)
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
                stamp = doc.get(time_field)
                if stamp is not None and type(stamp) is not int:
                    if type(stamp) is str:
                        stamp = parse_timestamp(stamp)
                    elif type(stamp) is float and abs(stamp) < _EXACT:
                        stamp = int(stamp)
                    else:
                        raise _NotPlain
                elif need_time and stamp is None:
                    raise _NotPlain
            except (_NotPlain, KeyError, ValueError):  # orjson.JSONDecodeError is a ValueError
                slow.append(i)
                continue
            positions.append(i)
            rows.append(row)
            key_rows.append(keys)
            event_ids.append(event_id)
            entity_ids.append(entity_id)
            stamps.append(stamp)
        X = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.features))
        plain: npt.NDArray[np.bool_] = np.asarray((np.abs(X) < _EXACT).all(axis=1))
        fast = EventBatch(positions, X, event_ids, entity_ids, stamps, keys=key_rows)
        if not slow and plain.all():
            return fast
        return self._merge_slow(values, slow, plain, fast)

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
            keys=[fast.keys[j] for j in keep],
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
            merged.keys.append(event.keys)
            slow_rows.append(event.values)
        X = np.concatenate(
            [
                fast.X[keep],
                np.array(slow_rows, dtype=np.float64).reshape(len(slow_rows), len(self.features)),
            ]
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
            merged.keys = [merged.keys[j] for j in pick]
            X = X[order]
        merged.X = X
        return merged

    def _event_error(self, exc: ValidationError, value: bytes) -> EventError:
        return rejection(
            exc,
            value,
            what="message",
            identifiers=_IDENTIFIERS,
            timestamp=self.timestamp,
            missing=self._missing_feature,
            invalid=self._invalid_feature,
        )

    def _missing_feature(self, field: str) -> EventError:
        if field in self.keys:
            return EventError("missing_key", f"key field {field!r} is missing")
        return EventError(
            "missing_feature", f"feature {self._alias.get(field, field)!r} is missing"
        )

    def _invalid_feature(self, field: str, err: ErrorDetails) -> EventError:
        if field in self.keys:
            if err.get("input") is None:
                return EventError("missing_key", f"key field {field!r} is missing")
            return EventError(
                "bad_identifier", f"key field {field!r} must be a non-empty string or an integer"
            )
        reason = "non_finite" if err["type"] == "finite_number" else "non_numeric"
        return EventError(reason, f"feature {self._alias.get(field, field)!r}: {err['msg']}")


def _tuple_getter(
    names: Sequence[str], *, attributes: bool = False
) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving ``names`` of a mapping (or attributes of an object) as a tuple."""
    if not names:
        return lambda _: ()
    getter = (operator.attrgetter if attributes else operator.itemgetter)(*names)
    return getter if len(names) > 1 else lambda doc: (getter(doc),)


def _plain_keys(keys: tuple[Any, ...]) -> tuple[str, ...]:
    """Key values as strings when each is an acceptable string or integer; else decline."""
    out = []
    for k in keys:
        if type(k) is int:
            out.append(str(k))
        elif type(k) is str and 0 < len(k) <= _MAX_ID_LENGTH:
            out.append(k)
        else:
            raise _NotPlain
    return tuple(out)


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
