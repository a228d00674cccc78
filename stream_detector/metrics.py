"""Every Prometheus metric of the service, registered on a registry the caller provides.

Names, types and labels are part of the external contract (docs/CONTRACT.md). Each metric is
declared with ``namespace=NAMESPACE``, so prometheus_client prefixes every name with
``stream_detector_`` (and counters with the ``_total`` suffix). Three groups, one per owner:
:class:`DetectorMetrics` for the run loop and the online side, :class:`DeliveryMetrics` for
the delivery guarantees (:mod:`stream_detector.kafka.delivery`), both on the service's one
registry, and :class:`NotifyMetrics` for ``stream-detector notify`` (its own process and
registry). Tests build a fresh ``CollectorRegistry`` per case:

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = DetectorMetrics(registry)
>>> metrics.events.inc(3)
>>> registry.get_sample_value("stream_detector_events_total")
3.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from stream_detector.events import InvalidReason, LabelReason

__all__ = [
    "NAMESPACE",
    "SCORE_BUCKETS",
    "BatchObserver",
    "ControlSource",
    "DeliveryMetrics",
    "DetectorMetrics",
    "NotifyMetrics",
    "ReplayReason",
    "observe_many",
]

NAMESPACE = "stream_detector"
"""The prefix of every exported metric name."""

ControlSource = Literal["sighup", "admin"]
"""Where a live threshold change comes from: the ``source`` label of
``stream_detector_threshold_changes_total`` and ``stream_detector_control_errors_total``."""
ReplayReason = Literal["fenced", "commit_failed", "aborted", "stopped"]
"""Why a batch's offsets were not committed: the ``reason`` label of
``stream_detector_batches_replayed_total``."""

SCORE_BUCKETS: tuple[float, ...] = (
    *(round(m * 10.0**e, 12) for e in range(-6, -1) for m in (1.0, 2.5, 5.0)),
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    0.999,
    1.0,
)
"""The default upper bounds of ``stream_detector_score``: log-spaced (1, 2.5, 5 per decade)
from 1e-6 to 0.1, where the thresholds of rare-event models lie (a fraud rate of 0.1% puts a
well-calibrated model's threshold near 1e-3), then linear to 1 with finer steps at the top,
where anomaly and boosted scorers put their alerts. ``metrics.score_buckets`` replaces them."""
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DELIVERY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_READBACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DetectorMetrics:
    """The run loop's and the online side's metrics (the delivery's: :class:`DeliveryMetrics`)."""

    def __init__(
        self, registry: CollectorRegistry, *, score_buckets: Sequence[float] = SCORE_BUCKETS
    ) -> None:
        self.registry = registry
        self.events = Counter(
            "events",
            "Messages consumed from the events topic.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.events_invalid = Counter(
            "events_invalid",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.alerts = Counter("alerts", "Flagged events.", namespace=NAMESPACE, registry=registry)
        self.score = Histogram(
            "score",
            "Scores of valid events.",
            buckets=tuple(score_buckets),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.processing_seconds = Histogram(
            "processing_seconds",
            "Time from poll to commit, per batch.",
            buckets=_SECONDS_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.event_lag_seconds = Histogram(
            "event_lag_seconds",
            "Wall clock at decision minus event timestamp.",
            buckets=_LAG_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.threshold = Gauge(
            "threshold", "The threshold in force.", namespace=NAMESPACE, registry=registry
        )
        self.class_prior = Gauge(
            "class_prior",
            "Positive-class rate as tracked from feedback labels.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.labels = Counter(
            "labels",
            "Feedback labels consumed, by label.",
            ["label"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "End offset minus committed offset, per partition.",
            ["partition"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.model_info = Info(
            "model",
            "The loaded model bundle.",
            namespace=NAMESPACE,
            registry=registry,
        )
        # The online side (stream_detector.online): feedback, thresholds, drift, control.
        self.labels_invalid = Counter(
            "labels_invalid",
            "Label messages sent to the dead-letter topic, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.labels_unmatched = Counter(
            "labels_unmatched",
            "Labels whose event_id is not among the decisions remembered.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.alert_precision = Gauge(
            "alert_precision",
            "Share of recent labelled alerts that were fraud (NaN until one is labelled).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.alert_recall = Gauge(
            "alert_recall",
            "Share of recent labelled frauds that were alerted (NaN until one is labelled).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.threshold_mode = Gauge(
            "threshold_mode",
            "1 for the threshold mode in force, 0 for the others.",
            ["mode"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.threshold_changes = Counter(
            "threshold_changes",
            "Live changes of threshold, mode or budget, by source (sighup, admin).",
            ["source"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.control_errors = Counter(
            "control_errors",
            "Refused or failed live changes, by source (sighup, admin).",
            ["source"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.drift = Counter(
            "drift",
            "Drift detections, by signal (score, labels, feature:<name>).",
            ["signal"],
            namespace=NAMESPACE,
            registry=registry,
        )
        # Operations: what alert rules compare the live figures with, and readiness.
        self.validation_precision = Gauge(
            "validation_precision",
            "Precision at the threshold on the bundle's validation data (NaN when unknown).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.validation_recall = Gauge(
            "validation_recall",
            "Recall at the threshold on the bundle's validation data (NaN when unknown).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.alert_precision_labels = Gauge(
            "alert_precision_labels",
            "Labelled alerts the live precision is computed over.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.alert_recall_labels = Gauge(
            "alert_recall_labels",
            "Labelled frauds the live recall is computed over.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.ready = Gauge(
            "ready",
            "1 while /readyz answers 200 (consumer assigned, model loaded), else 0.",
            namespace=NAMESPACE,
            registry=registry,
        )
        # Behavioural features (stream_detector.features) and their state store.
        self.feature_seconds = Histogram(
            "feature_seconds",
            "Time computing a batch's behavioural features, store round trips included.",
            buckets=_SECONDS_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.store_round_trips = Counter(
            "store_round_trips",
            "Round trips to the feature state store.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.store_seconds = Histogram(
            "store_seconds",
            "Latency of the state store, per batch: its round trips' total time.",
            buckets=_SECONDS_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.store_errors = Counter(
            "store_errors",
            "Failed attempts to reach the state store (each batch attempt counts once).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.store_keys = Gauge(
            "store_keys",
            "Keys the state store holds: entities, the event index, labels waiting.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.partitions_paused = Gauge(
            "partitions_paused",
            "Events partitions paused because their event time runs ahead of the slowest.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.records_held_back = Counter(
            "records_held_back",
            "Events held back (uncommitted, in memory) until the slowest partition caught up.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.event_time_skew_seconds = Gauge(
            "event_time_skew_seconds",
            "Event time of the events partition furthest ahead minus that of the slowest.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.validation_precision.set(math.nan)
        self.validation_recall.set(math.nan)
        # Every label value known in advance shows at 0 from the first scrape, so rate() and
        # increase() see a counter's first event (drift signals: the online monitor's, per
        # feature of the bundle).
        _initialise(self.events_invalid, "reason", get_args(InvalidReason))
        _initialise(self.labels_invalid, "reason", get_args(LabelReason))
        _initialise(self.labels, "label", ("0", "1"))
        _initialise(self.threshold_changes, "source", get_args(ControlSource))
        _initialise(self.control_errors, "source", get_args(ControlSource))

    def set_validation(self, metrics: Mapping[str, float | None]) -> None:
        """Export the bundle manifest's validation ``precision`` and ``recall``.

        >>> m = DetectorMetrics(CollectorRegistry())
        >>> m.set_validation({"precision": 0.8, "recall": None})
        >>> m.registry.get_sample_value("stream_detector_validation_precision")
        0.8
        """
        for key, gauge in (
            ("precision", self.validation_precision),
            ("recall", self.validation_recall),
        ):
            value = metrics.get(key)
            gauge.set(math.nan if value is None else float(value))

    def set_model(self, *, model_version: str, technique: str, scorer: str) -> None:
        """Publish the loaded bundle as ``stream_detector_model_info``."""
        self.model_info.info(
            {"model_version": model_version, "technique": technique, "scorer": scorer}
        )


class DeliveryMetrics:
    """The delivery-guarantee metrics, registered on the service's registry.

    >>> registry = CollectorRegistry()
    >>> metrics = DeliveryMetrics(registry)
    >>> metrics.alerts_suppressed.inc(2)
    >>> registry.get_sample_value("stream_detector_alerts_suppressed_total")
    2.0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts_suppressed = Counter(
            "alerts_suppressed",
            "Alerts not published because the event was already alerted (replays).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.readback_seconds = Histogram(
            "dedupe_readback_seconds",
            "Time to read back recent alert ids when partitions are assigned.",
            buckets=_READBACK_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.publish_retries = Counter(
            "publish_retries",
            "Output records sent again after the broker failed to acknowledge them.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.batches_replayed = Counter(
            "batches_replayed",
            "Batches whose offsets this instance did not commit, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        _initialise(self.batches_replayed, "reason", get_args(ReplayReason))
        self.dead_letters_truncated = Counter(
            "dead_letters_truncated",
            "Dead letters published with their value cut to fit the broker.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.broker_unreachable_seconds = Gauge(
            "broker_unreachable_seconds",
            "How long the broker has been unreachable; 0 while it answers.",
            namespace=NAMESPACE,
            registry=registry,
        )


class NotifyMetrics:
    """The metrics of ``stream-detector notify`` (alerts to a webhook), on one registry.

    Labelled counters start at 0 for every known reason, so rate() sees them from the start.

    >>> registry = CollectorRegistry()
    >>> metrics = NotifyMetrics(registry, failure_reasons=["timeout"], dead_letter_reasons=["exhausted"])
    >>> registry.get_sample_value("stream_detector_notify_failures_total", {"reason": "timeout"})
    0.0
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        failure_reasons: Iterable[str] = (),
        dead_letter_reasons: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self.delivered = Counter(
            "delivered",
            "Alerts the webhook acknowledged with a 2xx answer.",
            namespace=NAMESPACE,
            subsystem="notify",
            registry=registry,
        )
        self.retries = Counter(
            "retries",
            "Webhook requests sent again after a failed attempt.",
            namespace=NAMESPACE,
            subsystem="notify",
            registry=registry,
        )
        self.failures = Counter(
            "failures",
            "Failed webhook attempts, by reason (timeout, connection, server_error, ...).",
            ["reason"],
            namespace=NAMESPACE,
            subsystem="notify",
            registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters",
            "Alerts sent to the notify dead-letter topic, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            subsystem="notify",
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "delivery_seconds",
            "Time from poll to the webhook's acknowledgement, retries included.",
            buckets=_DELIVERY_BUCKETS,
            namespace=NAMESPACE,
            subsystem="notify",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "Alerts not yet delivered: end offset minus committed offset, per partition.",
            ["partition"],
            namespace=NAMESPACE,
            subsystem="notify",
            registry=registry,
        )
        _initialise(self.failures, "reason", tuple(failure_reasons))
        _initialise(self.dead_letters, "reason", tuple(dead_letter_reasons))


def _initialise(counter: Counter, label: str, values: Sequence[str]) -> None:
    """Create ``counter``'s child for every value of ``label``: exported at 0 before any event."""
    for value in values:
        counter.labels(**{label: value})


class BatchObserver:
    """Observe a batch of values on one histogram: the same counts and sum as ``observe`` on each.

    prometheus_client has no batch observe, and one ``observe`` per event costs two locked
    increments. This adapter is the one place that reads the histogram's private state
    (``_buckets``, ``_upper_bounds``, ``_sum``): numpy counts the values per bucket (a value
    lands in the first bucket whose upper bound is >= it, as ``observe`` puts it) and each
    touched bucket and the sum are incremented once. A histogram without those internals (a
    labelled parent, a future client version) is observed value by value; :attr:`direct` says
    which path is taken, and ``tests/stream_detector/test_metrics.py`` fails when the installed
    prometheus_client no longer offers the direct one.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> h = Histogram("h", "doc", buckets=(0.5, 1.0), registry=registry)
    >>> observer = BatchObserver(h)
    >>> observer.direct
    True
    >>> observer.observe_many([0.2, 0.5, 0.7, 3.0])
    >>> [registry.get_sample_value("h_bucket", {"le": le}) for le in ("0.5", "1.0", "+Inf")]
    [2.0, 3.0, 4.0]
    >>> registry.get_sample_value("h_sum")
    4.4
    """

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        buckets: Any = getattr(histogram, "_buckets", None)
        bounds: Any = getattr(histogram, "_upper_bounds", None)
        total: Any = getattr(histogram, "_sum", None)
        self.direct = (
            buckets is not None
            and bounds is not None
            and total is not None
            and len(buckets) == len(bounds)
        )
        """True when the batch is counted per bucket; False: value by value."""
        self._buckets = buckets
        self._bounds = np.asarray(bounds, dtype=np.float64) if self.direct else None
        self._sum = total

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Observe every value of ``values`` (any shape)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            return
        if self._bounds is None:
            for value in v.tolist():
                self.histogram.observe(value)
            return
        n = len(self._bounds)
        # NaN sorts after +Inf: it lands in no bucket, as with observe (its sum turns NaN).
        index = np.searchsorted(self._bounds, v, side="left")
        counts = np.bincount(index, minlength=n + 1)[:n]
        for i in np.flatnonzero(counts).tolist():
            self._buckets[i].inc(int(counts[i]))
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as with observe
            self._sum.inc(float(v.sum()))


def observe_many(histogram: Histogram, values: npt.ArrayLike) -> None:
    """Observe a batch of values on ``histogram`` (see :class:`BatchObserver`).

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> h = Histogram("h", "doc", buckets=(1.0,), registry=registry)
    >>> observe_many(h, [0.5, 2.0])
    >>> registry.get_sample_value("h_count")
    2.0
    """
    BatchObserver(histogram).observe_many(values)
