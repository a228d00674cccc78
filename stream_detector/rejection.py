"""Why a message is rejected: a pydantic validation error as a dead-letter reason and message.

Events (:mod:`stream_detector.events`) and feedback labels (:mod:`stream_detector.online.labels`)
are both flat JSON objects validated by pydantic's JSON parser, and a message that fails either
is dead-lettered with a reason. The reasons a message's envelope can fail for are the same for
both: bytes that are not UTF-8 (``not_utf8``), not JSON (``not_json``), JSON that is not an
object (``not_object``), an identifier of the wrong type or length (``bad_identifier``), a
timestamp of the wrong type (``bad_timestamp``). :func:`rejection` maps those in one place; the
caller says what a missing field and an invalid field of its own are.

Examples
--------
>>> from pydantic import BaseModel, ValidationError
>>> class Ping(BaseModel):
...     ping_id: str
...     count: int
>>> def ping_rejection(exc, value):
...     return rejection(
...         exc, value, what="ping",
...         identifiers={"ping_id"},
...         missing=lambda field: EventError("missing_field", f"ping has no {field!r}"),
...         invalid=lambda field, err: EventError("bad_count", f"{field}: {err['msg']}"),
...     )
>>> for value in (b"{oops", b"[1]", b'{"count": 1}', b'{"ping_id": 7, "count": 1}',
...               b'{"ping_id": "p", "count": "many"}'):
...     try:
...         Ping.model_validate_json(value)
...     except ValidationError as exc:
...         err = ping_rejection(exc, value)
...         print(err.reason, "|", err)
not_json | ping is not JSON: Invalid JSON: key must be a string at line 1 column 2
not_object | ping is not a JSON object
missing_field | ping has no 'ping_id'
bad_identifier | ping_id: Input should be a valid string
bad_count | count: Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stream_detector.errors import EventError

__all__ = ["rejection"]


def rejection(
    exc: ValidationError,
    value: bytes,
    *,
    what: str,
    identifiers: Collection[str],
    missing: Callable[[str], EventError],
    invalid: Callable[[str, ErrorDetails], EventError],
    timestamp: str = "timestamp",
) -> EventError:
    """The :class:`~stream_detector.errors.EventError` a message failing validation becomes.

    Only the first error of ``exc`` counts. In order: invalid JSON is ``not_utf8`` when
    ``value`` is not UTF-8 and ``not_json`` otherwise; a JSON value that is not an object is
    ``not_object``; a missing field is what ``missing(field)`` says; an invalid ``timestamp``
    (the field so named) is ``bad_timestamp``; an invalid field among ``identifiers`` is ``bad_identifier``; any
    other invalid field is what ``invalid(field, error)`` says.

    Parameters
    ----------
    exc
        The error pydantic raised validating ``value``.
    value
        The message bytes that failed.
    what
        What the message is, as its error messages name it ("message", "label message").
    identifiers
        The fields that are identifiers (reason ``bad_identifier`` when invalid).
    missing
        The error for a required field that is absent, given the field's name.
    invalid
        The error for any other invalid field, given its name and pydantic's error details.
    timestamp
        The field that holds the message's time.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Tag(BaseModel):
    ...     tag_id: str
    >>> try:
    ...     Tag.model_validate_json(b"\\xff")
    ... except ValidationError as exc:
    ...     err = rejection(exc, b"\\xff", what="tag", identifiers={"tag_id"},
    ...                     missing=lambda f: EventError("missing_field", f),
    ...                     invalid=lambda f, e: EventError("bad_field", f))
    >>> err.reason, str(err)
    ('not_utf8', 'tag is not valid UTF-8: invalid start byte')
    """
    err = exc.errors(include_url=False)[0]
    kind, loc = err["type"], err["loc"]
    if kind == "json_invalid":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as ude:
            return EventError("not_utf8", f"{what} is not valid UTF-8: {ude.reason}")
        return EventError("not_json", f"{what} is not JSON: {err['msg']}")
    if kind in ("model_type", "model_attributes_type"):
        return EventError("not_object", f"{what} is not a JSON object")
    field = str(loc[0]) if loc else ""
    if kind == "missing":
        return missing(field)
    if field == timestamp:
        return EventError("bad_timestamp", f"{timestamp}: {err['msg']}")
    if field in identifiers:
        return EventError("bad_identifier", f"{field}: {err['msg']}")
    return invalid(field, err)
