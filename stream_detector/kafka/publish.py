"""Publishing a batch's outputs: every record acknowledged, retried, never wedged.

:func:`batch_records` turns a decided batch into the records to publish (decisions, alerts,
dead letters). :class:`Publisher` sends them and returns only once the broker acknowledged
every one (``acks=all`` by default), which is what lets the caller commit the batch's offsets
next. When the broker fails, the batch is kept and only the records not yet acknowledged are
sent again, with a growing pause, until the :class:`~stream_detector.kafka.retry.OutageClock`
gives up. A producer left in a fatal state (for instance after the cluster was replaced) is
closed and created anew.

Dead letters too large for the broker
-------------------------------------
A dead letter carries the original message, which may be as large as the events topic
allows. One the dead-letter topic cannot take would stop the partition for good, so a dead
letter whose value is over ``dead_letter_max_bytes`` is published with the value cut to that
size, and one the broker still refuses as too large is cut to 1 KiB and then to nothing
(keeping only the contract's headers). A cut dead letter says so in its headers:
``error.truncated: true``, ``source.value_bytes`` (the original length) and
``source.value_sha256`` (of the original bytes), so the original can be found and checked
in the events topic at ``source.partition``/``source.offset``.

>>> from stream_detector.messages import Source
>>> record = OutRecord("dead_letter", "events.dlq", b"k", b"0123456789", source=Source("e", 0, 7))
>>> cut = truncate_dead_letter(record, 4)
>>> cut.value, [(k, v) for k, v in cut.headers]
(b'0123', [('error.truncated', b'true'), ('source.value_bytes', b'10'), ('source.value_sha256', b'84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882')])
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from stream_detector.config import TopicSettings
from stream_detector.errors import BrokerError
from stream_detector.kafka.deadletter import DEAD_LETTER_HEADERS, dead_letter_headers
from stream_detector.kafka.retry import OutageClock
from stream_detector.messages import BatchOutcome, Source

__all__ = [
    "TRUNCATION_HEADERS",
    "OutRecord",
    "OutputKind",
    "Publisher",
    "Sending",
    "batch_records",
    "is_too_large",
    "shrink_dead_letter",
    "truncate_dead_letter",
]

log = logging.getLogger(__name__)

OutputKind = Literal["decision", "alert", "dead_letter"]
TRUNCATION_HEADERS = ("error.truncated", "source.value_bytes", "source.value_sha256")
_SHRUNK_VALUE_BYTES = 1024
_FLUSH_TIMEOUT_S = 5.0
_FLUSH_SLICE_S = 0.25
"""How long one attempt waits for acknowledgements before the outage clock hears of it
(records not yet acknowledged stay in flight, they are not sent twice)."""
_FORCE_CLOSE_JOIN_S = 5.0
"""How long a producer stopped with records unacknowledged gets to fail them."""


@dataclass(slots=True)
class OutRecord:
    """One record to publish."""

    kind: OutputKind
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_id: str | None = None
    """Decisions and alerts: the event's id."""
    source: Source | None = None
    """Dead letters: where the original message came from."""


def batch_records(
    outcome: BatchOutcome, topics: TopicSettings, *, decisions: bool = True
) -> list[OutRecord]:
    """The records a decided batch publishes: decisions (optional), alerts, dead letters."""
    records: list[OutRecord] = []
    if decisions:
        for d in outcome.decisions:
            event_id = d["event_id"]
            records.append(
                OutRecord(
                    "decision", topics.decisions, event_id.encode(), orjson.dumps(d), [], event_id
                )
            )
    for a in outcome.alerts:
        event_id = a["event_id"]
        records.append(
            OutRecord("alert", topics.alerts, event_id.encode(), orjson.dumps(a), [], event_id)
        )
    for dead in outcome.dead_letters:
        msg = dead.message
        records.append(
            OutRecord(
                "dead_letter",
                topics.dead_letter,
                msg.key,
                msg.value,
                dead_letter_headers(msg, dead.error),
                source=msg.source,
            )
        )
        log.info(
            "dead letter topic=%s partition=%d offset=%d reason=%s",
            msg.source.topic,
            msg.source.partition,
            msg.source.offset,
            dead.error.reason,
        )
    return records


