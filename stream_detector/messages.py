"""The message model: what the service consumes (:class:`Message` and its :class:`Source`) and
what one batch produces (:class:`BatchOutcome`: decisions, alerts and :class:`DeadLetter`).

``score``, ``serve``, the Kafka delivery code and the online components all speak in these
types; none of them holds logic.

>>> Message(key=None, value=b"{}", source=Source("events", 0, 7)).source.offset
7
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from stream_detector.errors import EventError

__all__ = ["BatchOutcome", "DeadLetter", "Message", "Source"]


class Source(NamedTuple):
    """Where a message came from (a named tuple: the service builds one per message)."""

    topic: str
    partition: int
    offset: int


class Message(NamedTuple):
    """One consumed message: raw key and value bytes, headers and source."""

    key: bytes | None
    value: bytes | None
    source: Source
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An invalid message and why."""

    message: Message
    error: EventError


@dataclass(slots=True)
class BatchOutcome:
    """What one batch produced; ``decisions`` are in input order."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    """One per valid event (empty when the caller asked for none)."""
    event_ids: list[str] = field(default_factory=list)
    """Each valid event's id (its ``event_id``, or ``topic-partition-offset``)."""
    flagged: list[bool] = field(default_factory=list)
    """Whether each valid event was flagged."""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_positions: list[int] = field(default_factory=list)
    """For each alert, the index of its event among the valid events (``event_ids``)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    scores: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    features: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    """The valid events' feature rows, in decision order (drift detection, online learning)."""
    lags_seconds: list[float] = field(default_factory=list)
