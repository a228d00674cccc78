"""``stream-detector serve``: the run loop, owning the service's whole lifecycle in one place.

Start the HTTP endpoints, the producer and the consumer; then, until SIGTERM or SIGINT:
poll a micro-batch, decide it in one model call, publish every decision, alert and dead
letter, and commit the batch's offsets only once the broker has acknowledged all of them
(at-least-once; the acknowledgements are awaited while the next batch is polled and decided).
On a stop signal the batch in flight is finished and committed before the clients close, so
a clean shutdown loses and repeats nothing. How outputs and
offsets reach the broker (at-least-once with duplicate-alert suppression, or exactly-once
transactions), rebalances, broker outages and slow batches are handled in
:mod:`stream_detector.kafka.delivery`.

The same consumer also reads the ``labels`` topic. One consumer rather than two: a batch's
labels are validated, dead-lettered and committed through the very publish-then-commit path
the events take, so label offsets get the same never-lost guarantee at no extra cost; and with
the range assignor, when events are keyed by ``event_id`` like labels and both topics have as
many partitions, partition *i* of both lands on the same instance, so labels meet the
decisions they judge even with several instances in the group. Label records never reach the
model; :mod:`stream_detector.online` learns from them after the commit. For a bundle with
behavioural features, a batch's valid labels also become feature state before its events are
computed (confirmed frauds feed the label-based windows). The state store (``state.store``)
being unreachable is handled like the broker: the batch waits and is retried, ``/readyz``
answers 503 meanwhile, and after ``state.give_up_after_s`` the service exits with code 2;
nothing is decided on missing state. With time windows, the events and labels partitions are
read in step by time (:mod:`stream_detector.kafka.alignment`): records of a partition that runs
ahead wait, uncommitted, so that a backlog spread over partitions is not too late. SIGHUP
re-reads the config file's threshold, mode and alert budget between two batches (see
:mod:`stream_detector.online.control`, which also documents the admin endpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, get_args

import numpy as np
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from stream_detector.backfill import backfill
from stream_detector.bundle import ModelBundle, load_bundle
from stream_detector.command import Command
from stream_detector.config import DetectorSettings, ThresholdMode
from stream_detector.decide import Decider
from stream_detector.endpoints import EndpointServer
from stream_detector.errors import BrokerError, StateStoreError
from stream_detector.events import parse_timestamp
from stream_detector.flags import (
    LOG_LEVEL,
    THRESHOLD,
    SettingFlag,
    add_config_flag,
    add_setting_flags,
    configure_logging,
    setting_overrides,
)
from stream_detector.kafka.alignment import EventTimeAligner
from stream_detector.kafka.clients import make_consumer, wait_for_listener
from stream_detector.kafka.delivery import Delivery, Phase
from stream_detector.kafka.factory import make_delivery
from stream_detector.kafka.publish import OutRecord, batch_records
from stream_detector.messages import BatchOutcome, Message, Source
from stream_detector.metrics import BatchObserver, DetectorMetrics
from stream_detector.online import (
    ADMIN_PATH,
    AdminEndpoint,
    LabelBatch,
    OnlineMonitor,
    cold_start_bundle,
    reload_config,
)
from stream_detector.redact import install_secret_filter
from stream_detector.signals import handling
from stream_detector.state import StateStore
from stream_detector.state.factory import make_store

__all__ = ["GC_THRESHOLDS", "SERVE_FLAGS", "ServeCommand", "Service", "StatusTotals", "tune_gc"]

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_MS = 5_000
_FULL_GC_EVERY_S = 60.0
"""A full garbage collection between batches this often: with :data:`GC_THRESHOLDS` the
oldest generation would otherwise wait for millions of allocations, and the few reference
cycles a batch leaves (client callbacks, exceptions) would pile up meanwhile."""


class Service:
    """The streaming service.

    Parameters
    ----------
    settings
        The process's frozen settings.
    bundle
        The loaded model bundle.
    registry
        Where the metrics are registered (a fresh one per test).
    config_path
        The config file SIGHUP re-reads (:meth:`request_reload`).
    """

    def __init__(
        self,
        settings: DetectorSettings,
        bundle: ModelBundle,
        *,
        registry: CollectorRegistry | None = None,
        config_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.settings = settings
        self.bundle = bundle
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = DetectorMetrics(self.registry, score_buckets=settings.metrics.score_buckets)
        self.store: StateStore | None = (
            make_store(settings.state, bundle.spec) if bundle.spec is not None else None
        )
        self._store_ok = True
        self._scores = BatchObserver(self.metrics.score)
        self._event_lags = BatchObserver(self.metrics.event_lag_seconds)
        self.decider = Decider(
            bundle,
            threshold=settings.threshold,
            reasons_top=settings.reasons_top,
            max_bytes=settings.max_message_bytes,
            store=self.store,
        )
        # The online side (stream_detector.online): thresholds, labels, drift, live control.
        self.online = OnlineMonitor(settings, bundle, metrics=self.metrics)
        self.config_path = config_path
        self._reload = threading.Event()
        token = settings.admin.token
        routes = {ADMIN_PATH: AdminEndpoint(token=token, monitor=self.online)} if token else {}
        self.endpoints = EndpointServer(
            self.registry,
            ready=self.is_ready,
            host=settings.metrics.host,
            port=settings.metrics.port,
            health=self.online.health,
            routes=routes,
        )
        self._stop = threading.Event()
        self._ready = False
        self._consumer: KafkaConsumer | None = None
        self.phase_hook: Callable[[Phase], None] | None = None
        """Called at each phase of a batch; fault-injection tests kill or slow the process here."""
        self.delivery: Delivery = make_delivery(
            settings, registry=self.registry, stop=self._stop, on_phase=self._phase
        )
        self.batches = 0
        self._next_full_gc = time.monotonic() + _FULL_GC_EVERY_S
        self.totals = StatusTotals()
        """What the status line reports, counted since start."""
        self._lags: dict[int, int] = {}
        self._next_status = time.monotonic() + settings.status_interval_s
        self.aligner = _aligner(settings, bundle, self.metrics)
        """Holds back events partitions that run ahead in event time (None without time
        windows: nothing can be too late)."""

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, commit and return."""
        self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the config file's threshold settings before the next batch."""
        self._reload.set()

    def is_ready(self) -> bool:
        """True while the consumer is connected and assigned, a model is loaded and the state
        store (if any) answers."""
        return self._ready and self.delivery.healthy and self._store_ok

    def run(self) -> int:
        """Serve until :meth:`stop`; return the exit code."""
        m = self.metrics
        m.threshold.set(self.decider.threshold)
        m.set_model(
            model_version=self.bundle.model_version,
            technique=self.bundle.manifest.technique,
            scorer=self.bundle.manifest.scorer,
        )
        m.set_validation(self.bundle.manifest.metrics)
        m.ready.set_function(lambda: float(self.is_ready()))
        self.endpoints.start()
        try:
            self._backfill()
            self.delivery.start()
            self._consumer = make_consumer(
                self.settings, should_stop=self._stop.is_set, **self.delivery.consumer_overrides()
            )
            self._consumer.subscribe(
                [self.settings.topics.events, self.settings.topics.labels],
                listener=self.delivery.listener,
            )
            log.info(
                "serving topic=%s group=%s bootstrap=%s guarantee=%s model_version=%s "
                "threshold=%g metrics=%s:%d",
                self.settings.topics.events,
                self.settings.consumer.group_id,
                self.settings.kafka.bootstrap_servers,
                self.settings.processing_guarantee,
                self.bundle.model_version,
                self.decider.threshold,
                self.settings.metrics.host,
                self.endpoints.port,
            )
            while not self._stop.is_set():
                self._step()
                self._maybe_log_status()
            self.delivery.drain(self._consumer)
            log.info("stopping: batches=%d", self.batches)
            self.log_status()
            return 0
        finally:
            self._ready = False
            self._close()
            if self.store is not None:
                self.store.close()
            self.endpoints.stop()

    def _backfill(self) -> None:
        """Compute ``state.backfill`` (a raw history) into the store before consuming."""
        path, engine = self.settings.state.backfill, self.decider.engine
        if path is None or engine is None:
            return
        started = time.monotonic()
        n = backfill(engine, self.bundle, path)
        log.info(
            "backfilled events=%d file=%s store=%s seconds=%.1f",
            n,
            path,
            self.settings.state.store,
            time.monotonic() - started,
        )

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False, timeout_ms=_CLOSE_TIMEOUT_MS)
            except KafkaError as exc:
                log.warning("consumer close failed error=%s", exc)
        self.delivery.close()

    # -- the loop --------------------------------------------------------------------------

    def _step(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        if self._reload.is_set():
            self._reload.clear()
            reload_config(self.online, self.config_path)
        try:
            records = consumer.poll(
                timeout_ms=self.settings.consumer.poll_timeout_ms,
                max_records=self.delivery.max_records(),
            )
        except KafkaError as exc:
            self.delivery.poll_failed(exc)
            return
        if self.aligner is not None:
            records = self.aligner.align(
                consumer, records, rebalances=self.delivery.listener.rebalances
            )
        # Rebalances first: partitions new to this instance get their alerts read back.
        self.delivery.after_poll(consumer, sum(len(batch) for batch in records.values()))
        self._ready = bool(consumer.assignment())
        if not records:
            self.delivery.drain(consumer)  # idle: commit the batch still in flight
            self._update_lag()
            return
        with self.metrics.processing_seconds.time():
            messages = [
                Message(r.key, r.value, Source(tp.topic, tp.partition, r.offset), r.headers or ())
                for tp, batch in records.items()
                for r in batch
            ]
            messages, labels = self._split_labels(messages)
            self.decider.threshold, self.decider.threshold_mode = self.online.threshold_for_batch()
            decided = self._decide(messages, labels)
            if decided is None:
                return  # stopping while the store is away: the batch is read again
            outcome = decided
            self._phase("decided")
            offsets = {
                tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1) for tp, batch in records.items()
            }
            starts = {tp: batch[0].offset for tp, batch in records.items()}
            outputs = self._outputs(_with_dead_labels(outcome, labels))
            if not self.delivery.deliver(consumer, outputs, offsets, starts):
                if self.aligner is not None:
                    self.aligner.rewound(consumer, starts)
                return  # nothing was published: the batch is read again
        self.batches += 1
        if time.monotonic() >= self._next_full_gc:
            self._full_gc()
        self._count(outcome, len(messages))
        self.totals.add(outcome, len(messages), labels)
        self.online.observe(outcome, labels)
        self._update_lag()

    def _decide(self, messages: list[Message], labels: LabelBatch) -> BatchOutcome | None:
        """Decide a batch; while the state store is unreachable, wait and retry the batch
        (never deciding on missing state), giving up after ``state.give_up_after_s``. None
        when asked to stop meanwhile."""
        state = self.settings.state
        failing_since: float | None = None
        store = self.store
        trips = store.counters.round_trips if store is not None else 0
        waited = store.counters.seconds if store is not None else 0.0
        while True:
            try:
                if labels.labels and store is not None:
                    self.decider.add_labels(_label_columns(labels))
                outcome = self.decider.decide(messages, decisions=self.settings.decisions_enabled)
            except StateStoreError as exc:
                self.metrics.store_errors.inc()
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    log.warning("state store unreachable, retrying the batch error=%s", exc)
                self._store_ok = False
                if now - failing_since >= state.give_up_after_s:
                    raise StateStoreError(
                        f"the state store ({state.store}) was unreachable for "
                        f"{state.give_up_after_s:g} s; giving up: {exc}"
                    ) from exc
                if self._stop.wait(state.retry_backoff_s):
                    return None
                continue
            if not self._store_ok:
                log.info("state store reachable again")
            self._store_ok = True
            break
        if store is not None:
            m, stats = self.metrics, self.decider.last_stats
            m.store_round_trips.inc(store.counters.round_trips - trips)
            m.store_seconds.observe(store.counters.seconds - waited)
            if stats is not None:
                m.feature_seconds.observe(stats.seconds)
                m.store_keys.set(stats.entities)
        return outcome

    def _maybe_log_status(self) -> None:
        interval = self.settings.status_interval_s
        if interval > 0 and time.monotonic() >= self._next_status:
            self._next_status = time.monotonic() + interval
            self.log_status()

    def log_status(self) -> None:
        """Log one ``status`` line: totals since start, lag, threshold and prior in force."""
        t = self.totals
        threshold, mode = self.online.in_force
        log.info(
            "status events=%d alerts=%d dead_letters=%d labels=%d lag=%s threshold=%g "
            "threshold_mode=%s prior=%.6g batches=%d",
            t.events,
            t.alerts,
            t.dead_letters,
            t.labels,
            sum(self._lags.values()) if self._lags else "unknown",
            threshold,
            mode,
            self.online.prior.get(),
            self.batches,
        )

    def _full_gc(self) -> None:
        start = time.monotonic()
        found = gc.collect()
        self._next_full_gc = time.monotonic() + _FULL_GC_EVERY_S
        log.debug(
            "full garbage collection objects=%d seconds=%.4f", found, time.monotonic() - start
        )

    def _split_labels(self, messages: list[Message]) -> tuple[list[Message], LabelBatch]:
        """Events stay for the model; label messages are validated by the online monitor."""
        topic = self.settings.topics.labels
        if not any(m.source.topic == topic for m in messages):
            return messages, LabelBatch()
        labels = self.online.parse_labels([m for m in messages if m.source.topic == topic])
        return [m for m in messages if m.source.topic != topic], labels

    def _outputs(self, outcome: BatchOutcome) -> list[OutRecord]:
        """The records a batch publishes: decisions (unless turned off), alerts, dead letters."""
        return batch_records(
            outcome, self.settings.topics, decisions=self.settings.decisions_enabled
        )

    def _phase(self, phase: Phase) -> None:
        if self.phase_hook is not None:
            self.phase_hook(phase)

    def _count(self, outcome: BatchOutcome, n_messages: int) -> None:
        m = self.metrics
        m.events.inc(n_messages)
        for dead in outcome.dead_letters:
            m.events_invalid.labels(reason=dead.error.reason).inc()
        if outcome.alerts:
            m.alerts.inc(len(outcome.alerts))
        # Histograms per batch: numpy counts the buckets, one increment per bucket touched.
        self._scores.observe_many(outcome.scores)
        if outcome.lags_seconds:
            self._event_lags.observe_many(np.maximum(outcome.lags_seconds, 0.0))

    def _update_lag(self) -> None:
        """The lag of the events partitions whose offsets were committed since the last call:
        their end offset minus the committed offset."""
        consumer = self._consumer
        assert consumer is not None
        for tp, committed in self.delivery.take_committed().items():
            if tp.topic == self.settings.topics.labels:
                continue
            high = consumer.highwater(tp)
            if high is not None:
                self._lags[tp.partition] = max(high - committed.offset, 0)
                self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(
                    max(high - committed.offset, 0)
                )


