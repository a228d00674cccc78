"""From raw messages to decisions, alerts and dead letters: the step ``score`` and ``serve`` share.

A batch of messages is validated at once (:meth:`~stream_detector.events.EventParser.parse_many`),
the valid ones become one feature matrix, the model scores the whole matrix in one call, and
each valid event gets a decision; the flagged
ones also get an alert with ``reasons``. Invalid messages come back as dead letters with the
reason. Because ``score`` and ``serve`` both run this code, they give the same scores and
flags for the same model and events.

A bundle with a feature spec reads raw fields (keys, timestamp, numeric fields) instead, and
its features come from the :class:`~stream_detector.features.FeatureEngine` over the
decider's state store: a batch's labels are added first (:meth:`Decider.add_labels`), then the
batch's events are computed in arrival order and become state. A store that cannot be reached
raises :class:`~stream_detector.errors.StateStoreError` before anything is decided.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.bundle import ModelBundle
from stream_detector.config import ThresholdMode
from stream_detector.errors import ConfigError, EventError
from stream_detector.events import DEFAULT_MAX_EVENT_BYTES, EventBatch, EventParser
from stream_detector.features import BatchStats, FeatureEngine, LabelColumns
from stream_detector.history import key_fields, numeric_fields
from stream_detector.messages import BatchOutcome, DeadLetter, Message
from stream_detector.state import MemoryStore, StateStore

__all__ = ["Decider"]


def check_threshold(value: float) -> float:
    """Validate a threshold.

    >>> check_threshold(1.3)
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: threshold must be in [0, 1]; got 1.3
    """
    if not (0.0 <= value <= 1.0):
        raise ConfigError(f"threshold must be in [0, 1]; got {value}")
    return float(value)


class Decider:
    """Validates, scores and decides a batch of messages against one bundle.

    Parameters
    ----------
    bundle
        The loaded model bundle.
    threshold
        Overrides the bundle's threshold when given.
    reasons_top
        How many features an alert's ``reasons`` lists.
    max_bytes
        Larger messages are dead-lettered before parsing.
    store
        Where the feature engine keeps per-entity state (bundles with a feature spec); a new
        :class:`~stream_detector.state.MemoryStore` when not given.

    Attributes
    ----------
    threshold, threshold_mode
        The threshold in force and how it was set; both are recorded in every decision. The
        service updates them between batches (``stream_detector.online``); ``score`` keeps
        the fixed threshold.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        threshold: float | None = None,
        reasons_top: int = 3,
        max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        store: StateStore | None = None,
    ) -> None:
        self.bundle = bundle
        self.threshold = check_threshold(bundle.threshold if threshold is None else threshold)
        self.threshold_mode: ThresholdMode = "fixed"
        self.reasons_top = reasons_top
        spec = bundle.spec
        self.engine: FeatureEngine | None = None
        self.last_stats: BatchStats | None = None
        """What the last batch's features cost (None without a spec)."""
        if spec is None:
            self.parser = EventParser(bundle.features, max_bytes=max_bytes)
            return
        self.numeric = numeric_fields(spec)
        self.parser = EventParser(
            self.numeric,
            keys=key_fields(spec),
            require_timestamp=spec.timestamp in spec.required_fields,
            timestamp=spec.timestamp,
            max_bytes=max_bytes,
        )
        self.engine = FeatureEngine(spec, store if store is not None else MemoryStore())

    def add_labels(self, labels: LabelColumns) -> None:
        """Make labels state (bundles whose spec counts confirmed frauds; else nothing)."""
        if self.engine is not None and len(labels["event_id"]) and self.engine.spec.has_labels:
            self.engine.add_labels(labels)

    def decide(
        self,
        messages: Sequence[Message],
        *,
        now: float | None = None,
        decisions: bool = True,
    ) -> BatchOutcome:
        """Decide a batch; ``now`` (epoch seconds) is the decision time for event lag.

        With ``decisions=False`` the per-event decision objects are not built (``serve`` with
        the decisions topic off): ``event_ids``, ``scores`` and ``flagged`` still hold every
        valid event, and the alerts are complete.
        """
        outcome = BatchOutcome()
        batch = self.parser.parse_many([m.value for m in messages])
        outcome.dead_letters = [DeadLetter(messages[i], err) for i, err in batch.errors]
        if not batch.positions:
            return outcome
        sources = [messages[i].source for i in batch.positions]
        event_ids = [
            event_id if event_id is not None else f"{s.topic}-{s.partition}-{s.offset}"
            for event_id, s in zip(batch.event_ids, sources, strict=True)
        ]
        if self.engine is None:
            X = batch.X
        else:
            X, keep = self._features(batch, event_ids)
            if not keep.all():
                batch, sources, event_ids = _late(batch, keep, messages, outcome, self.engine)
                if not batch.positions:
                    return outcome
        outcome.event_ids = event_ids
        scores = self.bundle.score_samples(X)
        threshold, threshold_mode = self.threshold, self.threshold_mode
        flagged = scores >= threshold
        model_version = self.bundle.model_version
        outcome.flagged = flagged.tolist()
        score_list = scores.tolist()

        def decision(i: int) -> dict[str, Any]:
            source = sources[i]
            return {
                "event_id": event_ids[i],
                "entity_id": batch.entity_ids[i],
                "timestamp": batch.timestamps_ms[i],
                "score": score_list[i],
                "threshold": threshold,
                "threshold_mode": threshold_mode,
                "flagged": outcome.flagged[i],
                "model_version": model_version,
                "source": {
                    "topic": source.topic,
                    "partition": source.partition,
                    "offset": source.offset,
                },
            }

        if decisions:
            outcome.decisions = [decision(i) for i in range(len(event_ids))]
        idx = np.flatnonzero(flagged)
        if idx.size:
            reasons = self.bundle.reasons(X[idx], top=self.reasons_top)
            for i, why in zip(idx.tolist(), reasons, strict=True):
                made = outcome.decisions[i] if decisions else decision(i)
                outcome.alerts.append({**made, "reasons": why})
            outcome.alert_positions = idx.tolist()
        outcome.scores = scores
        outcome.features = X
        wall_ms = (time.time() if now is None else now) * 1000.0
        outcome.lags_seconds = [
            (wall_ms - ts) / 1000.0 for ts in batch.timestamps_ms if ts is not None
        ]
        return outcome

    def _features(
        self, batch: EventBatch, event_ids: list[str]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The model's feature rows of a parsed batch, and which events were computed (the
        others are too late for their entity's state)."""
        engine = self.engine
        assert engine is not None
        n = len(event_ids)
        keys = list(zip(*batch.keys, strict=True)) if n else []
        events: dict[str, Any] = {
            "event_id": event_ids,
            engine.spec.timestamp: np.fromiter(
                (0 if t is None else t for t in batch.timestamps_ms), dtype=np.int64, count=n
            ),
        }
        for j, key in enumerate(self.parser.keys):
            events[key] = np.asarray(keys[j], dtype=object) if keys else []
        for j, name in enumerate(self.numeric):
            events[name] = batch.X[:, j]
        result = engine.transform_batch(events)
        self.last_stats = result.stats
        keep = ~result.too_late
        index = self.bundle.feature_index
        assert index is not None
        return np.ascontiguousarray(result.values[keep][:, index]), keep


def _late(
    batch: EventBatch,
    keep: npt.NDArray[np.bool_],
    messages: Sequence[Message],
    outcome: BatchOutcome,
    engine: FeatureEngine,
) -> tuple[EventBatch, list[Any], list[str]]:
    """Dead-letter the events the engine refused as too late; the batch of the others."""
    lateness = engine.spec.lateness
    rows = np.flatnonzero(~keep).tolist()
    for j in rows:
        message = messages[batch.positions[j]]
        outcome.dead_letters.append(
            DeadLetter(
                message,
                EventError(
                    "too_late",
                    f"event time {batch.timestamps_ms[j]} is more than {lateness} behind its "
                    "entity's latest event",
                ),
            )
        )
    pick = np.flatnonzero(keep).tolist()
    kept = EventBatch(
        positions=[batch.positions[j] for j in pick],
        X=batch.X[pick],
        event_ids=[batch.event_ids[j] for j in pick],
        entity_ids=[batch.entity_ids[j] for j in pick],
        timestamps_ms=[batch.timestamps_ms[j] for j in pick],
        keys=[batch.keys[j] for j in pick],
    )
    sources = [messages[i].source for i in kept.positions]
    event_ids = [
        event_id if event_id is not None else f"{s.topic}-{s.partition}-{s.offset}"
        for event_id, s in zip(kept.event_ids, sources, strict=True)
    ]
    return kept, sources, event_ids
