"""``stream-detector notify``: the alerts topic, delivered to an HTTP webhook, never lost.

The notifier reads the alerts topic in its own consumer group (``notify.group_id``), so it
keeps its own position apart from ``serve`` and from any other reader. For every polled batch:

1. each alert is POSTed to the webhook (``notify.concurrency`` at a time), signed and with
   its ``event_id`` as the idempotency key, retried with backoff (:mod:`.delivery`);
2. the alerts the webhook refused or never acknowledged are published to the notify
   dead-letter topic (``notify.dead_letter``) with the reason in the ``error.type`` header,
   and the broker's acknowledgement is awaited;
3. only then are the batch's offsets committed.

So an alert is delivered or dead-lettered before its offset is committed (at-least-once): a
crash or ``kill -9`` repeats at most the batch in flight, which the receiver recognises by the
``Idempotency-Key`` header. On SIGTERM or SIGINT the pauses between attempts end, the offsets
of what was settled are committed, and the rest is delivered after the restart.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from stream_detector.command import Command
from stream_detector.config import DetectorSettings
from stream_detector.endpoints import EndpointServer
from stream_detector.errors import BrokerError, ConfigError, EventError
from stream_detector.flags import (
    LOG_LEVEL,
    SettingFlag,
    add_config_flag,
    add_setting_flags,
    configure_logging,
    setting_overrides,
)
from stream_detector.kafka.clients import make_consumer, make_producer
from stream_detector.kafka.deadletter import dead_letter_headers
from stream_detector.messages import Message, Source
from stream_detector.metrics import NotifyMetrics
from stream_detector.notify.delivery import (
    DEAD_LETTER_REASONS,
    AlertSender,
    Outcome,
    alert_event_id,
    backoff,
)
from stream_detector.notify.webhook import FAILURE_REASONS, WebhookClient
from stream_detector.redact import install_secret_filter
from stream_detector.signals import handling

__all__ = ["Notifier", "NotifyCommand"]

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 5.0
_ACK_TIMEOUT_S = 30.0
_ATTEMPTS_HEADER = "notify.attempts"


class Notifier:
    """The notify service: consumer, webhook sender, dead-letter producer, HTTP endpoints.

    Parameters
    ----------
    settings
        The process's frozen settings; ``notify.url`` and ``notify.secret`` are required.
    registry
        Where the metrics are registered (a fresh one per test).
    """

    def __init__(
        self, settings: DetectorSettings, *, registry: CollectorRegistry | None = None
    ) -> None:
        n = settings.notify
        if n.url is None:
            raise ConfigError(
                "notify needs a webhook URL: set notify.url, STREAM_DETECTOR_NOTIFY__URL "
                "or --webhook-url; got none"
            )
        if n.secret is None:
            raise ConfigError(
                "notify needs a shared secret to sign the alerts: set "
                "STREAM_DETECTOR_NOTIFY__SECRET (16 characters or more); got none"
            )
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = NotifyMetrics(
            self.registry, failure_reasons=FAILURE_REASONS, dead_letter_reasons=DEAD_LETTER_REASONS
        )
        self.client = WebhookClient(
            url=n.url,
            secret=n.secret.get_secret_value(),
            auth_token=None if n.auth_token is None else n.auth_token.get_secret_value(),
            connect_timeout_s=n.connect_timeout_s,
            read_timeout_s=n.read_timeout_s,
        )
        self._stop = threading.Event()
        self.sender = AlertSender(
            self.client,
            metrics=self.metrics,
            stop=self._stop,
            max_attempts=n.max_attempts,
            backoff_initial_s=n.backoff_initial_s,
            backoff_max_s=n.backoff_max_s,
        )
        self.endpoints = EndpointServer(
            self.registry, ready=self.is_ready, host=n.metrics.host, port=n.metrics.port
        )
        self._ready = False
        self._rng = random.Random()  # jitter of the dead-letter publish retries
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._pool = (
            ThreadPoolExecutor(max_workers=n.concurrency, thread_name_prefix="notify")
            if n.concurrency > 1
            else None
        )
        self.batches = 0
        self._lags: dict[int, int] = {}
        self._status_thread: threading.Thread | None = None

    def stop(self) -> None:
        """Finish the requests in flight, commit what was settled and return."""
        self._stop.set()

    def is_ready(self) -> bool:
        """True while the consumer is connected and assigned partitions of the alerts topic."""
        return self._ready

    def run(self) -> int:
        """Deliver alerts until :meth:`stop`; return the exit code."""
        s = self.settings
        self.endpoints.start()
        try:
            self._producer = make_producer(s, should_stop=self._stop.is_set)
            self._consumer = make_consumer(
                s,
                should_stop=self._stop.is_set,
                group_id=s.notify.group_id,
                max_poll_records=s.notify.batch_size,
            )
            self._consumer.subscribe([s.topics.alerts])
            log.info(
                "notifying topic=%s group=%s bootstrap=%s webhook=%s dead_letter=%s "
                "concurrency=%d max_attempts=%d metrics=%s:%d",
                s.topics.alerts,
                s.notify.group_id,
                s.kafka.bootstrap_servers,
                _redacted_url(self.client.url),
                s.notify.dead_letter,
                s.notify.concurrency,
                s.notify.max_attempts,
                s.notify.metrics.host,
                self.endpoints.port,
            )
            self._start_status()
            while not self._stop.is_set():
                self._step()
            log.info("stopping: batches=%d", self.batches)
            self.log_status()
            return 0
        finally:
            self._stop.set()  # ends the status thread too
            if self._status_thread is not None:
                self._status_thread.join(_CLOSE_TIMEOUT_S)
            self._ready = False
            self._close()
            self.endpoints.stop()

    def status(self) -> str:
        """The ``status`` line: counts since start, the lag after the last commit, batches.

        >>> secret = "0123456789abcdef"
        >>> settings = DetectorSettings.load(
        ...     overrides={"notify": {"url": "http://127.0.0.1:9/alerts", "secret": secret}}
        ... )
        >>> Notifier(settings).status()
        'status delivered=0 retries=0 failures=0 dead_letters=0 lag=unknown batches=0'
        """
        m = self.metrics
        lag = sum(self._lags.values()) if self._lags else "unknown"
        return (
            f"status delivered={_total(m.delivered)} retries={_total(m.retries)} "
            f"failures={_total(m.failures)} dead_letters={_total(m.dead_letters)} lag={lag} "
            f"batches={self.batches}"
        )

    def log_status(self) -> None:
        """Log the :meth:`status` line."""
        log.info("%s", self.status())

    def _start_status(self) -> None:
        """Log the status every ``notify.status_interval_s`` from a thread of its own, so a
        quiet topic or a long retry still shows the notifier alive."""
        interval = self.settings.notify.status_interval_s
        if interval <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.log_status()

        self._status_thread = threading.Thread(target=loop, name="notify-status", daemon=True)
        self._status_thread.start()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False, timeout_ms=int(_CLOSE_TIMEOUT_S * 1000))
            except KafkaError as exc:
                log.warning("consumer close failed error=%s", exc)
        if self._producer is not None:
            try:
                self._producer.close(timeout=_CLOSE_TIMEOUT_S)
            except KafkaError as exc:
                log.warning("producer close failed error=%s", exc)

    # -- one batch -------------------------------------------------------------------------

    def _step(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            records = consumer.poll(
                timeout_ms=self.settings.consumer.poll_timeout_ms,
                max_records=self.settings.notify.batch_size,
            )
        except KafkaError as exc:
            log.warning("poll failed error=%s", exc)
            self._stop.wait(1.0)
            return
        self._ready = bool(consumer.assignment())
        if not records:
            return
        polled_at = time.monotonic()
        items = [(tp, r) for tp, batch in records.items() for r in batch]
        if self._pool is None:  # one request at a time: no hand-over between threads
            outcomes = [self._deliver(r, polled_at) for _, r in items]
        else:
            futures = [self._pool.submit(self._deliver, r, polled_at) for _, r in items]
            outcomes = [f.result() for f in futures]
        dead = [(r, o) for (_, r), o in zip(items, outcomes, strict=True) if o.status == "dead"]
        if dead and not self._dead_letter(dead):
            outcomes = [
                Outcome("aborted", o.attempts) if o.status == "dead" else o for o in outcomes
            ]
        offsets, replay = _settled_offsets(items, outcomes)
        if offsets:
            try:
                consumer.commit(offsets)
            except KafkaError as exc:  # a rebalance: the next owner delivers them again
                log.warning("commit failed error=%s; the batch's alerts will be sent again", exc)
        for tp, offset in replay.items():
            consumer.seek(tp, offset)  # stopping: read again after the restart anyway
        self.batches += 1
        self._update_lag(offsets)

    def _deliver(self, record: ConsumerRecord, polled_at: float) -> Outcome:
        event_id = alert_event_id(record.value)
        if event_id is None:
            return Outcome("dead", 0, "invalid_alert", "not a JSON object with an event_id")
        return self.sender.send(record.value, event_id, polled_at=polled_at)

    def _dead_letter(self, dead: list[tuple[ConsumerRecord, Outcome]]) -> bool:
        """Publish the dead alerts and await the broker; False when stopped before that."""
        producer = self._producer
        assert producer is not None
        topic = self.settings.notify.dead_letter
        attempt = 0
        while True:
            futures = []
            for record, outcome in dead:
                assert outcome.reason is not None
                message = Message(
                    record.key,
                    record.value,
                    Source(record.topic, record.partition, record.offset),
                    tuple(record.headers or ()),
                )
                headers = dead_letter_headers(message, EventError(outcome.reason, outcome.detail))
                headers.append((_ATTEMPTS_HEADER, str(outcome.attempts).encode()))
                futures.append(
                    producer.send(topic, key=record.key, value=record.value, headers=headers)
                )
            try:
                producer.flush(timeout=_ACK_TIMEOUT_S)
                for future in futures:
                    future.get(timeout=_ACK_TIMEOUT_S)
            except KafkaError as exc:
                attempt += 1
                pause = backoff(attempt, initial=0.5, maximum=10.0, rng=self._rng)
                log.warning(
                    "dead-letter publish failed topic=%s alerts=%d attempt=%d retry_in=%.2fs "
                    "error=%s",
                    topic,
                    len(dead),
                    attempt,
                    pause,
                    exc,
                )
                if self._stop.wait(pause):
                    return False
                continue
            for record, outcome in dead:
                assert outcome.reason is not None
                self.metrics.dead_letters.labels(reason=outcome.reason).inc()
                log.warning(
                    "alert dead-lettered event_id=%s reason=%s attempts=%d topic=%s "
                    "partition=%d offset=%d detail=%s",
                    alert_event_id(record.value),
                    outcome.reason,
                    outcome.attempts,
                    record.topic,
                    record.partition,
                    record.offset,
                    outcome.detail,
                )
            return True

    def _update_lag(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp, committed in offsets.items():
            high = consumer.highwater(tp)
            if high is not None:
                lag = max(high - committed.offset, 0)
                self._lags[tp.partition] = lag
                self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(lag)


def _total(counter: Counter) -> int:
    """A counter's count, summed over its labels."""
    return round(
        sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))
    )


