"""Event-time alignment: the partitions of the events and labels topics read in step by time.

The feature engine refuses an event older than its entity's latest by more than the spec's
``lateness`` (``too_late``). Kafka hands the partitions of the events topic over
independently, so in a backlog (a restart after an outage, a new consumer group, a replay)
one partition can be read days of event time ahead of another; a terminal's events, spread
over every partition when events are keyed by card, would then reach the state days out of
order and the slower partitions' events would be dead-lettered as too late.

:class:`EventTimeAligner` sits between ``poll`` and the batch. It keeps, per events
partition, the records not yet decided, in offset order, and releases a partition's records
only while their event time is at most ``margin`` (half the lateness) past the slowest
partition's; a partition with records held back is paused at once, so nothing more is fetched
for it (what it holds is bounded by what one fetch returned), and resumed once they are all
released. The labels topic's partitions are aligned the same way, by the time each label
became known, so that a backlog's labels reach the state by the time of the events that
follow them (as ``score --labels`` replays them). A partition counts as caught up, and is not
waited for, once it has returned every record up to its high watermark or none for
``idle_s``; the aligner stops waiting altogether (releasing what it holds) when nothing was
released for ``give_up_s`` while it held records. Other topics pass straight through; so
does a message without a readable time (its parser dead-letters it).

Offsets. Records of a partition are released in offset order, and the run loop commits a
partition only up to the last record it decided, so no commit ever passes a held record: a
crash, a stop or a rebalance re-reads held records from the last commit, under at-least-once
and exactly-once alike. When a batch is replayed (the loop seeks its partitions back,
:meth:`EventTimeAligner.rewound`) or the group rebalances, the aligner drops what it holds
for those partitions, seeks them back to their first held record (or the batch's start), and
lets the consumer read them again; records at offsets it already holds are ignored.

kafka-python 3.0.12 parks the records it fetched but did not return yet for a partition that
is paused, and gives them back on ``resume`` only when it holds no other partition's records
in line; it keeps an exhausted one there after an empty fetch, so a partition paused in the
middle of a fetch would never be read again (nor fetched: its parked records count as in
hand), and it restores only one parked partition per call, so of several partitions resumed
at once the others stayed parked, never fetched again. :func:`resume` therefore drops the
records parked for the partitions it resumes (their position never passed them: they are
fetched again) and clears that exhausted entry. Records below the
next offset the aligner expects of a partition (after a replay or a rebalance sought it
back) are dropped as repeats.

Examples
--------
>>> aligner = EventTimeAligner(fields={"events": "t", "labels": "timestamp"}, margin_ms=10)
>>> aligner.release_limit({"a": 100, "b": 40})  # the slowest partition is at 40
50
>>> aligner.release_limit({}) is None  # nothing to wait for
True
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from stream_detector.events import parse_timestamp

__all__ = ["EventTimeAligner", "resume"]

log = logging.getLogger(__name__)

IDLE_S = 2.0
"""A partition that returned nothing for this long counts as caught up."""
GIVE_UP_S = 30.0
"""Stop waiting for the slowest partitions after this long without releasing anything."""

_COMMITTED_TIMEOUT_MS = 5_000
_UNKNOWN = -(2**62)
"""The front of a partition that has returned nothing yet: wait for it (up to ``idle_s``)."""


@dataclass
class _Lane:
    """One events partition: the records held back, and where it stands."""

    seen_at: float
    """Monotonic time it last returned records (or was assigned, or resumed)."""
    held: deque[tuple[int | None, Any]] = field(default_factory=deque)
    next_offset: int | None = None
    last_time: int | None = None
    paused: bool = False

    def head_time(self) -> int | None:
        for stamp, _ in self.held:
            if stamp is not None:
                return stamp
        return None


class EventTimeAligner:
    """Holds back events partitions that run ahead in event time; see the module docstring.

    Parameters
    ----------
    fields
        Each topic aligned -> the field of its messages that holds their time (for events
        the feature spec's ``timestamp``); other topics pass through.
    margin_ms
        How far past the slowest partition a partition's records may be released.
    idle_s, give_up_s
        See :data:`IDLE_S` and :data:`GIVE_UP_S`.
    on_held, on_state
        Called with the number of records newly held back, and with the number of paused
        partitions and the event-time skew in seconds after each call (metrics).
    clock
        Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        fields: Mapping[str, str],
        margin_ms: int,
        idle_s: float = IDLE_S,
        give_up_s: float = GIVE_UP_S,
        on_held: Callable[[int], None] = lambda n: None,
        on_state: Callable[[int, float], None] = lambda paused, skew: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fields = dict(fields)
        self.margin_ms = margin_ms
        self.idle_s = idle_s
        self.give_up_s = give_up_s
        self.on_held = on_held
        self.on_state = on_state
        self.clock = clock
        self._lanes: dict[TopicPartition, _Lane] = {}
        self._rebalances = 0
        self._stalled_since: float | None = None

    @property
    def held(self) -> int:
        """Records held back now, over all partitions."""
        return sum(len(lane.held) for lane in self._lanes.values())

    def release_limit(self, fronts: Mapping[Hashable, int]) -> int | None:
        """The latest event time that may be released: the slowest front plus the margin
        (None when no partition is waited for)."""
        return min(fronts.values()) + self.margin_ms if fronts else None

    def align(
        self,
        consumer: KafkaConsumer,
        polled: Mapping[TopicPartition, list[Any]],
        *,
        rebalances: int = 0,
    ) -> dict[TopicPartition, list[Any]]:
        """The records of a poll to decide now, by partition, in offset order; the others
        are held back (and their partitions paused) until the slowest partition catches up.

        ``rebalances`` counts the group's assignments so far: when it changed, what was held
        is dropped and read again from its first offset.
        """
        now = self.clock()
        polled = dict(polled)
        if rebalances != self._rebalances:
            self._rebalances = rebalances
            self._drop(consumer, [tp for tp, lane in self._lanes.items() if lane.held], polled)
            self._lanes.clear()
        out: dict[TopicPartition, list[Any]] = {}
        arrived: dict[TopicPartition, int] = {}
        for tp, records in polled.items():
            field = self.fields.get(tp.topic)
            if field is None:
                out[tp] = records
                continue
            lane = self._lanes.get(tp)
            if lane is None:
                lane = self._lanes[tp] = _Lane(now)
            lane.seen_at = now
            n = 0
            for record in records:
                if lane.next_offset is not None and record.offset < lane.next_offset:
                    continue  # read again after a seek: held already
                lane.next_offset = record.offset + 1
                lane.held.append((_time(record.value, field), record))
                n += 1
            arrived[tp] = n
        assigned = _assignment(consumer)
        for tp in list(self._lanes):
            if assigned is not None and tp not in assigned:
                del self._lanes[tp]  # revoked: its new owner reads it from the last commit
        if assigned is not None:
            for tp in assigned:
                if tp.topic in self.fields and tp not in self._lanes:
                    self._lanes[tp] = _Lane(now)
        fronts = self._fronts(consumer, now)
        limit = self.release_limit(fronts)
        released = self._release(limit, out)
        if self.held and not released:
            if self._stalled_since is None:
                self._stalled_since = now
            elif now - self._stalled_since >= self.give_up_s:
                slowest = min(fronts.values())
                slow = sorted(tp.partition for tp, t in fronts.items() if t == slowest)
                log.warning(
                    "event-time alignment gave up waiting partitions=%s seconds=%.0f held=%d",
                    ",".join(map(str, slow)) or "-",
                    now - self._stalled_since,
                    self.held,
                )
                self._release(None, out)
                self._stalled_since = None
        else:
            self._stalled_since = None
        newly = sum(
            min(n, len(self._lanes[tp].held)) for tp, n in arrived.items() if tp in self._lanes
        )
        if newly:
            self.on_held(newly)
        self._pace(consumer, now)
        known = [t for t in fronts.values() if t != _UNKNOWN]
        skew = (max(known) - min(known)) / 1000.0 if len(known) > 1 else 0.0
        self.on_state(sum(lane.paused for lane in self._lanes.values()), skew)
        return out

    def rewound(self, consumer: KafkaConsumer, starts: Mapping[TopicPartition, int]) -> None:
        """A batch was not delivered and its partitions were sought back to ``starts``:
        drop what is held for them (it is read again) and resume them."""
        for tp, offset in starts.items():
            lane = self._lanes.get(tp)
            if lane is None:
                continue
            lane.held.clear()
            lane.next_offset = offset
            if lane.paused:
                resume(consumer, tp)  # the run loop sought it back already
                lane.paused = False

    # -- steps -------------------------------------------------------------------------------

    def _fronts(self, consumer: KafkaConsumer, now: float) -> dict[TopicPartition, int]:
        """Each partition waited for -> the event time it stands at."""
        fronts: dict[TopicPartition, int] = {}
        for tp, lane in self._lanes.items():
            head = lane.head_time()
            if head is not None:
                fronts[tp] = head
            elif lane.held or lane.paused or self._caught_up(consumer, tp, lane, now):
                continue
            else:
                fronts[tp] = lane.last_time if lane.last_time is not None else _UNKNOWN
        return fronts

    def _caught_up(
        self, consumer: KafkaConsumer, tp: TopicPartition, lane: _Lane, now: float
    ) -> bool:
        if now - lane.seen_at >= self.idle_s:
            return True
        if lane.next_offset is None:
            return False
        try:
            high = consumer.highwater(tp)
        except (KafkaError, AssertionError):
            return False
        return high is not None and lane.next_offset >= high

    def _release(self, limit: int | None, out: dict[TopicPartition, list[Any]]) -> int:
        n = 0
        for tp, lane in self._lanes.items():
            taken = []
            held = lane.held
            while held:
                stamp, record = held[0]
                if limit is not None and stamp is not None and stamp > limit:
                    break
                held.popleft()
                taken.append(record)
                if stamp is not None and (lane.last_time is None or stamp > lane.last_time):
                    lane.last_time = stamp
            if taken:
                out.setdefault(tp, []).extend(taken)
                n += len(taken)
        return n

    def _pace(self, consumer: KafkaConsumer, now: float) -> None:
        """Pause the partitions with records held back; resume the others."""
        for tp, lane in self._lanes.items():
            if lane.held and not lane.paused:
                consumer.pause(tp)
                lane.paused = True
            elif not lane.held and lane.paused:
                resume(consumer, tp)
                lane.paused = False
                lane.seen_at = now

    def _drop(
        self,
        consumer: KafkaConsumer,
        partitions: list[TopicPartition],
        polled: dict[TopicPartition, list[Any]],
    ) -> None:
        """After a rebalance: read the held records of ``partitions`` again from the last
        commit (their first held offset when the group has none)."""
        assigned = _assignment(consumer) or set()
        for tp in partitions:
            lane = self._lanes[tp]
            first = lane.held[0][1].offset
            polled.pop(tp, None)
            if tp not in assigned:
                continue
            try:
                committed = consumer.committed(tp, timeout_ms=_COMMITTED_TIMEOUT_MS)
            except KafkaError:
                committed = None
            if lane.paused:
                resume(consumer, tp)
            consumer.seek(tp, committed if committed is not None and committed <= first else first)
        for tp in set(consumer.paused()) & assigned:
            resume(consumer, tp)


def _time(value: bytes | None, field: str) -> int | None:
    """The time in ``field`` of a message value, or None when it has none readable."""
    try:
        doc = orjson.loads(value or b"")
        if type(doc) is not dict:
            return None
        stamp = doc.get(field)
        return stamp if type(stamp) is int else parse_timestamp(stamp)
    except (ValueError, TypeError):
        return None


def _assignment(consumer: KafkaConsumer) -> set[TopicPartition] | None:
    try:
        return set(consumer.assignment())
    except KafkaError:
        return None


def resume(consumer: KafkaConsumer, *partitions: TopicPartition) -> None:
    """``consumer.resume(*partitions)``, and the records parked for them while they were
    paused given back (see the module docstring on kafka-python 3.0.12)."""
    consumer.resume(*partitions)
    fetcher = getattr(consumer, "_fetcher", None)
    parked = getattr(fetcher, "_paused_partition_records", None)
    if isinstance(parked, dict):
        # The client restores one parked partition per call, and only into an empty slot:
        # with several partitions resumed at once the others stayed parked, unfetched, for
        # good. Dropped instead: the partition's position never passed them, so they are
        # fetched again from there.
        for tp in partitions:
            records = parked.pop(tp, None)
            if records is not None:
                records.drain()
    in_line = getattr(fetcher, "_next_partition_records", None)
    if in_line is not None and not in_line:
        # Exhausted: the client itself treats it as nothing in line, but restores parked
        # records only when the slot is None.
        fetcher._next_partition_records = None  # type: ignore[union-attr]
