"""From raw messages to decisions, alerts and dead letters: the step ``score`` and ``serve`` share.

A batch of messages is validated at once (:meth:`~stream_detector.events.EventParser.parse_many`),
the valid ones become one feature matrix, the model scores the whole matrix in one call, and
each valid event gets a decision; the flagged
ones also get an alert with ``reasons``. Invalid messages come back as dead letters with the
reason. Because ``score`` and ``serve`` both run this code, they give the same scores and
flags for the same model and events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from stream_detector.bundle import ModelBundle
from stream_detector.config import ThresholdMode
from stream_detector.errors import ConfigError
from stream_detector.events import DEFAULT_MAX_EVENT_BYTES, EventParser
from stream_detector.messages import BatchOutcome, DeadLetter, Message

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
    ) -> None:
        self.bundle = bundle
        self.threshold = check_threshold(bundle.threshold if threshold is None else threshold)
        self.threshold_mode: ThresholdMode = "fixed"
        self.reasons_top = reasons_top
        self.parser = EventParser(bundle.features, max_bytes=max_bytes)

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
        X = batch.X
        scores = self.bundle.score_samples(X)
        threshold, threshold_mode = self.threshold, self.threshold_mode
        flagged = scores >= threshold
        model_version = self.bundle.model_version
        sources = [messages[i].source for i in batch.positions]
        event_ids = outcome.event_ids = [
            event_id if event_id is not None else f"{s.topic}-{s.partition}-{s.offset}"
            for event_id, s in zip(batch.event_ids, sources, strict=True)
        ]
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
