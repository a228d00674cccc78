"""Delivering one alert: attempts, exponential backoff with full jitter, and the verdict.

An alert is attempted until the webhook answers 2xx (``delivered``), refuses it for good
(dead-lettered as ``rejected``) or ``max_attempts`` attempts failed (dead-lettered as
``exhausted``). A stop request ends the pauses between attempts at once: the alert is then
``aborted``, its offset is not committed, and it is delivered again after the restart.

>>> import random
>>> [round(backoff(n, initial=0.5, maximum=4.0, rng=random.Random(0)), 3) for n in (1, 2, 5)]
[0.422, 0.844, 3.378]
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from stream_detector.metrics import NotifyMetrics
from stream_detector.notify.webhook import Attempt, WebhookClient

__all__ = [
    "DEAD_LETTER_REASONS",
    "AlertSender",
    "DeadLetterReason",
    "Outcome",
    "alert_event_id",
    "backoff",
]

log = logging.getLogger(__name__)

DeadLetterReason = Literal["exhausted", "rejected", "invalid_alert"]
DEAD_LETTER_REASONS: Final[tuple[DeadLetterReason, ...]] = (
    "exhausted",
    "rejected",
    "invalid_alert",
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one alert."""

    status: Literal["delivered", "dead", "aborted"]
    attempts: int
    reason: DeadLetterReason | None = None
    detail: str = ""


def backoff(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Pause before retry ``attempt`` (1 = the first retry): uniform in [0, cap], where the cap
    doubles from ``initial`` up to ``maximum`` ("full jitter": replicas retrying after the same
    outage spread out instead of hitting the receiver together)."""
    cap = min(maximum, initial * 2 ** min(attempt - 1, 30))
    return rng.uniform(0.0, cap)


def alert_event_id(value: bytes | None) -> str | None:
    """The ``event_id`` of an alert's JSON body; None when it is not an alert.

    >>> alert_event_id(b'{"event_id": "tx-7", "score": 0.9}'), alert_event_id(b"[1]")
    ('tx-7', None)
    """
    if not value:
        return None
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    event_id = body.get("event_id") if isinstance(body, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


class AlertSender:
    """Sends alerts through a :class:`WebhookClient` until delivered, refused or exhausted.

    Parameters
    ----------
    client
        The webhook client.
    metrics
        Counts delivered alerts, retries and failed attempts; times deliveries.
    stop
        Set to abandon the pauses between attempts (shutdown).
    max_attempts, backoff_initial_s, backoff_max_s
        The retry policy (see :func:`backoff`).
    random_state
        Seed of the jitter.
    """

    def __init__(
        self,
        client: WebhookClient,
        *,
        metrics: NotifyMetrics,
        stop: threading.Event,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        random_state: int | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.stop = stop
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._rng = random.Random(random_state)
        self._rng_lock = threading.Lock()

    def send(self, body: bytes, event_id: str, *, polled_at: float) -> Outcome:
        """Deliver one alert; ``polled_at`` (``time.monotonic()``) starts the latency clock."""
        m = self.metrics
        last: Attempt | None = None
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                with self._rng_lock:
                    pause = backoff(
                        attempt - 1,
                        initial=self.backoff_initial_s,
                        maximum=self.backoff_max_s,
                        rng=self._rng,
                    )
                if self.stop.wait(pause):
                    return Outcome("aborted", attempt - 1, detail="stopping")
                m.retries.inc()
            last = self.client.post(body, event_id)
            if last.delivered:
                m.delivered.inc()
                m.delivery_seconds.observe(time.monotonic() - polled_at)
                return Outcome("delivered", attempt)
            assert last.reason is not None
            m.failures.labels(reason=last.reason).inc()
            if not last.retryable:
                return Outcome("dead", attempt, "rejected", last.detail)
            log.warning(
                "webhook attempt failed event_id=%s attempt=%d/%d reason=%s status=%s",
                event_id,
                attempt,
                self.max_attempts,
                last.reason,
                last.status,
            )
        assert last is not None
        detail = f"{self.max_attempts} attempts failed; last: {last.reason} {last.detail}"
        return Outcome("dead", self.max_attempts, "exhausted", detail.strip())
