"""The ``features:`` section of the training configuration, validated.

A :class:`FeatureSpec` declares numeric fields used as they are, calendar features of the
event time and per-entity event-time windows (:class:`WindowFeature`). It names its output
columns (:attr:`FeatureSpec.names`), the event fields it needs
(:attr:`FeatureSpec.required_fields`) and how much history the state must keep
(:attr:`FeatureSpec.horizon_ms`). :meth:`FeatureSpec.parse` turns a mapping read from YAML into
a spec, or raises a :class:`~stream_detector.errors.ConfigError` with one line naming the
problem.

Durations are a whole number and a unit: ``ms``, ``s``, ``m``, ``h``, ``d`` or ``w``
(``"10m"``, ``"7d"``).

Examples
--------
>>> spec = FeatureSpec.parse({
...     "numeric": ["amount"],
...     "calendar": ["hour"],
...     "windows": [
...         {"key": "customer_id", "windows": ["1d", "30d"], "field": "amount",
...          "stats": ["count", "mean"], "relative": ["ratio"]},
...         {"key": "terminal_id", "windows": ["7d"], "delay": "7d", "labels": ["rate"]},
...     ],
... })
>>> spec.names[:4]
('amount', 'hour', 'customer_id.amount.count.1d', 'customer_id.amount.mean.1d')
>>> spec.names[-1]
'terminal_id.fraud_rate.7d.delay7d'
>>> spec.horizon_ms // 86_400_000
31
>>> FeatureSpec.parse({"windows": [{"key": "customer_id", "windows": ["7x"]}]})
Traceback (most recent call last):
...
stream_detector.errors.ConfigError: features.windows[0].windows[0]: '7x' is not a duration; expected a whole number and a unit (ms, s, m, h, d, w), e.g. '10m' or '7d'
"""

from __future__ import annotations

import hashlib
import json
import re
import zoneinfo
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream_detector.errors import ConfigError
from stream_detector.features.base import IDENTIFIER_COLUMNS

__all__ = [
    "Calendar",
    "Duration",
    "FeatureSpec",
    "LabelStat",
    "Relative",
    "Stat",
    "WindowFeature",
    "duration_ms",
]

