"""Produce simulated transactions to Kafka as a live stream, with their labels arriving later.

Events go to the events topic at a steady rate, keyed by ``event_id``, one JSON object per
message. Each event's label message follows on the labels topic ``label_delay`` seconds (wall
clock) after the event was sent, the way confirmed fraud reaches a real detector late.
"""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from stream_detector.errors import BrokerError, ConfigError
from stream_detector.simulate.transactions import EVENT_COLUMNS, LABEL_COLUMN, Transactions

__all__ = ["Clock", "StreamReport", "produce_stream"]

Clock = Literal["simulated", "wall"]
"""Event timestamps: the simulation's own (reproducible), or the wall clock at sending."""


@dataclass(frozen=True)
class StreamReport:
    """What :func:`produce_stream` sent."""

    events: int
    labels: int
    frauds: int
    seconds: float


def produce_stream(
    transactions: Transactions,
    *,
    client_kwargs: Mapping[str, Any],
    topic: str = "events",
    labels_topic: str | None = "labels",
    label_delay: float = 5.0,
    rate: float = 0.0,
    clock: Clock = "simulated",
    linger_ms: int = 20,
    connect_timeout: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
) -> StreamReport:
    """Send every transaction as an event, then its label after ``label_delay`` seconds.

    Parameters
    ----------
    transactions
        The events to send, in order.
    client_kwargs
        kafka-python client settings (``bootstrap_servers``, security); they win over the
        producer settings chosen here.
    topic, labels_topic
        Where events and labels go; ``labels_topic=None`` sends no labels.
    label_delay
        Seconds between an event and its label.
    rate
        Events per second; 0 sends as fast as possible.
    clock
        ``"simulated"`` keeps the simulation's timestamps and stamps a label ``label_delay``
        after its event; ``"wall"`` stamps events and labels with the time they are sent.
    linger_ms
        How long the producer waits to fill a batch.
    connect_timeout
        Seconds to wait for the broker before giving up.
    progress
        Called with (events sent, events in all) after each event.

    Returns
    -------
    StreamReport
        Counts of events, labels and frauds sent, and the elapsed time.

    Raises
    ------
    BrokerError
        If the broker cannot be reached or does not acknowledge every message.
    """
    if rate < 0:
        raise ConfigError(f"rate must be >= 0 events per second; got {rate}")
    if label_delay < 0:
        raise ConfigError(f"label delay must be >= 0 seconds; got {label_delay}")
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    servers = client_kwargs.get("bootstrap_servers", "?")
    where = ",".join(servers) if isinstance(servers, list | tuple) else str(servers)
    timeout_ms = max(100, int(connect_timeout * 1000))
    kwargs: dict[str, Any] = {
        "linger_ms": linger_ms,
        "acks": "all",
        "bootstrap_timeout_ms": timeout_ms,
        "max_block_ms": timeout_ms,
        **client_kwargs,
    }
    _wait_for_listener(kwargs["bootstrap_servers"], connect_timeout, where)
    try:
        producer = KafkaProducer(**kwargs)
    except KafkaError as exc:
        raise BrokerError(
            f"cannot reach the Kafka broker at {where} within {connect_timeout:g} s: {exc}"
        ) from exc

    failures: list[BaseException] = []
    pending: collections.deque[tuple[float, str, int, int]] = collections.deque()
    delay_ms = round(label_delay * 1000)
    sent_events = sent_labels = frauds = 0

    def send(topic_name: str, key: str, value: dict[str, Any]) -> None:
        future = producer.send(topic_name, key=key.encode(), value=orjson.dumps(value))
        future.add_errback(failures.append)

    def send_label(event_id: str, label: int, event_ts: int) -> None:
        nonlocal sent_labels
        assert labels_topic is not None  # nothing is pending otherwise
        ts = _now_ms() if clock == "wall" else event_ts + delay_ms
        send(labels_topic, event_id, {"event_id": event_id, "label": label, "timestamp": ts})
        sent_labels += 1

    started = time.monotonic()
    try:
        columns = (*EVENT_COLUMNS, LABEL_COLUMN)
        total = len(transactions)
        for i, row in enumerate(transactions.rows(columns)):
            if rate > 0:
                _sleep_until(started + i / rate)
            event = dict(zip(EVENT_COLUMNS, row[:-1], strict=True))
            if clock == "wall":
                event["timestamp"] = _now_ms()
            send(topic, event["event_id"], event)
            if failures:
                break  # the broker refuses messages: stop early, report below
            sent_events += 1
            frauds += row[-1]
            if progress is not None:
                progress(sent_events, total)
            now = time.monotonic()
            if labels_topic is not None:
                pending.append((now + label_delay, event["event_id"], row[-1], event["timestamp"]))
            while pending and pending[0][0] <= now:
                send_label(*pending.popleft()[1:])
        while pending:
            _sleep_until(pending[0][0])
            send_label(*pending.popleft()[1:])
        producer.flush(timeout=max(30.0, connect_timeout))
    except KafkaError as exc:
        raise BrokerError(f"producing to the Kafka broker at {where} failed: {exc}") from exc
    finally:
        producer.close(timeout=5)
    if failures:
        raise BrokerError(
            f"the Kafka broker at {where} did not acknowledge {len(failures)} of "
            f"{sent_events + sent_labels} messages; first error: {failures[0]}"
        )
    return StreamReport(sent_events, sent_labels, frauds, time.monotonic() - started)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _wait_for_listener(servers: str | list[str], timeout: float, where: str) -> None:
    """Wait until one bootstrap server accepts TCP connections, or raise BrokerError.

    Checked before any Kafka client exists: a kafka-python client that fails to bootstrap
    leaves its sockets open.
    """
    addresses = [s.strip() for s in (servers.split(",") if isinstance(servers, str) else servers)]
    if not any(addresses):
        raise ConfigError(f"a Kafka bootstrap server HOST:PORT is required; got {servers!r}")
    error: Exception = OSError("no attempt made")
    deadline = time.monotonic() + timeout
    while True:
        for address in addresses:
            host, sep, port = address.rpartition(":")
            if not sep:
                host, port = address, "9092"
            try:
                budget = max(0.05, min(1.0, deadline - time.monotonic()))
                with socket.create_connection((host.strip("[]"), int(port)), timeout=budget):
                    return
            except (OSError, ValueError) as exc:
                error = exc
        if time.monotonic() >= deadline:
            raise BrokerError(
                f"cannot reach the Kafka broker at {where} within {timeout:g} s: {error}"
            ) from error
        time.sleep(0.1)
