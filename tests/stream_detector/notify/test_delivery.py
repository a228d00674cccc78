"""Retries, backoff and the verdict for one alert, against a real local receiver."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from stream_detector.metrics import NotifyMetrics
from stream_detector.notify.delivery import (
    DEAD_LETTER_REASONS,
    AlertSender,
    Outcome,
    alert_event_id,
    backoff,
)
from stream_detector.notify.receiver import WebhookReceiver
from stream_detector.notify.webhook import FAILURE_REASONS, WebhookClient

SECRET = "0123456789abcdef-secret"
BODY = b'{"event_id": "tx-1", "score": 0.9}'


@given(
    st.integers(min_value=1, max_value=200),
    st.floats(min_value=0.001, max_value=10.0),
    st.floats(min_value=0.001, max_value=100.0),
    st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_its_exponential_cap(
    attempt: int, initial: float, maximum: float, seed: int
) -> None:
    pause = backoff(attempt, initial=initial, maximum=maximum, rng=random.Random(seed))
    assert 0.0 <= pause <= min(maximum, initial * 2 ** (attempt - 1))


def test_backoff_is_jittered() -> None:
    rng = random.Random(7)
    pauses = [backoff(4, initial=1.0, maximum=60.0, rng=rng) for _ in range(200)]
    assert len(set(pauses)) == 200
    assert 3.0 < sum(pauses) / len(pauses) < 5.0  # uniform on [0, 8]: mean 4


def test_alert_event_id_reads_only_json_objects_with_a_string_id() -> None:
    assert alert_event_id(b'{"event_id": "a"}') == "a"
    for value in (None, b"", b"{", b"[]", b'{"event_id": 3}', b'{"event_id": ""}', b"\xff"):
        assert alert_event_id(value) is None, value


def sender_for(
    receiver: WebhookReceiver, **kwargs: object
) -> tuple[AlertSender, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = NotifyMetrics(
        registry, failure_reasons=FAILURE_REASONS, dead_letter_reasons=DEAD_LETTER_REASONS
    )
    client = WebhookClient(url=receiver.url, secret=SECRET, read_timeout_s=0.3)
    settings: dict[str, object] = {
        "max_attempts": 4,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "random_state": 0,
        **kwargs,
    }
    stop = settings.pop("stop", threading.Event())
    assert isinstance(stop, threading.Event)
    return AlertSender(client, metrics=metrics, stop=stop, **settings), registry  # type: ignore[arg-type]


def send_once(receiver: WebhookReceiver, **kwargs: object) -> tuple[Outcome, CollectorRegistry]:
    """Send BODY once through a fresh sender, then close its connections."""
    sender, registry = sender_for(receiver, **kwargs)
    try:
        return sender.send(BODY, "tx-1", polled_at=0.0), registry
    finally:
        sender.client.close()


def failing_then_ok(failures: int, status: int = 500) -> WebhookReceiver:
    calls = itertools.count()

    def respond(path: str, headers: Mapping[str, str], body: bytes) -> int:
        return status if next(calls) < failures else 200

    return WebhookReceiver(secret=SECRET, respond=respond).start()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, name
    return found


def test_an_alert_is_delivered_after_failed_attempts() -> None:
    receiver = failing_then_ok(2)
    try:
        outcome, registry = send_once(receiver)
    finally:
        receiver.stop()
    assert (outcome.status, outcome.attempts, outcome.reason) == ("delivered", 3, None)
    assert [r.status for r in receiver.received()] == [500, 500, 200]
    assert {r.idempotency_key for r in receiver.received()} == {"tx-1"}
    assert value(registry, "stream_detector_notify_delivered_total") == 1
    assert value(registry, "stream_detector_notify_retries_total") == 2
    assert value(registry, "stream_detector_notify_failures_total", reason="server_error") == 2
    assert value(registry, "stream_detector_notify_delivery_seconds_count") == 1


def test_an_alert_failing_every_attempt_is_exhausted() -> None:
    receiver = failing_then_ok(100, status=503)
    try:
        outcome, registry = send_once(receiver)
    finally:
        receiver.stop()
    assert (outcome.status, outcome.attempts, outcome.reason) == ("dead", 4, "exhausted")
    assert "server_error" in outcome.detail
    assert "503" in outcome.detail
    assert len(receiver.received()) == 4
    assert value(registry, "stream_detector_notify_delivered_total") == 0
    assert value(registry, "stream_detector_notify_failures_total", reason="server_error") == 4


def test_an_alert_the_receiver_refuses_is_not_retried() -> None:
    receiver = failing_then_ok(100, status=422)
    try:
        outcome, registry = send_once(receiver)
    finally:
        receiver.stop()
    assert (outcome.status, outcome.attempts, outcome.reason) == ("dead", 1, "rejected")
    assert value(registry, "stream_detector_notify_retries_total") == 0
    assert value(registry, "stream_detector_notify_failures_total", reason="rejected") == 1


def test_a_stop_during_the_backoff_aborts_the_alert() -> None:
    receiver = failing_then_ok(100)
    stop = threading.Event()
    try:
        threading.Timer(0.3, stop.set).start()
        outcome, registry = send_once(
            receiver, stop=stop, backoff_initial_s=30.0, backoff_max_s=30.0, random_state=1
        )
    finally:
        receiver.stop()
    assert (outcome.status, outcome.attempts) == ("aborted", 1)
    assert value(registry, "stream_detector_notify_delivered_total") == 0


def test_every_failure_and_dead_letter_reason_is_exported_at_zero() -> None:
    registry = CollectorRegistry()
    NotifyMetrics(
        registry, failure_reasons=FAILURE_REASONS, dead_letter_reasons=DEAD_LETTER_REASONS
    )
    for reason in FAILURE_REASONS:
        assert value(registry, "stream_detector_notify_failures_total", reason=reason) == 0
    for reason in DEAD_LETTER_REASONS:
        assert value(registry, "stream_detector_notify_dead_letters_total", reason=reason) == 0


@pytest.mark.parametrize("attempts", [1, 3])
def test_max_attempts_is_the_number_of_requests(attempts: int) -> None:
    receiver = failing_then_ok(100)
    try:
        outcome, _ = send_once(receiver, max_attempts=attempts)
    finally:
        receiver.stop()
    assert outcome.attempts == attempts == len(receiver.received())