def _aligner(
    settings: DetectorSettings, bundle: ModelBundle, metrics: DetectorMetrics
) -> EventTimeAligner | None:
    """The event-time aligner of the events and labels topics for a bundle whose spec
    declares windows (margin: half the lateness), else None."""
    spec = bundle.spec
    if spec is None or not spec.windows:
        return None

    def state(paused: int, skew: float) -> None:
        metrics.partitions_paused.set(paused)
        metrics.event_time_skew_seconds.set(skew)

    return EventTimeAligner(
        fields={settings.topics.events: spec.timestamp, settings.topics.labels: "timestamp"},
        margin_ms=spec.lateness_ms // 2,
        on_held=metrics.records_held_back.inc,
        on_state=state,
    )


def _label_columns(labels: LabelBatch) -> dict[str, Any]:
    """A batch's valid labels as the feature engine's columns; a label without a timestamp is
    known from now."""
    now_ms = int(time.time() * 1000)
    known = []
    for label in labels.labels:
        stamp = parse_timestamp(label.timestamp)  # validated by the label parser
        known.append(now_ms if stamp is None else stamp)
    return {
        "event_id": np.array([label.event_id for label in labels.labels], dtype=object),
        "label": np.array([label.label for label in labels.labels], dtype=np.int64),
        "known_at": np.array(known, dtype=np.int64),
    }


