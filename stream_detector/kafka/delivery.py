"""Delivery guarantees: how a decided batch's outputs and offsets reach the broker.

A :class:`Delivery` sits between the run loop and Kafka. The loop polls, decides, and hands
over the batch's output records and the offsets to commit; the delivery publishes, commits,
and reports whether the batch's outputs went out. Two implementations:

- :class:`~stream_detector.kafka.at_least_once.AtLeastOnceDelivery`
  (``processing_guarantee: at_least_once``, the default): publish
  every output and wait for every acknowledgement, then commit explicit offsets
  (``{tp: OffsetAndMetadata(last + 1, ...)}``). A crash between the two replays the batch;
  its decisions repeat (keyed by ``event_id``) and its alerts are suppressed by
  :mod:`stream_detector.kafka.dedupe`.
- :class:`~stream_detector.kafka.transactions.ExactlyOnceDelivery`
  (``processing_guarantee: exactly_once``): outputs and offsets in one Kafka transaction.

Both share what does not depend on the guarantee: the rebalance listener, batch pacing, the
outage clock, the check that the group did not evict this instance while the batch was in
flight (a fenced batch is dropped before anything is published and replayed by the
partitions' next owner), and the metrics (:class:`~stream_detector.metrics.DeliveryMetrics`).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry

from stream_detector.config import DetectorSettings
from stream_detector.kafka.dedupe import AlertDeduplicator
from stream_detector.kafka.pacing import BatchPacer
from stream_detector.kafka.publish import OutRecord
from stream_detector.kafka.rebalance import AssignmentTracker
from stream_detector.kafka.retry import OutageClock
from stream_detector.metrics import DeliveryMetrics, ReplayReason

__all__ = [
    "Delivery",
    "Phase",
    "ReplayReason",
]

log = logging.getLogger(__name__)

Phase = Literal["decided", "published", "committed"]
"""Points of a batch's life the service reports (fault-injection tests hook in here)."""

_DISCONNECTED_GRACE_S = 1.0