def _settled_offsets(
    items: list[tuple[TopicPartition, ConsumerRecord]], outcomes: list[Outcome]
) -> tuple[dict[TopicPartition, OffsetAndMetadata], dict[TopicPartition, int]]:
    """Per partition, the offset after the longest settled prefix, and where to read again.

    >>> from collections import namedtuple
    >>> R = namedtuple("R", "offset")
    >>> tp = TopicPartition("alerts", 0)
    >>> items = [(tp, R(5)), (tp, R(6)), (tp, R(7))]
    >>> done, again = _settled_offsets(items, [Outcome("delivered", 1), Outcome("aborted", 1),
    ...                                        Outcome("dead", 8, "exhausted")])
    >>> done[tp].offset, again[tp]
    (6, 6)
    """
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    replay: dict[TopicPartition, int] = {}
    for (tp, record), outcome in zip(items, outcomes, strict=True):
        if tp in replay:
            continue
        if outcome.status == "aborted":
            replay[tp] = record.offset
        else:
            offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
    return offsets, replay


def _redacted_url(url: str) -> str:
    """The URL without query string or user info (either may carry a token)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _stop_on_signals(notifier: Notifier) -> AbstractContextManager[None]:
    def stop(name: str) -> None:
        log.info("signal=%s finishing the requests in flight", name)
        notifier.stop()

    return handling({signal.SIGTERM: stop, signal.SIGINT: stop})


NOTIFY_FLAGS = (
    SettingFlag(
        "--bootstrap-servers", "kafka.bootstrap_servers", metavar="HOST:PORT", help="Kafka brokers"
    ),
    SettingFlag(
        "--webhook-url", "notify.url", metavar="URL", help="where alerts are POSTed (notify.url)"
    ),
    SettingFlag(
        "--group-id", "notify.group_id", metavar="NAME", help="consumer group (notify.group_id)"
    ),
    SettingFlag(
        "--metrics-port",
        "notify.metrics.port",
        type=int,
        metavar="N",
        help="HTTP port (default 9109)",
    ),
    SettingFlag("--metrics-host", "notify.metrics.host", metavar="ADDR", help="HTTP bind address"),
)
"""``notify``'s flags and the settings each one overrides (the top-level ``--log-level`` too).
The secret has no flag: a command line is visible to every user of the machine."""


class NotifyCommand(Command):
    name = "notify"
    help = "deliver alerts from Kafka to an HTTP webhook (signed, retried, dead-lettered)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_config_flag(parser, "YAML settings (configs/detector.yaml)")
        add_setting_flags(parser, NOTIFY_FLAGS)

    def run(self, args: argparse.Namespace) -> int:
        overrides = setting_overrides(args, [*NOTIFY_FLAGS, LOG_LEVEL])
        settings = DetectorSettings.load(args.config, overrides)
        configure_logging(settings.log_level)
        install_secret_filter(settings)
        notifier = Notifier(settings)
        with _stop_on_signals(notifier):
            try:
                return notifier.run()
            except OSError as exc:
                raise BrokerError(f"cannot notify: {exc}") from exc