@dataclasses.dataclass
class StatusTotals:
    """Counts since start for the status line (the metrics hold the same, for Prometheus).

    >>> t = StatusTotals()
    >>> t.add(BatchOutcome(), 3, LabelBatch())
    >>> t
    StatusTotals(events=3, alerts=0, dead_letters=0, labels=0)
    """

    events: int = 0
    alerts: int = 0
    dead_letters: int = 0
    labels: int = 0

    def add(self, outcome: BatchOutcome, n_events: int, labels: LabelBatch) -> None:
        """Count one committed batch: its events, alerts, dead letters and labels."""
        self.events += n_events
        self.alerts += len(outcome.alerts)
        self.dead_letters += len(outcome.dead_letters) + len(labels.dead_letters)
        self.labels += len(labels.labels)


def _with_dead_labels(outcome: BatchOutcome, labels: LabelBatch) -> BatchOutcome:
    """The outcome to publish: invalid label messages go to the dead-letter topic too."""
    if not labels.dead_letters:
        return outcome
    return dataclasses.replace(outcome, dead_letters=outcome.dead_letters + labels.dead_letters)


GC_THRESHOLDS = (50_000, 10, 10)
"""The garbage collector's generation thresholds while serving (CPython's default is
``(700, 10, 10)``)."""