Stat = Literal["count", "sum", "mean", "std", "min", "max"]
"""A statistic of a window's values."""
Relative = Literal["ratio", "zscore"]
"""The current value against the window: ``value / mean`` or ``(value - mean) / std``."""
LabelStat = Literal["count", "rate"]
"""Confirmed frauds in a delayed window: their number, or their share of the window's events."""
Calendar = Literal["hour", "day_of_week", "weekend", "night"]
"""A calendar feature of the event time, in the spec's time zone."""

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def duration_ms(text: str) -> int:
    """Milliseconds of a duration such as ``"10m"`` or ``"7d"``.

    Examples
    --------
    >>> duration_ms("10m"), duration_ms("0s"), duration_ms("2w")
    (600000, 0, 1209600000)
    """
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; expected a whole number and a unit "
            "(ms, s, m, h, d, w), e.g. '10m' or '7d'"
        )
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def _check_duration(text: str) -> str:
    duration_ms(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
"""A duration string: a whole number and a unit (``ms``, ``s``, ``m``, ``h``, ``d``, ``w``)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _unique(values: list[Any], what: str) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{what} must be unique; got {seen[0]!r} twice")


class WindowFeature(BaseModel):
    """Per-entity sliding event-time windows of one key field.

    For an event at time ``t``, a window of length ``w`` and delay ``d`` covers the entity's
    other events with timestamps in ``[t - d - w, t - d)``, plus the event itself when
    ``d`` is zero (see :mod:`stream_detector.features`).

    Examples
    --------
    >>> WindowFeature(key="customer_id", windows=["1h"], stats=["count"]).names
    ('customer_id.count.1h',)
    """

    model_config = _FROZEN

    key: str = Field(min_length=1)
    windows: list[Duration]
    field: str | None = None
    stats: list[Stat] = []
    relative: list[Relative] = []
    since_previous: bool = False
    distinct: str | None = None
    delay: Duration = "0s"
    labels: list[LabelStat] = []

    @model_validator(mode="after")
    def _consistent(self) -> WindowFeature:
        if not self.windows:
            raise ValueError("at least one window is required; got none")
        for text in self.windows:
            if duration_ms(text) <= 0:
                raise ValueError(f"a window must be longer than 0; got {text!r}")
        _unique([duration_ms(w) for w in self.windows], "window lengths (in ms)")
        _unique(list(self.stats), "stats")
        _unique(list(self.relative), "relative")
        _unique(list(self.labels), "labels")
        needs_field = [s for s in self.stats if s != "count"] + list(self.relative)
        if needs_field and self.field is None:
            raise ValueError(f"{needs_field[0]!r} needs a numeric `field`; got none")
        if self.field is not None and not (set(self.stats) - {"count"} or self.relative):
            raise ValueError(
                f"field {self.field!r} is given but no stat or relative feature uses it"
            )
        delayed = self.delay_ms > 0
        if delayed and not (self.stats or self.labels or self.relative or self.distinct):
            raise ValueError(f"delay {self.delay!r} needs labels or stats to delay; got neither")
        if self.labels and not delayed:
            raise ValueError(
                "labels need a delay > 0 (a label is known only after its event); got '0s'"
            )
        if self.since_previous and delayed:
            raise ValueError("since_previous cannot be delayed; use a separate entry")
        if not (self.stats or self.relative or self.labels or self.distinct or self.since_previous):
            raise ValueError(
                f"windows of {self.key!r} compute nothing; expected stats, relative, distinct, "
                "labels or since_previous"
            )
        return self

    @property
    def delay_ms(self) -> int:
        """The delay in milliseconds."""
        return duration_ms(self.delay)

    @property
    def span_ms(self) -> int:
        """The longest window plus the delay: how far back this entry looks."""
        return max(duration_ms(w) for w in self.windows) + self.delay_ms

    @property
    def names(self) -> tuple[str, ...]:
        """Output columns, in order: per window, stats, relative, distinct, labels; then
        since_previous."""
        return tuple(name for _, _, name in self.columns())

    def columns(self) -> list[tuple[str | None, str, str]]:
        """``(window, what, name)`` per output column; ``what`` is a stat, ``ratio``,
        ``zscore``, ``distinct``, ``fraud_count``, ``fraud_rate`` or ``since_previous``
        (whose window is ``None``)."""
        suffix = f".delay{self.delay}" if self.delay_ms else ""
        base = f"{self.key}.{self.field}" if self.field else self.key
        columns: list[tuple[str | None, str, str]] = []
        for w in self.windows:
            columns += [(w, stat, f"{base}.{stat}.{w}{suffix}") for stat in self.stats]
            columns += [(w, rel, f"{base}.{rel}.{w}{suffix}") for rel in self.relative]
            if self.distinct:
                columns.append((w, "distinct", f"{self.key}.{self.distinct}.distinct.{w}{suffix}"))
            columns += [
                (w, f"fraud_{lab}", f"{self.key}.fraud_{lab}.{w}{suffix}") for lab in self.labels
            ]
        if self.since_previous:
            columns.append((None, "since_previous", f"{self.key}.since_previous"))
        return columns


class FeatureSpec(BaseModel):
    """The declared features: numeric fields, calendar features and per-entity windows.

    Parameters
    ----------
    timestamp
        The event-time field (epoch milliseconds in the engine's columns).
    time_zone
        Zone of the calendar features (an IANA name such as ``"Europe/Paris"``).
    numeric
        Fields used as they are.
    calendar
        ``hour`` (0-23), ``day_of_week`` (0 = Monday), ``weekend`` (0/1), ``night`` (0/1).
    night_hours
        ``(start, end)``: night is ``start <= hour`` or ``hour < end`` (when ``start > end``).
    windows
        Per-entity windows, see :class:`WindowFeature`.
    lateness
        How far behind its entity's latest event an event may be and still be computed; older
        events are refused (``too_late``).

    Examples
    --------
    >>> FeatureSpec(numeric=["amount"], calendar=["night"]).names
    ('amount', 'night')
    """

    model_config = _FROZEN

    timestamp: str = Field(default="timestamp", min_length=1)
    time_zone: str = "UTC"
    numeric: list[str] = []
    calendar: list[Calendar] = []
    night_hours: tuple[int, int] = (22, 6)
    windows: list[WindowFeature] = []
    lateness: Duration = "1d"

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"time_zone: unknown zone {self.time_zone!r}") from exc
        start, end = self.night_hours
        if not (0 <= start <= 23 and 0 <= end <= 23) or start == end:
            raise ValueError(
                f"night_hours must be two different hours in [0, 23]; got {self.night_hours}"
            )
        _unique(list(self.calendar), "calendar features")
        clash = sorted((IDENTIFIER_COLUMNS | {self.timestamp}).intersection(self.numeric))
        if clash:
            raise ValueError(f"identifier columns cannot be numeric features; got {clash}")
        if not self.names:
            raise ValueError("no features declared; expected numeric, calendar or windows")
        _unique(list(self.names), "feature names")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, *, where: str = "features") -> FeatureSpec:
        """A spec from a mapping (the YAML section), or a one-line :class:`ConfigError`.

        Examples
        --------
        >>> FeatureSpec.parse({"windows": [{"key": "c", "windows": ["1h"], "stats": ["median"]}]})
        Traceback (most recent call last):
        ...
        stream_detector.errors.ConfigError: features.windows[0].stats[0]: unknown value 'median'; expected one of count, sum, mean, std, min, max
        """
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise ConfigError(_one_line(exc, where)) from None

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The output columns, in order: numeric, calendar, then each window entry's."""
        names = [*self.numeric, *self.calendar]
        for window in self.windows:
            names += window.names
        return tuple(names)

    @cached_property
    def required_fields(self) -> tuple[str, ...]:
        """Event fields the features read: timestamp (when needed), keys, numeric fields."""
        fields: list[str] = []
        if self.calendar or self.windows:
            fields.append(self.timestamp)
        for window in self.windows:
            fields += [window.key, *([window.distinct] if window.distinct else [])]
        fields += self.numeric
        fields += [w.field for w in self.windows if w.field]
        return tuple(dict.fromkeys(fields))

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The key fields of the windows, in order of first appearance."""
        return tuple(dict.fromkeys(w.key for w in self.windows))

    @cached_property
    def lateness_ms(self) -> int:
        """The lateness in milliseconds."""
        return duration_ms(self.lateness)

    @cached_property
    def horizon_ms(self) -> int:
        """The longest window plus its delay, plus the lateness: older state is expired."""
        span = max((w.span_ms for w in self.windows), default=0)
        return span + self.lateness_ms

    @cached_property
    def has_labels(self) -> bool:
        """Whether a window counts confirmed frauds."""
        return any(w.labels for w in self.windows)

    @cached_property
    def digest(self) -> str:
        """A short hash of the spec: state written under one spec is not read by another."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _one_line(exc: ValidationError, where: str) -> str:
    error = exc.errors()[0]
    path = where
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    ctx = error.get("ctx") or {}
    if error["type"] == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        message = f"unknown value {error['input']!r}; expected one of {expected}"
    elif error["type"] in ("value_error", "assertion_error"):
        message = str(ctx.get("error", error["msg"]))
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = f"{error['msg']}; got {error['input']!r}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}: {message}{more}".replace("\n", " ")
