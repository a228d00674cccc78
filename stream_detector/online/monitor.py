"""The online side of the run loop: what happens around each batch besides deciding it.

:class:`OnlineMonitor` holds the River components and is called from three small hooks of
:class:`~stream_detector.service.Service` (and, the same way, by ``benchmarks/prior_shift.py``
without a broker):

1. before deciding a batch, :meth:`~OnlineMonitor.threshold_for_batch` gives the threshold in
   force and its mode (nothing is flagged while a cold-start scorer warms up);
2. :meth:`~OnlineMonitor.parse_labels` validates the batch's label messages; invalid ones
   become dead letters published with the batch's other outputs;
3. after the batch is published and committed, :meth:`~OnlineMonitor.observe` learns from it:
   it remembers the decisions, feeds the scores to the alert-rate quantile and the drift
   detectors, lets a cold-start scorer learn the valid events, and joins the labels (prior,
   live precision and recall, label drift). Learning only from committed batches means a
   batch that is retried is learned once.

Live changes (SIGHUP, the admin endpoint) go through :meth:`~OnlineMonitor.apply_settings` and
:attr:`~OnlineMonitor.thresholds`; :meth:`~OnlineMonitor.health` is the ``/healthz`` body.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_detector.bundle import ModelBundle
from stream_detector.config import DetectorSettings, ThresholdMode
from stream_detector.errors import ConfigError, EventError
from stream_detector.events import LabelMessage
from stream_detector.messages import BatchOutcome, DeadLetter, Message
from stream_detector.metrics import DetectorMetrics
from stream_detector.online.coldstart import HalfSpaceTreesScorer
from stream_detector.online.drift import DriftMonitor
from stream_detector.online.feedback import Feedback
from stream_detector.online.labels import LabelParser
from stream_detector.online.prior import ClassPrior
from stream_detector.online.thresholds import MODES, ThresholdController, ThresholdState

__all__ = ["LabelBatch", "OnlineMonitor", "reference_prior"]

log = logging.getLogger(__name__)

_ANOMALY_SCORERS = ("anomaly", "halfspacetrees")


def reference_prior(bundle: ModelBundle) -> float:
    """The prior a bundle's scores are calibrated at: the validation prior the manifest
    records (``class_prior_validation``), else ``class_prior_train``, kept inside (0, 1)."""
    extra = bundle.manifest.model_extra or {}
    value = extra.get("class_prior_validation")
    prior = float(value) if isinstance(value, int | float) else bundle.manifest.class_prior_train
    return min(max(prior, 1e-6), 1.0 - 1e-6)


@dataclass(slots=True)
class LabelBatch:
    """A batch's label messages: the valid labels, in order, and the dead letters."""

    labels: list[LabelMessage] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class OnlineMonitor:
    """Class prior, feedback, thresholds, drift and cold-start learning for one service.

    Parameters
    ----------
    settings
        The service's settings (``threshold``, ``threshold_mode``, ``online``).
    bundle
        The model in use (a cold-start bundle learns online).
    metrics
        Where to export what it tracks; None in the benchmark.
    clock
        Epoch seconds (drift timestamps).
    """

    def __init__(
        self,
        settings: DetectorSettings,
        bundle: ModelBundle,
        *,
        metrics: DetectorMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        online = settings.online
        self.settings = settings
        self.bundle = bundle
        self.metrics = metrics
        self.learner = bundle.scorer if isinstance(bundle.scorer, HalfSpaceTreesScorer) else None
        self.reference_prior = reference_prior(bundle)
        self.prior = ClassPrior(reference=self.reference_prior, **online.prior.model_dump())
        self.feedback = Feedback(**online.feedback.model_dump())
        self.thresholds = ThresholdController(
            mode=self.mode_for(settings),
            threshold=bundle.threshold if settings.threshold is None else settings.threshold,
            budget=online.alert_rate.budget,
            reference_prior=self.reference_prior,
            window_size=online.alert_rate.window_size,
            min_scores=online.alert_rate.min_scores,
            probabilities=bundle.manifest.scorer not in _ANOMALY_SCORERS,
            on_change=self._changed,
        )
        drift = online.drift
        self.drift = (
            DriftMonitor(
                features=bundle.features,
                delta=drift.delta,
                chunk_size=drift.chunk_size,
                hold_s=drift.hold_s,
                clock=clock,
            )
            if drift.enabled
            else None
        )
        self.label_parser = LabelParser(max_bytes=settings.max_message_bytes)
        self._unmatched_exported = 0
        self.in_force: tuple[float, ThresholdMode] = self.thresholds.in_force(
            live_prior=self.prior.get()
        )
        if metrics is not None:
            metrics.class_prior.set(self.prior.get())
            metrics.alert_precision.set(math.nan)
            metrics.alert_recall.set(math.nan)
            for signal in self.drift.signals if self.drift is not None else ():
                metrics.drift.labels(signal=signal)
            for value in ("0", "1"):
                metrics.labels.labels(label=value)
            self._export_threshold()

    def mode_for(self, settings: DetectorSettings) -> ThresholdMode:
        """The mode the settings ask for; unset: ``fixed``, or ``alert_rate`` starting cold."""
        if settings.threshold_mode is not None:
            return settings.threshold_mode
        return "alert_rate" if self.learner is not None else "fixed"

    # -- hooks of the run loop ------------------------------------------------------------

    def threshold_for_batch(self) -> tuple[float, ThresholdMode]:
        """The threshold and mode to decide the next batch with (and export them)."""
        threshold, mode = self.thresholds.in_force(live_prior=self.prior.get())
        if self.learner is not None and self.learner.warming_up:
            threshold = 1.0  # cold-start scores stay below 1: nothing is flagged
        self.in_force = (threshold, mode)
        self._export_threshold()
        return threshold, mode

    def parse_labels(self, messages: Sequence[Message]) -> LabelBatch:
        """Validate label messages; the invalid ones come back as dead letters."""
        batch = LabelBatch()
        parse = self.label_parser.parse
        for message in messages:
            try:
                batch.labels.append(parse(message.value))
            except EventError as err:
                batch.dead_letters.append(DeadLetter(message, err))
        return batch

    def observe(self, outcome: BatchOutcome, labels: LabelBatch | None = None) -> None:
        """Learn from a batch that was published and committed."""
        m = self.metrics
        if outcome.event_ids:
            self.feedback.remember(outcome.event_ids, outcome.flagged)
            scores = outcome.scores.tolist()
            self.thresholds.observe(scores)
            if self.learner is not None:
                self.learner.learn(outcome.features)
            if self.drift is not None:
                self._drifted(self.drift.update(scores, outcome.features))
        if labels is None:
            return
        if m is not None:
            for dead in labels.dead_letters:
                m.labels_invalid.labels(reason=dead.error.reason).inc()
        if not labels.labels:
            return
        values = [label.label for label in labels.labels]
        for label in labels.labels:
            self.prior.update(label.label)
            self.feedback.join(label.event_id, label.label)
        if self.drift is not None:
            self._drifted(self.drift.update_labels(values))
        if m is not None:
            n_fraud = sum(values)
            if n_fraud:
                m.labels.labels(label="1").inc(n_fraud)
            if len(values) - n_fraud:
                m.labels.labels(label="0").inc(len(values) - n_fraud)
            m.labels_unmatched.inc(self.feedback.n_unmatched_ - self._unmatched_exported)
            self._unmatched_exported = self.feedback.n_unmatched_
            m.class_prior.set(self.prior.get())
            precision, recall = self.feedback.precision(), self.feedback.recall()
            m.alert_precision.set(math.nan if precision is None else precision)
            m.alert_recall.set(math.nan if recall is None else recall)
            n_alerts, n_frauds = self.feedback.support()
            m.alert_precision_labels.set(n_alerts)
            m.alert_recall_labels.set(n_frauds)

    # -- live control ---------------------------------------------------------------------

    def apply_settings(self, settings: DetectorSettings, *, source: str) -> ThresholdState:
        """Take the threshold, mode and alert budget of freshly read settings (SIGHUP)."""
        threshold = self.bundle.threshold if settings.threshold is None else settings.threshold
        return self.thresholds.set(
            mode=self.mode_for(settings),
            threshold=threshold,
            budget=settings.online.alert_rate.budget,
            source=source,
        )

    def control_failed(self, source: str, error: ConfigError) -> None:
        """Count and log a refused live change."""
        log.error("threshold change refused source=%s error=%s", source, error)
        if self.metrics is not None:
            self.metrics.control_errors.labels(source=source).inc()

    def _changed(self, old: ThresholdState, new: ThresholdState, source: str) -> None:
        self.in_force = self.thresholds.in_force(live_prior=self.prior.get())
        if self.metrics is not None:
            self.metrics.threshold_changes.labels(source=source).inc()
            self._export_threshold()

    # -- reporting ------------------------------------------------------------------------

    def _export_threshold(self) -> None:
        m = self.metrics
        if m is None:
            return
        threshold, mode = self.in_force
        m.threshold.set(threshold)
        for name in MODES:
            m.threshold_mode.labels(mode=name).set(1.0 if name == mode else 0.0)

    def _drifted(self, signals: list[str]) -> None:
        for signal in signals:
            state = self.drift.states[signal] if self.drift is not None else None
            log.warning(
                "drift detected signal=%s detections=%d", signal, state.detections if state else 0
            )
            if self.metrics is not None:
                self.metrics.drift.labels(signal=signal).inc()

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` reports: threshold, class prior, feedback, drift, cold start."""
        state = self.thresholds.state
        threshold, mode = self.in_force
        body: dict[str, Any] = {
            "model_version": self.bundle.model_version,
            "threshold": {
                "in_force": threshold,
                "mode": mode,
                "threshold": state.threshold,
                "budget": state.budget,
            },
            "class_prior": {
                "estimate": self.prior.get(),
                "reference": self.reference_prior,
                "window_rate": self.prior.window_rate,
                "labels": self.prior.n_labels_,
            },
            "feedback": {
                "remembered": len(self.feedback),
                "joined": self.feedback.n_joined_,
                "unmatched": self.feedback.n_unmatched_,
                "precision": self.feedback.precision(),
                "recall": self.feedback.recall(),
            },
            "drift": self.drift.state() if self.drift is not None else None,
        }
        if self.learner is not None:
            body["cold_start"] = {
                "learned": self.learner.n_learned_,
                "warming_up": self.learner.warming_up,
            }
        return body
