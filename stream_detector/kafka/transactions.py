"""Exactly-once delivery: a batch's outputs and offsets in one Kafka transaction.

``processing_guarantee: exactly_once`` makes the producer transactional. For each batch::

    begin_transaction()
    send every decision, alert and dead letter; flush; check every acknowledgement
    send_offsets_to_transaction(offsets, consumer.group_metadata())
    commit_transaction()

On Apache Kafka, readers of the output topics with ``isolation_level=read_committed`` then
see each batch's outputs exactly once: a crash or an error aborts the transaction, its
outputs stay invisible to them, and the batch is processed again from the offsets the last
committed transaction stored. Passing the consumer's group metadata (KIP-447) lets the broker
fence an instance the group has evicted, so a zombie cannot commit.

The transactional id must be stable for a replica and unique among replicas
(``producer.transactional_id``; default ``<group_id>-<hostname>``): on restart,
``init_transactions`` aborts the transaction the previous incarnation left open.

Limitation: the embedded development broker (Tansu) accepts every transactional call but does
not hide aborted records from ``read_committed`` readers, so on it this mode gives
at-least-once output. Duplicate-alert suppression only ever remembers committed alerts here
and never reads alerts back (an aborted alert, visible on Tansu, must not suppress its retry).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry

from stream_detector.config import DetectorSettings
from stream_detector.errors import BrokerError
from stream_detector.kafka.clients import make_producer
from stream_detector.kafka.delivery import Delivery, Phase
from stream_detector.kafka.publish import OutRecord, Publisher, is_too_large

__all__ = ["ExactlyOnceDelivery", "default_transactional_id"]

log = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 30.0


def default_transactional_id(group_id: str, hostname: str | None = None) -> str:
    """``<group_id>-<hostname>``: stable across restarts of one replica.

    >>> default_transactional_id("stream-detector", "detector-0")
    'stream-detector-detector-0'
    """
    return f"{group_id}-{hostname if hostname is not None else socket.gethostname()}"


class ExactlyOnceDelivery(Delivery):
    """Outputs and offsets committed together in one transaction per batch."""

    def __init__(
        self,
        settings: DetectorSettings,
        *,
        registry: CollectorRegistry,
        stop: threading.Event,
        on_phase: Callable[[Phase], None] = lambda phase: None,
    ) -> None:
        super().__init__(settings, registry=registry, stop=stop, on_phase=on_phase)
        self.transactional_id = settings.producer.transactional_id or default_transactional_id(
            settings.consumer.group_id
        )
        self.publisher = Publisher(
            self._new_producer,
            clock=self.clock,
            dead_letter_max_bytes=settings.dead_letter_max_bytes,
            on_retry=self.metrics.publish_retries.inc,
            on_truncated=self.metrics.dead_letters_truncated.inc,
        )
        # Dead letters the broker refused as too large, by source, in their next smaller form.
        self._smaller: dict[tuple[str, int, int], OutRecord] = {}
        self.transactions = {"committed": 0, "aborted": 0}

    def _new_producer(self) -> KafkaProducer:
        producer = make_producer(
            self.settings,
            should_stop=self.stop.is_set,
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self.settings.producer.transaction_timeout_ms,
            enable_idempotence=True,
            acks="all",
        )
        producer.init_transactions()  # fences and aborts what a previous incarnation left open
        log.info("transactional producer ready transactional_id=%s", self.transactional_id)
        return producer

    def consumer_overrides(self) -> dict[str, Any]:
        return {"isolation_level": "read_committed"}

    def start(self) -> None:
        _ = self.publisher.producer

    def partitions_added(self, partitions: frozenset[TopicPartition]) -> None:
        # Nothing to read back: a batch's alerts and offsets commit together, and an aborted
        # alert (visible on brokers that do not hide aborted records) must not suppress its
        # retry.
        return None

    def _deliver(
        self,
        consumer: KafkaConsumer,
        records: Sequence[OutRecord],
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        starts: Mapping[TopicPartition, int],
    ) -> bool:
        records = [self._sized(r) for r in records]
        try:
            producer = self.publisher.producer
        except BrokerError as exc:
            return self._abandon(consumer, None, starts, exc)
        try:
            producer.begin_transaction()
            futures = []
            for record in records:
                try:
                    future = producer.send(
                        record.topic, key=record.key, value=record.value, headers=record.headers
                    )
                except KafkaError as exc:
                    self._note_too_large(record, exc)
                    raise
                futures.append((record, future))
            producer.flush(timeout=_FLUSH_TIMEOUT_S)
            for record, future in futures:
                if not future.is_done:
                    raise KafkaError("an output was not acknowledged in time")
                if future.failed():
                    self._note_too_large(record, future.exception)
                    raise future.exception
            self.on_phase("published")
            producer.send_offsets_to_transaction(dict(offsets), consumer.group_metadata())
            producer.commit_transaction()
        except KafkaError as exc:
            return self._abandon(consumer, producer, starts, exc)
        self.transactions["committed"] += 1
        self.committed.update(offsets)
        self.clock.ok()
        self._remember_alerts(records)
        self.on_phase("committed")
        return True

    def _sized(self, record: OutRecord) -> OutRecord:
        record = self.publisher.prepare(record)
        if record.kind == "dead_letter" and record.source is not None:
            s = record.source
            return self._smaller.pop((s.topic, s.partition, s.offset), record)
        return record

    def _note_too_large(self, record: OutRecord, exc: BaseException | None) -> None:
        if exc is not None and is_too_large(exc) and record.source is not None:
            s = record.source
            self._smaller[(s.topic, s.partition, s.offset)] = self.publisher.refused_as_too_large(
                record, exc
            )

    def _abandon(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer | None,
        starts: Mapping[TopicPartition, int],
        exc: BaseException,
    ) -> bool:
        """Abort the transaction and seek back: the batch is processed again."""
        self.transactions["aborted"] += 1
        log.warning("transaction aborted; the batch will be processed again error=%s", exc)
        if producer is not None:
            try:
                producer.abort_transaction()
            except KafkaError as abort_exc:
                # A producer that cannot abort (fenced, fatal) is replaced; init_transactions
                # on the new one aborts what is left open.
                log.warning("abort failed; replacing the producer error=%s", abort_exc)
                self.publisher.close(timeout=0)
        self._replay(consumer, starts, "aborted")
        self.clock.failed("committing a transaction", exc)
        self.clock.pause()
        return False

    def close(self) -> None:
        self.publisher.close()
