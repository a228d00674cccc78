"""Duplicate-alert suppression: an event alerted once is not alerted again.

At-least-once delivery replays the tail of a partition after a crash: the batch whose outputs
were acknowledged but whose offsets were not committed is decided again. Decisions may then
repeat (keyed by ``event_id``, so a compacted topic keeps one), but an analyst must not get a
second alert. :class:`AlertDeduplicator` remembers the ids of events already alerted, in a
bounded least-recently-alerted store, and the service drops an alert whose id it holds:

- every alert the broker acknowledges is added (this covers rebalances within one process,
  broker outages, and the same event arriving twice upstream);
- when partitions are assigned to an instance (at start, after a restart, when a rebalance
  moves them from a crashed instance), :func:`read_back_alert_ids` reads the keys of the
  latest ``readback_records`` records of every alerts partition, before any record of the new
  partitions is decided. The replayed tail is at most two uncommitted batches (the batch in
  flight and the one whose commit was on its way), published moments before the crash, so a
  tail a few times larger than what all instances alert in a session timeout is enough; the
  read-back is timed (``stream_detector_dedupe_readback_seconds``) and
  ``benchmarks/faults.py`` prints its cost.

Examples
--------
>>> seen = AlertDeduplicator(capacity=2)
>>> seen.first_alerts(["a", "b", "a"])  # a repeated id within one batch is a duplicate too
(['a', 'b'], 1)
>>> seen.update(["a", "b"]); seen.add("c")  # capacity 2: "a" is forgotten
>>> "a" in seen, "b" in seen, "c" in seen, len(seen)
(False, True, True, 2)
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

__all__ = ["AlertDeduplicator", "ReadBack", "read_back_alert_ids"]

log = logging.getLogger(__name__)

_POLL_MS = 100


class AlertDeduplicator:
    """Event ids already alerted; at most ``capacity``, least recently alerted forgotten first.

    Parameters
    ----------
    capacity
        How many ids to remember.
    """

    def __init__(self, *, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        """Remember one alerted id."""
        ids = self._ids
        if event_id in ids:
            ids.move_to_end(event_id)
            return
        ids[event_id] = None
        if len(ids) > self.capacity:
            ids.popitem(last=False)

    def update(self, event_ids: Iterable[str]) -> None:
        """Remember several alerted ids."""
        for event_id in event_ids:
            self.add(event_id)

    def first_alerts(self, event_ids: Sequence[str]) -> tuple[list[str], int]:
        """The ids of a batch's alerts to publish, in order, and how many were duplicates."""
        kept: list[str] = []
        batch: set[str] = set()
        for event_id in event_ids:
            if event_id in self._ids or event_id in batch:
                continue
            batch.add(event_id)
            kept.append(event_id)
        return kept, len(event_ids) - len(kept)


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What one read-back of the alerts topic cost."""

    ids: frozenset[str]
    records: int
    partitions: int
    seconds: float
    complete: bool
    """False when the topic was missing or the timeout cut the read short."""


def read_back_alert_ids(
    reader: KafkaConsumer,
    topic: str,
    *,
    records_per_partition: int,
    timeout_s: float,
) -> ReadBack:
    """Read the keys (event ids) of the latest records of every partition of ``topic``.

    ``reader`` is a consumer outside any group; it is (re)assigned here. The listed end
    offsets only choose where to start (a broker that under-reports them makes the read
    longer, never shorter); reading stops at an empty poll once every partition reached the
    high watermark its last fetch response reported.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    ids: set[str] = set()
    records = 0
    try:
        partitions = reader.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(_POLL_MS / 1000)
            partitions = reader.partitions_for_topic(topic)
        if not partitions:
            log.warning("dedupe read-back skipped: topic=%s has no partitions", topic)
            return ReadBack(frozenset(), 0, 0, time.monotonic() - started, False)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = reader.end_offsets(tps)
        reader.assign(tps)
        for tp in tps:
            reader.seek(tp, max(0, ends[tp] - records_per_partition))
        complete = False
        while time.monotonic() < deadline:
            batch = reader.poll(timeout_ms=_POLL_MS, max_records=10_000)
            for partition_records in batch.values():
                records += len(partition_records)
                for record in partition_records:
                    if record.key is not None:
                        ids.add(record.key.decode("utf-8", "replace"))
            if not batch and all(_at_end(reader, tp, ends[tp]) for tp in tps):
                complete = True
                break
    except KafkaError as exc:
        log.warning("dedupe read-back failed topic=%s error=%s", topic, exc)
        return ReadBack(frozenset(ids), records, 0, time.monotonic() - started, False)
    return ReadBack(frozenset(ids), records, len(tps), time.monotonic() - started, complete)


def _at_end(reader: KafkaConsumer, tp: TopicPartition, listed_end: int) -> bool:
    """Whether ``reader`` read ``tp`` up to the high watermark of its last fetch response.

    An empty poll alone proves nothing (a fetch may still be in flight), and the listed end
    offset may be too low (the embedded broker's is, after multi-record batches).
    """
    high = reader.highwater(tp)
    if high is None:
        return listed_end == 0
    return bool(reader.position(tp) >= max(high, listed_end))