def tune_gc() -> None:
    """Set the garbage collector up for a long-running service (the ``serve`` process only).

    Every batch allocates thousands of short-lived objects (records, decisions, futures), so
    with CPython's defaults the collector runs every few hundred events, and its older
    generations hold everything loaded at start (modules, the model, the settings) and the
    bounded memories, which it scans again and again. Here the objects alive after start-up
    are frozen (moved to a generation the collector never scans; :func:`gc.freeze`) and the
    youngest generation's threshold raised (:data:`GC_THRESHOLDS`); the run loop adds a full
    collection every minute. Reference counting frees almost everything anyway; the collector
    only has cycles left to find. What this gains, measured with ``benchmarks/throughput.py``,
    is in the README (Performance).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _stop_on_signals(service: Service) -> AbstractContextManager[None]:
    def stop(name: str) -> None:
        log.info("signal=%s finishing the batch in flight", name)
        service.stop()

    def reload(name: str) -> None:
        log.info("signal=SIGHUP reloading the threshold settings before the next batch")
        service.request_reload()

    return handling({signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload})


SERVE_FLAGS = (
    SettingFlag("--model", "model", metavar="DIR", help="model bundle directory"),
    SettingFlag(
        "--bootstrap-servers", "kafka.bootstrap_servers", metavar="HOST:PORT", help="Kafka brokers"
    ),
    THRESHOLD,
    SettingFlag(
        "--threshold-mode",
        "threshold_mode",
        choices=get_args(ThresholdMode),
        help="how the threshold in force is set (default fixed)",
    ),
    SettingFlag(
        "--metrics-port", "metrics.port", type=int, metavar="N", help="HTTP port (default 9108)"
    ),
    SettingFlag("--metrics-host", "metrics.host", metavar="ADDR", help="HTTP bind address"),
    SettingFlag("--group-id", "consumer.group_id", metavar="NAME", help="consumer group"),
    SettingFlag(
        "--no-decisions",
        "decisions_enabled",
        const=False,
        help="publish alerts and dead letters only",
    ),
    SettingFlag(
        "--backfill",
        "state.backfill",
        metavar="FILE",
        help="raw history computed into the feature state before consuming",
    ),
)
"""``serve``'s flags and the settings each one overrides (the top-level ``--log-level`` too)."""


class ServeCommand(Command):
    name = "serve"
    help = "consume events from Kafka, score them, publish decisions and alerts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_config_flag(parser, "YAML settings (configs/detector.yaml)")
        add_setting_flags(parser, SERVE_FLAGS)

    def run(self, args: argparse.Namespace) -> int:
        overrides = setting_overrides(args, [*SERVE_FLAGS, LOG_LEVEL])
        settings = DetectorSettings.load(args.config, overrides)
        configure_logging(settings.log_level)
        install_secret_filter(settings)  # client libraries log requests at DEBUG
        if settings.model is None:
            cold = settings.online.cold_start
            log.info(
                "no model bundle: cold start with the online anomaly scorer features=%s warmup=%d",
                ",".join(cold.features),
                cold.warmup,
            )
            bundle = cold_start_bundle(**cold.model_dump())
        else:
            bundle = load_bundle(settings.model)
        # Before any client or endpoint: an address where nothing listens is one line.
        wait_for_listener(settings.kafka, what="service")
        service = Service(settings, bundle, config_path=args.config)
        tune_gc()
        with _stop_on_signals(service):
            try:
                return service.run()
            except OSError as exc:
                raise BrokerError(f"cannot serve: {exc}") from exc
