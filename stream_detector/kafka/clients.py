"""kafka-python consumers and producers built from the settings, with bounded retries.

No deserializer that can raise: the service receives raw bytes and decodes them itself, so a
malformed message becomes a dead letter instead of an exception inside the client.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.errors import KafkaError

from stream_detector.config import Assignor, DetectorSettings, KafkaSettings
from stream_detector.errors import BrokerError
from stream_detector.kafka.partitioner import KeyPartitioner

__all__ = ["ASSIGNORS", "connect_with_retry", "make_consumer", "make_producer", "wait_for_listener"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_REQUEST_BYTES = 16 * 1024 * 1024

ASSIGNORS: dict[Assignor, type[AbstractPartitionAssignor]] = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
    "cooperative-sticky": CooperativeStickyAssignor,
}
"""``consumer.assignor``'s values and kafka-python's assignor for each."""


def connect_with_retry(
    factory: Callable[[], T],
    kafka: KafkaSettings,
    *,
    what: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> T:
    """Call ``factory`` until it connects, backing off, for at most ``kafka.connect_timeout_s``.

    First every bootstrap address is probed over TCP, quietly: while none accepts a
    connection (nothing listens there yet, or at all) nothing is logged, and when the time is
    up the one error says so. A broker that accepts connections but does not answer Kafka
    requests is retried with a warning per attempt.

    Raises :class:`BrokerError` naming the address when the broker stays unreachable.
    """
    deadline = time.monotonic() + kafka.connect_timeout_s
    wait_for_listener(kafka, what=what, should_stop=should_stop, deadline=deadline)
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        try:
            return factory()
        except (KafkaError, OSError) as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or should_stop():
                raise BrokerError(
                    f"cannot reach Kafka at {kafka.bootstrap_servers} for the {what} after "
                    f"{attempt} attempts in {kafka.connect_timeout_s:g}s: {exc}"
                ) from exc
            log.warning(
                "broker unreachable client=%s bootstrap=%s attempt=%d retry_in=%.2fs error=%s",
                what,
                kafka.bootstrap_servers,
                attempt,
                min(delay, remaining),
                exc,
            )
            _sleep(min(delay, remaining), should_stop)
            delay = min(delay * 2, 5.0)


def wait_for_listener(
    kafka: KafkaSettings,
    *,
    what: str,
    should_stop: Callable[[], bool] = lambda: False,
    deadline: float | None = None,
) -> None:
    """Return once one bootstrap address accepts a TCP connection; raise BrokerError at the
    deadline (default ``kafka.connect_timeout_s`` from now). A refused connection is retried
    every 0.2 s without logging, so an address where nothing listens costs one error line.
    """
    if deadline is None:
        deadline = time.monotonic() + kafka.connect_timeout_s
    addresses = kafka.client_kwargs()["bootstrap_servers"]
    if not addresses:
        raise BrokerError(
            f"kafka.bootstrap_servers must name at least one HOST:PORT; got {kafka.bootstrap_servers!r}"
        )
    error: Exception = OSError("no attempt made")
    while True:
        for address in addresses:
            host, sep, port = address.rpartition(":")
            try:
                budget = max(0.05, min(1.0, deadline - time.monotonic()))
                with socket.create_connection(
                    (host.strip("[]") if sep else address, int(port) if sep else 9092),
                    timeout=budget,
                ):
                    return
            except (OSError, ValueError) as exc:
                error = exc
        log.debug("broker not listening bootstrap=%s error=%s", kafka.bootstrap_servers, error)
        if time.monotonic() >= deadline or should_stop():
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise BrokerError(
                f"cannot reach Kafka at {kafka.bootstrap_servers} for the {what} within "
                f"{kafka.connect_timeout_s:g}s (kafka.connect_timeout_s): {reason}"
            ) from error
        _sleep(min(0.2, max(deadline - time.monotonic(), 0.0)), should_stop)


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep, waking early when a stop is requested."""
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


def _probe_timeout_ms(kafka: KafkaSettings) -> int:
    return int(min(max(kafka.connect_timeout_s, 1.0), 10.0) * 1000)


def make_consumer(
    settings: DetectorSettings,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer in the settings' group, auto-commit off, raw bytes, not yet subscribed."""
    c = settings.consumer
    kwargs: dict[str, Any] = {
        **settings.kafka.client_kwargs(),
        "group_id": c.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": c.auto_offset_reset,
        "partition_assignment_strategy": (ASSIGNORS[c.assignor],),
        "max_poll_records": c.batch_size,
        "session_timeout_ms": c.session_timeout_ms,
        "heartbeat_interval_ms": c.heartbeat_interval_ms,
        "max_poll_interval_ms": c.max_poll_interval_ms,
        "fetch_max_bytes": c.fetch_max_bytes,
        "fetch_max_wait_ms": c.fetch_max_wait_ms,
        "max_partition_fetch_bytes": max(settings.max_message_bytes * 2, 1_048_576),
        "bootstrap_timeout_ms": _probe_timeout_ms(settings.kafka),
        **overrides,
    }
    return connect_with_retry(
        lambda: KafkaConsumer(**kwargs), settings.kafka, what="consumer", should_stop=should_stop
    )


def make_producer(
    settings: DetectorSettings,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    **overrides: Any,
) -> KafkaProducer:
    """A producer for decisions, alerts and dead letters."""
    p = settings.producer
    kwargs: dict[str, Any] = {
        **settings.kafka.client_kwargs(),
        "acks": p.acks if p.acks == "all" else int(p.acks),
        "linger_ms": p.linger_ms,
        "batch_size": p.batch_size,
        "compression_type": p.compression_type,
        "retries": p.retries,
        "max_request_size": max(_MAX_REQUEST_BYTES, settings.max_message_bytes * 2),
        "partitioner": KeyPartitioner(),  # the Java client's partitions, less work per record
        "bootstrap_timeout_ms": _probe_timeout_ms(settings.kafka),
        **overrides,
    }
    return connect_with_retry(
        lambda: KafkaProducer(**kwargs), settings.kafka, what="producer", should_stop=should_stop
    )