class Delivery(abc.ABC):
    """Publishes a batch's outputs and commits its offsets under one guarantee.

    Parameters
    ----------
    settings
        The service's settings.
    registry
        Where :class:`~stream_detector.metrics.DeliveryMetrics` are registered.
    stop
        The service's stop event (retries end early when it is set).
    on_phase
        Called with each :data:`Phase` of a batch.
    """

    def __init__(
        self,
        settings: DetectorSettings,
        *,
        registry: CollectorRegistry,
        stop: threading.Event,
        on_phase: Callable[[Phase], None] = lambda phase: None,
    ) -> None:
        self.settings = settings
        self.metrics = DeliveryMetrics(registry)
        self.stop = stop
        self.on_phase = on_phase
        self.listener = AssignmentTracker(
            cooperative=settings.consumer.assignor == "cooperative-sticky"
        )
        self.clock = OutageClock(give_up_after_s=settings.kafka.give_up_after_s, stop=stop)
        self.pacer = BatchPacer(
            max_records=settings.consumer.batch_size,
            max_poll_interval_ms=settings.consumer.max_poll_interval_ms,
        )
        self.dedupe = (
            AlertDeduplicator(capacity=settings.dedupe.capacity)
            if settings.dedupe.enabled
            else None
        )
        self.committed: dict[TopicPartition, OffsetAndMetadata] = {}
        """Offsets committed since the run loop last took them (:meth:`take_committed`)."""
        self._membership: ConsumerGroupMetadata | None = None
        self._connections = _ConnectionCount()
        self._disconnected_since: float | None = None
        self._batch_started = 0.0
        self._batch_messages = 0

    # -- what the run loop calls -------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """False while the broker is unreachable (``/readyz`` answers 503)."""
        return not self.clock.failing

    def consumer_overrides(self) -> dict[str, Any]:
        """Extra kafka-python settings for the service's consumer."""
        return {}

    @abc.abstractmethod
    def start(self) -> None:
        """Create the producer (blocking until the broker answers or start-up gives up)."""

    def max_records(self) -> int:
        """How many messages the next poll may return."""
        return self.pacer.limit

    def poll_failed(self, exc: BaseException) -> None:
        """``poll`` raised: count it toward the outage and pause."""
        self.clock.failed("polling", exc)
        self.clock.pause()

    def after_poll(self, consumer: KafkaConsumer, n_messages: int) -> None:
        """Act on rebalances and group state; start timing the batch if there is one."""
        membership = consumer.group_metadata()
        now = time.monotonic()
        if self._connections(consumer) == 0:
            # No connection at all: the brokers are gone (the group state stays "stable"
            # until they answer again). A moment's gap is a reconnect, not an outage.
            if self._disconnected_since is None:
                self._disconnected_since = now
            elif now - self._disconnected_since > _DISCONNECTED_GRACE_S:
                self.clock.failed("polling", "no connection to any broker")
        else:
            # Connected: a group still (re)joining is a rebalance, not an outage.
            self._disconnected_since = None
            self.clock.ok()
        self.metrics.broker_unreachable_seconds.set(self.clock.unreachable_s)
        change = self.listener.take()
        if change.added:
            self.partitions_added(change.added)
        self._membership = membership
        self._batch_started = time.monotonic()  # after any read-back: pace the batch only
        self._batch_messages = n_messages

    @abc.abstractmethod
    def partitions_added(self, partitions: frozenset[TopicPartition]) -> None:
        """Partitions new to this instance arrived (before any of their records is decided)."""

    def deliver(
        self,
        consumer: KafkaConsumer,
        records: Sequence[OutRecord],
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        starts: Mapping[TopicPartition, int],
    ) -> bool:
        """Publish and commit one batch; True when its outputs went out.

        ``starts`` holds each partition's first offset in the batch, to seek back to when
        the batch is dropped. False means nothing of the batch was published (or a stop cut
        the retries short); it is replayed from the last commit.
        """
        try:
            if self._fenced(consumer, starts):
                self.drain(consumer)
                self._replay(consumer, starts, "fenced")
                return False
            return self._deliver(consumer, self._first_alerts(records), offsets, starts)
        finally:
            self.pacer.observe(self._batch_messages, time.monotonic() - self._batch_started)
            self.metrics.broker_unreachable_seconds.set(self.clock.unreachable_s)

    @abc.abstractmethod
    def _deliver(
        self,
        consumer: KafkaConsumer,
        records: Sequence[OutRecord],
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        starts: Mapping[TopicPartition, int],
    ) -> bool: ...

    def take_committed(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Return and forget the offsets committed since the last call."""
        committed, self.committed = self.committed, {}
        return committed

    def drain(self, consumer: KafkaConsumer) -> None:
        """Finish and commit what is still in flight (a poll returned nothing, or stopping)."""
        return None  # exactly-once: each batch is committed in its own transaction

    @abc.abstractmethod
    def close(self) -> None:
        """Close what this delivery opened (the producer, any reader)."""

    # -- shared steps ------------------------------------------------------------------------

    def _fenced(self, consumer: KafkaConsumer, starts: Mapping[TopicPartition, int]) -> bool:
        """True when the group took the batch's partitions from this instance since the poll
        that read the batch.

        Eager assignors: any new generation (every partition was revoked). Cooperative: a new
        member id, a reset generation (evicted), or one of the batch's partitions revoked or
        lost meanwhile; a rebalance that moved only other partitions leaves the batch be.
        """
        before, now = self._membership, consumer.group_metadata()
        if before is None or before.generation_id < 0:
            return False
        moved = (now.generation_id, now.member_id) != (before.generation_id, before.member_id)
        if moved and self.listener.cooperative and now.member_id == before.member_id:
            owned = consumer.assignment()
            moved = now.generation_id < 0 or any(
                tp not in owned or tp in self.listener.left() for tp in starts
            )
        if moved:
            log.warning(
                "group membership lost while the batch was in flight (generation %d -> %d); "
                "dropping the batch unpublished, the partitions' next owner replays it",
                before.generation_id,
                now.generation_id,
            )
        return moved

    def _first_alerts(self, records: Sequence[OutRecord]) -> Sequence[OutRecord]:
        """Drop alerts for events already alerted (replays, repeats within the batch)."""
        if self.dedupe is None:
            return records
        ids = [r.event_id or "" for r in records if r.kind == "alert"]
        if not ids:
            return records
        kept, suppressed = self.dedupe.first_alerts(ids)
        if not suppressed:
            return records
        self.metrics.alerts_suppressed.inc(suppressed)
        log.info("duplicate alerts suppressed count=%d", suppressed)
        first = set(kept)
        out = []
        for r in records:
            if r.kind == "alert":
                if r.event_id not in first:
                    continue
                first.discard(r.event_id)
            out.append(r)
        return out

    def _remember_alerts(self, records: Sequence[OutRecord]) -> None:
        if self.dedupe is not None:
            self.dedupe.update(r.event_id for r in records if r.kind == "alert" and r.event_id)

    def _replay(
        self, consumer: KafkaConsumer, starts: Mapping[TopicPartition, int], reason: ReplayReason
    ) -> None:
        """Leave the batch uncommitted and seek back so it is read again."""
        self.metrics.batches_replayed.labels(reason=reason).inc()
        assigned = consumer.assignment()
        for tp, offset in starts.items():
            if tp in assigned:
                consumer.seek(tp, offset)


class _ConnectionCount:
    """The consumer's open broker connections (kafka-python's ``connection-count`` metric).

    Read from the one metric, found once per consumer: kafka-python's ``metrics()`` computes
    every metric of the client (about 70 on one broker) to build its dictionary, 1-3 ms a call,
    which ``after_poll`` would pay on every poll.
    """

    def __init__(self) -> None:
        self._consumer: KafkaConsumer | None = None
        self._metric: Any = None

    def __call__(self, consumer: KafkaConsumer) -> float | None:
        try:
            if consumer is not self._consumer or self._metric is None:
                self._consumer = consumer
                raw = consumer.metrics(raw=True) or {}
                self._metric = next(
                    (
                        metric
                        for name, metric in raw.items()
                        if name.group == "consumer-metrics" and name.name == "connection-count"
                    ),
                    None,
                )
                if self._metric is None:
                    return None
            value = self._metric.value()
        except KafkaError:
            return None
        return float(value) if value is not None else None
