"""At-least-once delivery: publish every output, commit once every one is acknowledged.

The default guarantee (``processing_guarantee: at_least_once``). A batch's offsets are
committed only once each of its decisions, alerts and dead letters is acknowledged by the
broker; a crash in between replays the batch (and the one before it, if its commit was still
on its way). Its decisions may then repeat (keyed by ``event_id``); its alerts do not: every
alert sent is remembered, and partitions new to this instance first get the latest alerts
read back (:mod:`stream_detector.kafka.dedupe`).

One batch in flight
-------------------
Waiting for the acknowledgements before polling again would put a round trip to the broker
(``acks=all``: to every in-sync replica) and the producer's ``linger_ms`` into every batch.
Instead a batch's records are handed to the producer and the loop polls and decides the next
batch while they travel. Before the next batch is sent, the previous one's acknowledgements
are awaited (usually already there) and, once the next batch is on its way, its offsets are
committed. At most one batch is unacknowledged at any time and offsets are never committed
past it; when a poll returns nothing, and before the service stops, the batch in flight is
finished and committed (:meth:`AtLeastOnceDelivery.drain`). A batch whose publishing a stop
cut short is not committed: it is replayed, like one a crash interrupted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry

from stream_detector.config import DetectorSettings
from stream_detector.kafka.clients import make_consumer, make_producer
from stream_detector.kafka.dedupe import read_back_alert_ids
from stream_detector.kafka.delivery import Delivery, Phase
from stream_detector.kafka.publish import OutRecord, Publisher, Sending

__all__ = ["AtLeastOnceDelivery"]

log = logging.getLogger(__name__)

_COMMIT_TIMEOUT_MS = 10_000


@dataclass(slots=True)
class _InFlight:
    """A batch handed to the producer whose offsets wait for its acknowledgements."""

    sending: Sending
    offsets: Mapping[TopicPartition, OffsetAndMetadata]


class AtLeastOnceDelivery(Delivery):
    """Publish every output and commit the offsets once all are acknowledged, one batch in
    flight while the next is polled and decided."""

    def __init__(
        self,
        settings: DetectorSettings,
        *,
        registry: CollectorRegistry,
        stop: threading.Event,
        on_phase: Callable[[Phase], None] = lambda phase: None,
    ) -> None:
        super().__init__(settings, registry=registry, stop=stop, on_phase=on_phase)
        self.publisher = Publisher(
            lambda: make_producer(settings, should_stop=stop.is_set),
            clock=self.clock,
            dead_letter_max_bytes=settings.dead_letter_max_bytes,
            on_retry=self.metrics.publish_retries.inc,
            on_truncated=self.metrics.dead_letters_truncated.inc,
        )
        self._reader: KafkaConsumer | None = None
        self._in_flight: _InFlight | None = None

    def start(self) -> None:
        _ = self.publisher.producer

    def partitions_added(self, partitions: frozenset[TopicPartition]) -> None:
        dedupe = self.settings.dedupe
        if self.dedupe is None or dedupe.readback_records == 0:
            return
        if self._reader is None:
            self._reader = make_consumer(self.settings, group_id=None, should_stop=self.stop.is_set)
        with self.metrics.readback_seconds.time():
            result = read_back_alert_ids(
                self._reader,
                self.settings.topics.alerts,
                records_per_partition=dedupe.readback_records,
                timeout_s=dedupe.readback_timeout_s,
            )
        self.dedupe.update(result.ids)
        log.info(
            "dedupe read back topic=%s partitions=%d records=%d ids=%d seconds=%.3f complete=%s",
            self.settings.topics.alerts,
            result.partitions,
            result.records,
            len(result.ids),
            result.seconds,
            result.complete,
        )

    def _deliver(
        self,
        consumer: KafkaConsumer,
        records: Sequence[OutRecord],
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        starts: Mapping[TopicPartition, int],
    ) -> bool:
        previous, self._in_flight = self._in_flight, None
        if previous is not None and not self._acknowledged(previous):
            self.metrics.batches_replayed.labels(reason="stopped").inc()
            return False
        # Remembered when sent: a batch is either acknowledged in the end, or the process
        # stops (or exits) before anything of it could be replayed here.
        self._remember_alerts(records)
        self._in_flight = _InFlight(self.publisher.send(records), offsets)
        if previous is not None:
            self._commit_batch(consumer, previous)
        return True

    def drain(self, consumer: KafkaConsumer) -> None:
        """Wait for the batch in flight's acknowledgements and commit its offsets."""
        previous, self._in_flight = self._in_flight, None
        if previous is None:
            return
        if self._acknowledged(previous):
            self._commit_batch(consumer, previous)
        else:
            self.metrics.batches_replayed.labels(reason="stopped").inc()

    def _acknowledged(self, batch: _InFlight) -> bool:
        if not self.publisher.complete(batch.sending):
            return False
        self.on_phase("published")
        return True

    def _commit_batch(self, consumer: KafkaConsumer, batch: _InFlight) -> None:
        if self._commit(consumer, batch.offsets):
            self.on_phase("committed")
        else:
            self.metrics.batches_replayed.labels(reason="commit_failed").inc()

    def _commit(
        self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> bool:
        """Commit, retrying while the broker is unreachable; False if the group moved on."""
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return False
        while True:
            try:
                consumer.commit(dict(offsets), timeout_ms=_COMMIT_TIMEOUT_MS)
            except (CommitFailedError, RebalanceInProgressError) as exc:
                # The group rebalanced or evicted us while the batch was in flight, or a
                # rebalance began in the last poll: only a poll can finish it, so retrying here
                # would wait forever. The partitions' owner replays from the last commit
                # (outputs are keyed, alerts deduplicated).
                log.warning("commit refused by the group; the batch will be replayed error=%s", exc)
                return False
            except KafkaError as exc:
                self.clock.failed("committing offsets", exc)
                if not self.clock.pause():
                    return False
                continue
            self.clock.ok()
            self.committed.update(offsets)
            return True

    def close(self) -> None:
        self._in_flight = None  # not drained: the service stops on an error, nothing committed
        self.publisher.close()
        if self._reader is not None:
            try:
                self._reader.close()
            except KafkaError as exc:
                log.warning("dedupe reader close failed error=%s", exc)
            self._reader = None
