"""One POST against a real local receiver: headers, outcomes, timeouts, refused connections."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import orjson
import pytest

from stream_detector.devbroker import free_port
from stream_detector.errors import ConfigError
from stream_detector.notify.receiver import WebhookReceiver
from stream_detector.notify.signing import verify
from stream_detector.notify.webhook import WebhookClient

SECRET = "0123456789abcdef-secret"
BODY = orjson.dumps({"event_id": "tx-1", "score": 0.93, "flagged": True})


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver(secret=SECRET).start()
    yield running
    running.stop()


def client_for(url: str, **kwargs: object) -> WebhookClient:
    return WebhookClient(url=url, secret=SECRET, **kwargs)  # type: ignore[arg-type]


def test_the_body_is_signed_and_carries_the_idempotency_key(receiver: WebhookReceiver) -> None:
    client = client_for(receiver.url, auth_token="case-api-token")
    attempt = client.post(BODY, "tx-1")
    client.close()
    assert attempt.delivered
    assert attempt.status == 200
    (request,) = receiver.received()
    assert request.body == BODY
    assert request.verified is True
    assert verify(request.body, request.headers["x-stream-detector-signature"], SECRET)
    assert request.idempotency_key == "tx-1"
    assert request.headers["authorization"] == "Bearer case-api-token"
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/alerts"


def test_a_wrong_secret_is_refused_by_the_receiver(receiver: WebhookReceiver) -> None:
    client = WebhookClient(url=receiver.url, secret="another secret, 16+ chars")
    attempt = client.post(BODY, "tx-1")
    client.close()
    assert (attempt.reason, attempt.status, attempt.retryable) == ("rejected", 401, False)
    assert [r.verified for r in receiver.received()] == [False]


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (500, "server_error", True),
        (503, "server_error", True),
        (429, "throttled", True),
        (408, "throttled", True),
        (400, "rejected", False),
        (404, "rejected", False),
        (302, "rejected", False),
    ],
)
def test_statuses_are_classified(status: int, reason: str, retryable: bool) -> None:
    receiver = WebhookReceiver(secret=SECRET, respond=lambda *_: status).start()
    try:
        client = client_for(receiver.url)
        attempt = client.post(BODY, "tx-1")
        client.close()
    finally:
        receiver.stop()
    assert (attempt.reason, attempt.status, attempt.retryable) == (reason, status, retryable)
    assert str(status) in attempt.detail


def test_a_slow_receiver_times_out() -> None:
    def slow(path: str, headers: Mapping[str, str], body: bytes) -> int:
        time.sleep(1.0)
        return 200

    receiver = WebhookReceiver(secret=SECRET, respond=slow).start()
    try:
        client = client_for(receiver.url, read_timeout_s=0.2)
        attempt = client.post(BODY, "tx-1")
        client.close()
    finally:
        receiver.stop()
    assert (attempt.reason, attempt.status, attempt.retryable) == ("timeout", None, True)


def test_nobody_listening_is_a_connection_failure() -> None:
    client = client_for(f"http://127.0.0.1:{free_port()}/alerts")
    attempt = client.post(BODY, "tx-1")
    assert (attempt.reason, attempt.retryable) == ("connection", True)
    assert "Refused" in attempt.detail


def test_a_kept_alive_connection_closed_by_a_restart_is_reopened() -> None:
    port = free_port()
    first = WebhookReceiver(secret=SECRET, port=port).start()
    client = client_for(first.url)
    assert client.post(BODY, "tx-1").delivered
    first.stop()
    second = WebhookReceiver(secret=SECRET, port=port).start()
    try:
        assert client.post(BODY, "tx-2").delivered  # the stale connection is not a failure
    finally:
        client.close()
        second.stop()
    assert [r.idempotency_key for r in second.received()] == ["tx-2"]


@pytest.mark.parametrize("url", ["ftp://example.org/x", "example.org/alerts", "http://"])
def test_urls_other_than_http_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"notify\.url must be an http"):
        client_for(url)
