"""Alert delivery: ``stream-detector notify`` posts every alert to an HTTP webhook.

Signed bodies (:mod:`.signing`), one POST with its outcome classified (:mod:`.webhook`),
retries with backoff and the verdict for one alert (:mod:`.delivery`), the service that
consumes the alerts topic and commits only what was delivered or dead-lettered
(:mod:`.service`), and a receiver that verifies signatures (:mod:`.receiver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stream_detector.notify.delivery import (
    DEAD_LETTER_REASONS,
    AlertSender,
    DeadLetterReason,
    Outcome,
    alert_event_id,
    backoff,
)
from stream_detector.notify.service import Notifier, NotifyCommand
from stream_detector.notify.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, verify
from stream_detector.notify.webhook import FAILURE_REASONS, Attempt, FailureReason, WebhookClient

if TYPE_CHECKING:
    from stream_detector.notify.receiver import Received, WebhookReceiver


def __getattr__(name: str) -> Any:
    # The receiver is imported on first use: ``python -m stream_detector.notify.receiver``
    # then runs it without importing it twice (runpy's RuntimeWarning).
    if name in ("Received", "WebhookReceiver"):
        from stream_detector.notify import receiver

        return getattr(receiver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEAD_LETTER_REASONS",
    "FAILURE_REASONS",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "AlertSender",
    "Attempt",
    "DeadLetterReason",
    "FailureReason",
    "Notifier",
    "NotifyCommand",
    "Outcome",
    "Received",
    "WebhookClient",
    "WebhookReceiver",
    "alert_event_id",
    "backoff",
    "sign",
    "verify",
]