def truncate_dead_letter(record: OutRecord, limit: int) -> OutRecord:
    """``record`` with its value cut to ``limit`` bytes and headers saying so (if it was longer)."""
    value = record.value or b""
    if len(value) <= limit:
        return record
    headers = list(record.headers)
    if not any(k == TRUNCATION_HEADERS[0] for k, _ in headers):
        headers += [
            ("error.truncated", b"true"),
            ("source.value_bytes", str(len(value)).encode()),
            ("source.value_sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
    return dataclasses.replace(record, value=value[:limit], headers=headers)


def shrink_dead_letter(record: OutRecord) -> OutRecord | None:
    """The next smaller form of a dead letter the broker refused; None when none is left."""
    value = record.value or b""
    if len(value) > _SHRUNK_VALUE_BYTES:
        return truncate_dead_letter(record, _SHRUNK_VALUE_BYTES)
    kept = {*DEAD_LETTER_HEADERS, *TRUNCATION_HEADERS}
    if value or any(k not in kept for k, _ in record.headers):
        cut = truncate_dead_letter(record, 0)
        return dataclasses.replace(cut, headers=[(k, v) for k, v in cut.headers if k in kept])
    return None


def is_too_large(exc: BaseException) -> bool:
    """True for the errors a broker or client gives a record it will never accept."""
    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError)


class Publisher:
    """Sends records and waits until every one is acknowledged.

    Parameters
    ----------
    factory
        Creates a connected producer (called again after a fatal producer error).
    clock
        The service's outage clock: failures start it, success resets it, it gives up.
    dead_letter_max_bytes
        Dead-letter values above this are cut (see the module docstring).
    on_retry
        Called with the number of records sent again after each failed attempt.
    """

    def __init__(
        self,
        factory: Callable[[], KafkaProducer],
        *,
        clock: OutageClock,
        dead_letter_max_bytes: int,
        on_retry: Callable[[int], None] = lambda n: None,
        on_truncated: Callable[[], None] = lambda: None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.on_retry = on_retry
        self.on_truncated = on_truncated
        self._producer: KafkaProducer | None = None

    @property
    def producer(self) -> KafkaProducer:
        """The current producer, created on first use."""
        if self._producer is None:
            self._producer = self.factory()
        return self._producer

    def close(self, timeout: float = 10.0) -> None:
        """Close the producer, waiting up to ``timeout`` seconds for records in flight.

        When the wait runs out, the producer is stopped anyway: records still unacknowledged
        then fail, and none of them can reach the broker later (the caller may send them
        again with a new producer; an old one still at work would deliver them twice).
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            _close(producer, timeout)

    def prepare(self, record: OutRecord) -> OutRecord:
        """A dead letter cut to ``dead_letter_max_bytes``; other records unchanged."""
        if record.kind != "dead_letter":
            return record
        cut = truncate_dead_letter(record, self.dead_letter_max_bytes)
        if cut is not record:
            self.on_truncated()
            _log_cut(cut, "dead_letter_max_bytes")
        return cut

    def refused_as_too_large(self, record: OutRecord, exc: BaseException) -> OutRecord:
        """The smaller record to send instead of one the broker refused as too large."""
        smaller = shrink_dead_letter(record) if record.kind == "dead_letter" else None
        if smaller is None:
            raise BrokerError(
                f"the broker refuses a {record.kind} for topic {record.topic} as too large "
                f"({len(record.value or b'')} bytes): {exc}"
            )
        self.on_truncated()
        _log_cut(smaller, "refused_by_broker")
        return smaller

    def _await_acks(self, producer: KafkaProducer) -> KafkaError | None:
        """Flush; while waiting, tell the clock as soon as the producer has no connection.

        Returns the timeout error when records are still unacknowledged after
        ``_FLUSH_TIMEOUT_S`` (they stay in flight and are not sent twice).
        """
        deadline = time.monotonic() + _FLUSH_TIMEOUT_S
        while True:
            try:
                producer.flush(timeout=_FLUSH_SLICE_S)
                return None
            except KafkaError as exc:
                if _connections(producer) == 0:
                    self.clock.failed("publishing", "no connection to any broker")
                if time.monotonic() >= deadline:
                    return exc

    def _settle(
        self, inflight: Sequence[tuple[OutRecord, Any]]
    ) -> tuple[list[tuple[OutRecord, Any]], list[OutRecord], BaseException | None, bool]:
        """Sort records sent: still waiting; to send again (a dead letter refused as too large
        cut smaller); the last failure; whether a failure leaves the producer fatal."""
        waiting: list[tuple[OutRecord, Any]] = []
        again: list[OutRecord] = []
        error: BaseException | None = None
        fatal = False
        for record, future in inflight:
            if not future.is_done:
                waiting.append((record, future))
            elif future.failed():
                failure = future.exception
                if is_too_large(failure):
                    again.append(self.refused_as_too_large(record, failure))
                    continue
                error = failure
                fatal = fatal or not getattr(failure, "retriable", False)
                again.append(record)
        return waiting, again, error, fatal

    def publish(self, records: Sequence[OutRecord]) -> bool:
        """Send ``records``; True once all are acknowledged, False if a stop cut retries short.

        The same as :meth:`complete` of :meth:`send`. Raises ``BrokerError`` when the broker
        stays unreachable longer than the clock allows.
        """
        return self.complete(self.send(records))

    def send(self, records: Sequence[OutRecord]) -> Sending:
        """Hand ``records`` to the producer without waiting for acknowledgements.

        The producer's own thread sends them meanwhile; :meth:`complete` waits for the
        acknowledgements and retries what failed.
        """
        return self._send([self.prepare(r) for r in records])

    def _send(self, pending: Sequence[OutRecord]) -> Sending:
        sending = Sending()
        try:
            producer = self.producer
        except BrokerError as exc:  # the factory could not connect (outage)
            sending.retry, sending.error = list(pending), exc
            return sending
        for record in pending:
            try:
                future = producer.send(
                    record.topic, key=record.key, value=record.value, headers=record.headers
                )
            except KafkaError as exc:
                if is_too_large(exc):
                    sending.retry.append(self.refused_as_too_large(record, exc))
                    continue
                sending.error = exc
                sending.retry.append(record)
                continue
            sending.inflight.append((record, future))
        return sending

    def complete(self, sending: Sending) -> bool:
        """Wait until every record of ``sending`` is acknowledged, sending failed ones again.

        True once all are acknowledged; False if a stop cut the retries short. Raises
        ``BrokerError`` when the broker stays unreachable longer than the clock allows.
        """
        inflight, retry, error = sending.inflight, sending.retry, sending.error
        while True:
            if self._producer is not None:
                error = self._await_acks(self._producer) or error
            waiting, again, failure, fatal = self._settle(inflight)
            retry += again
            if failure is not None:
                error = failure
            if not retry and not waiting:
                self.clock.ok()
                return True
            if error is not None:
                self.clock.failed("publishing", error)
                if fatal:
                    # e.g. UnknownProducerId after the cluster was replaced: a new producer is
                    # the way out. The old one first finishes what it has in flight and is
                    # stopped; only records it did not get acknowledged are sent again.
                    log.warning("producer in a fatal state; creating a new one error=%s", error)
                    self.close(timeout=_FLUSH_TIMEOUT_S)
                    still, again, _, _ = self._settle(waiting)
                    retry += again + [record for record, _ in still]
                    waiting = []
                self.on_retry(len(retry))
                if not self.clock.pause():
                    log.warning(
                        "stop requested while publishing; %d records not acknowledged, the "
                        "batch is not committed and will be replayed",
                        len(retry) + len(waiting),
                    )
                    return False
            # else: only dead letters that were cut are left: send them at once.
            again_sending = self._send(retry)
            inflight = waiting + again_sending.inflight
            retry, error = again_sending.retry, again_sending.error


@dataclass(slots=True)
class Sending:
    """Records handed to the producer (:meth:`Publisher.send`), not yet known acknowledged."""

    inflight: list[tuple[OutRecord, Any]] = field(default_factory=list)
    """Sent records and their futures."""
    retry: list[OutRecord] = field(default_factory=list)
    """Records the producer refused at once, to send again."""
    error: BaseException | None = None
    """The last such refusal."""


def _close(producer: KafkaProducer, timeout: float) -> None:
    """Close ``producer``; after ``timeout`` seconds, stop it even with records unacknowledged.

    kafka-python's ``close`` flushes first and raises when the flush times out, leaving the
    producer's sender thread running (it would go on retrying those records). Its sender is
    then force-closed (``Sender.force_close``: pending batches fail at once) and joined.
    """
    try:
        producer.close(timeout=timeout)
        return
    except KafkaError as exc:
        log.warning("producer did not finish within %.1fs; stopping it error=%s", timeout, exc)
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(_FORCE_CLOSE_JOIN_S)
    try:
        producer.close(timeout=0)
    except KafkaError as exc:
        log.warning("producer close failed error=%s", exc)


def _connections(producer: KafkaProducer) -> float | None:
    """The producer's open broker connections (kafka-python's ``connection-count`` metric)."""
    value = producer.metrics().get("producer-metrics", {}).get("connection-count")
    return float(value) if value is not None else None


def _log_cut(record: OutRecord, why: str) -> None:
    source = record.source
    log.warning(
        "dead letter truncated why=%s topic=%s partition=%s offset=%s bytes=%d",
        why,
        source.topic if source else "-",
        source.partition if source else "-",
        source.offset if source else "-",
        len(record.value or b""),
    )
