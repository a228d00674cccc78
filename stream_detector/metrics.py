"""The service's Prometheus metrics, registered on a registry the caller provides.

Names, types and labels are part of the external contract. Tests build a fresh
``CollectorRegistry`` per case:

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = DetectorMetrics(registry)
>>> metrics.events.inc(3)
>>> registry.get_sample_value("stream_detector_events_total")
3.0
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

__all__ = ["DetectorMetrics", "observe_many"]

_SCORE_BUCKETS = (*(round(0.05 * i, 2) for i in range(1, 20)), 0.99, 1.0)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class DetectorMetrics:
    """Every metric of the contract, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "stream_detector_events",
            "Messages consumed from the events topic.",
            registry=registry,
        )
        self.events_invalid = Counter(
            "stream_detector_events_invalid",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.alerts = Counter("stream_detector_alerts", "Flagged events.", registry=registry)
        self.score = Histogram(
            "stream_detector_score",
            "Scores of valid events.",
            buckets=_SCORE_BUCKETS,
            registry=registry,
        )
        self.processing_seconds = Histogram(
            "stream_detector_processing_seconds",
            "Time from poll to commit, per batch.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.event_lag_seconds = Histogram(
            "stream_detector_event_lag_seconds",
            "Wall clock at decision minus event timestamp.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.threshold = Gauge(
            "stream_detector_threshold", "The threshold in force.", registry=registry
        )
        self.class_prior = Gauge(
            "stream_detector_class_prior",
            "Positive-class rate as tracked from feedback labels.",
            registry=registry,
        )
        self.labels = Counter(
            "stream_detector_labels",
            "Feedback labels consumed, by label.",
            ["label"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "stream_detector_consumer_lag",
            "End offset minus committed offset, per partition.",
            ["partition"],
            registry=registry,
        )
        self.model_info = Info(
            "stream_detector_model",
            "The loaded model bundle.",
            registry=registry,
        )
        # The online side (stream_detector.online): feedback, thresholds, drift, control.
        self.labels_invalid = Counter(
            "stream_detector_labels_invalid",
            "Label messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.labels_unmatched = Counter(
            "stream_detector_labels_unmatched",
            "Labels whose event_id is not among the decisions remembered.",
            registry=registry,
        )
        self.alert_precision = Gauge(
            "stream_detector_alert_precision",
            "Share of recent labelled alerts that were fraud (NaN until one is labelled).",
            registry=registry,
        )
        self.alert_recall = Gauge(
            "stream_detector_alert_recall",
            "Share of recent labelled frauds that were alerted (NaN until one is labelled).",
            registry=registry,
        )
        self.threshold_mode = Gauge(
            "stream_detector_threshold_mode",
            "1 for the threshold mode in force, 0 for the others.",
            ["mode"],
            registry=registry,
        )
        self.threshold_changes = Counter(
            "stream_detector_threshold_changes",
            "Live changes of threshold, mode or budget, by source (sighup, admin).",
            ["source"],
            registry=registry,
        )
        self.control_errors = Counter(
            "stream_detector_control_errors",
            "Refused or failed live changes, by source (sighup, admin).",
            ["source"],
            registry=registry,
        )
        self.drift = Counter(
            "stream_detector_drift",
            "Drift detections, by signal (score, labels, feature:<name>).",
            ["signal"],
            registry=registry,
        )

        # Behavioural features (stream_detector.features) and their state store.
        self.feature_seconds = Histogram(
            "stream_detector_feature_seconds",
            "Time computing a batch's behavioural features, store round trips included.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.store_round_trips = Counter(
            "stream_detector_store_round_trips",
            "Round trips to the feature state store.",
            registry=registry,
        )
        self.store_seconds = Histogram(
            "stream_detector_store_seconds",
            "Latency of the state store, per batch: its round trips' total time.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "stream_detector_store_errors",
            "Failed attempts to reach the state store (each batch attempt counts once).",
            registry=registry,
        )
        self.store_keys = Gauge(
            "stream_detector_store_keys",
            "Keys the state store holds: entities, the event index, labels waiting.",
            registry=registry,
        )

    def set_model(self, *, model_version: str, technique: str, scorer: str) -> None:
        """Publish the loaded bundle as ``stream_detector_model_info``."""
        self.model_info.info(
            {"model_version": model_version, "technique": technique, "scorer": scorer}
        )


def observe_many(histogram: Histogram, values: npt.ArrayLike) -> None:
    """Observe a batch of values: the same counts and sum as ``histogram.observe`` on each.

    prometheus_client has no batch observe, and one ``observe`` per event costs two locked
    increments. Here numpy counts the values per bucket (a value lands in the first bucket
    whose upper bound is >= it, as ``observe`` puts it) and each touched bucket and the sum
    are incremented once. A histogram without the expected internals (a labelled parent, a
    future client version) is observed value by value.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> h = Histogram("h", "doc", buckets=(0.5, 1.0), registry=registry)
    >>> observe_many(h, [0.2, 0.5, 0.7, 3.0])
    >>> [registry.get_sample_value("h_bucket", {"le": le}) for le in ("0.5", "1.0", "+Inf")]
    [2.0, 3.0, 4.0]
    >>> registry.get_sample_value("h_sum")
    4.4
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for value in v.tolist():
            histogram.observe(value)
        return
    # NaN sorts after +Inf: it lands in no bucket, as with observe (its sum turns NaN).
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), v, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)[: len(bounds)]
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as with observe
        total.inc(float(v.sum()))
