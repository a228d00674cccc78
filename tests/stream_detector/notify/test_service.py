"""``notify`` end to end on the real broker and a real local receiver: nothing lost.

Every test produces alerts to a fresh alerts topic and checks that each one reached the
receiver (signed, with its event_id as the idempotency key) or the notify dead-letter topic
with the reason, and that the group's committed offsets cover them all.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from stream_detector.config import DetectorSettings
from stream_detector.devbroker import EmbeddedBroker, free_port
from stream_detector.notify import Notifier, WebhookReceiver, verify

pytestmark = pytest.mark.integration

SECRET = "0123456789abcdef-secret"


def alert(i: int) -> bytes:
    return orjson.dumps(
        {"event_id": f"tx-{i}", "score": 0.97, "threshold": 0.5, "flagged": True, "reasons": []}
    )


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> dict[str, str]:
    return {"alerts": topic_factory(2, prefix="alerts"), "dlq": topic_factory(1, prefix="ndlq")}


def produce(producer_factory: Callable[..., Any], topic: str, ids: range) -> None:
    producer = producer_factory()
    for i in ids:
        producer.send(topic, key=f"tx-{i}".encode(), value=alert(i))
    producer.flush(timeout=30)


def settings_for(
    broker: EmbeddedBroker, topics: Mapping[str, str], url: str, **notify: Any
) -> DetectorSettings:
    return DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "topics": {"alerts": topics["alerts"]},
            "consumer": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
            "notify": {
                "url": url,
                "secret": SECRET,
                "group_id": f"notify-{uuid.uuid4().hex[:8]}",
                "dead_letter": topics["dlq"],
                "batch_size": 20,
                "backoff_initial_s": 0.05,
                "backoff_max_s": 0.2,
                "read_timeout_s": 0.5,
                "metrics": {"port": 0},
                **notify,
            },
        }
    )


@pytest.fixture
def run_notifier() -> Iterator[Callable[[DetectorSettings], Notifier]]:
    running: list[tuple[Notifier, threading.Thread]] = []

    def start(settings: DetectorSettings) -> Notifier:
        notifier = Notifier(settings)
        thread = threading.Thread(target=notifier.run, daemon=True)
        thread.start()
        running.append((notifier, thread))
        return notifier

    yield start
    for notifier, thread in running:
        notifier.stop()
        thread.join(30)
        assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def delivered_keys(receiver: WebhookReceiver) -> Counter[str]:
    return Counter(str(r.idempotency_key) for r in receiver.received() if r.status == 200)


def committed(broker: EmbeddedBroker, group: str, topic: str, partitions: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))
    finally:
        consumer.close()


def test_alerts_arrive_signed_with_their_event_id_and_are_committed(
    broker: EmbeddedBroker,
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    run_notifier: Callable[[DetectorSettings], Notifier],
) -> None:
    receiver = WebhookReceiver(secret=SECRET).start()
    settings = settings_for(broker, topics, receiver.url)
    produce(producer_factory, topics["alerts"], range(60))
    notifier = run_notifier(settings)
    try:
        assert wait_for(lambda: len(delivered_keys(receiver)) == 60)
    finally:
        receiver.stop()
    for request in receiver.received():
        assert request.verified is True
        assert verify(request.body, request.headers["x-stream-detector-signature"], SECRET)
        assert request.idempotency_key == orjson.loads(request.body)["event_id"]
    assert set(delivered_keys(receiver)) == {f"tx-{i}" for i in range(60)}
    group = settings.notify.group_id
    assert wait_for(lambda: committed(broker, group, topics["alerts"], 2) == 60, 20)
    registry = notifier.registry
    assert registry.get_sample_value("stream_detector_notify_delivered_total") == 60
    assert registry.get_sample_value("stream_detector_notify_delivery_seconds_count") == 60
    assert notifier.is_ready()


def test_a_status_line_every_interval_and_once_at_stop(
    broker: EmbeddedBroker,
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    run_notifier: Callable[[DetectorSettings], Notifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stream_detector.notify.service")
    receiver = WebhookReceiver(secret=SECRET).start()
    settings = settings_for(broker, topics, receiver.url, status_interval_s=0.2)
    notifier = run_notifier(settings)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("status ")]

    try:
        assert wait_for(lambda: len(lines()) >= 2)  # nothing to deliver yet: still a line
        assert lines()[0].startswith("status delivered=0 retries=0 failures=0 dead_letters=0 ")
        produce(producer_factory, topics["alerts"], range(30))
        assert wait_for(lambda: any(line.startswith("status delivered=30 ") for line in lines()))
        assert " lag=0 " in [line for line in lines() if "delivered=30 " in line][-1]
    finally:
        receiver.stop()
    notifier.stop()

    def after_stopping() -> list[str]:
        messages = [r.getMessage() for r in caplog.records]
        stops = [i for i, m in enumerate(messages) if m.startswith("stopping")]
        return messages[stops[0] + 1 :] if stops else []

    assert wait_for(lambda: any(m.startswith("status delivered=30 ") for m in after_stopping()))


def test_a_receiver_down_then_back_loses_nothing(
    broker: EmbeddedBroker,
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_notifier: Callable[[DetectorSettings], Notifier],
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/alerts"
    notifier = run_notifier(settings_for(broker, topics, url, max_attempts=100))
    produce(producer_factory, topics["alerts"], range(40))
    registry = notifier.registry
    # Nobody listens: attempts fail and are retried.
    assert wait_for(
        lambda: (registry.get_sample_value("stream_detector_notify_retries_total") or 0) >= 10
    )
    receiver = WebhookReceiver(secret=SECRET, port=port).start()
    try:
        assert wait_for(lambda: len(delivered_keys(receiver)) == 40)
    finally:
        receiver.stop()
    assert set(delivered_keys(receiver)) == {f"tx-{i}" for i in range(40)}
    failures = registry.get_sample_value(
        "stream_detector_notify_failures_total", {"reason": "connection"}
    )
    assert failures is not None
    assert failures >= 10
    assert consume_all(topics["dlq"], 1, timeout=2) == []


def test_alerts_the_receiver_never_takes_are_dead_lettered_with_the_reason(
    broker: EmbeddedBroker,
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_notifier: Callable[[DetectorSettings], Notifier],
) -> None:
    """tx-0..4 always answer 500, tx-5..9 always time out, tx-10..14 are refused (400)."""

    def respond(path: str, headers: Mapping[str, str], body: bytes) -> int:
        n = int(orjson.loads(body)["event_id"].split("-")[1])
        if n < 5:
            return 500
        if n < 10:
            time.sleep(1.0)  # past the client's read timeout
            return 503
        if n < 15:
            return 400
        return 200

    receiver = WebhookReceiver(secret=SECRET, respond=respond).start()
    settings = settings_for(broker, topics, receiver.url, max_attempts=3)
    produce(producer_factory, topics["alerts"], range(30))
    producer_factory().send(topics["alerts"], key=b"junk", value=b"not an alert").get(10)
    notifier = run_notifier(settings)
    try:
        dead = consume_all(topics["dlq"], 16, timeout=60)
        assert wait_for(lambda: len(delivered_keys(receiver)) >= 15)
    finally:
        receiver.stop()
    reasons = {(r.key.decode(), dict(r.headers)["error.type"].decode()) for r in dead}
    assert reasons == {
        *((f"tx-{i}", "exhausted") for i in range(10)),
        *((f"tx-{i}", "rejected") for i in range(10, 15)),
        ("junk", "invalid_alert"),
    }
    for record in dead:
        headers = dict(record.headers)
        assert headers["source.topic"].decode() == topics["alerts"]
        assert record.value == (
            alert(int(record.key[3:])) if record.key != b"junk" else b"not an alert"
        )
    assert set(delivered_keys(receiver)) == {f"tx-{i}" for i in range(15, 30)}
    registry = notifier.registry
    sample = registry.get_sample_value
    assert sample("stream_detector_notify_dead_letters_total", {"reason": "exhausted"}) == 10
    assert sample("stream_detector_notify_dead_letters_total", {"reason": "rejected"}) == 5
    assert sample("stream_detector_notify_dead_letters_total", {"reason": "invalid_alert"}) == 1
    assert sample("stream_detector_notify_failures_total", {"reason": "timeout"}) == 15
    assert sample("stream_detector_notify_failures_total", {"reason": "server_error"}) == 15
    group = settings.notify.group_id
    assert wait_for(lambda: committed(broker, group, topics["alerts"], 2) == 31, 20)


def test_kill_9_mid_stream_loses_nothing_and_repeats_at_most_the_batch_in_flight(
    broker: EmbeddedBroker,
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    batch_size, n_alerts = 25, 600

    def slow(path: str, headers: Mapping[str, str], body: bytes) -> int:
        time.sleep(0.005)
        return 200

    receiver = WebhookReceiver(secret=SECRET, respond=slow).start()
    produce(producer_factory, topics["alerts"], range(n_alerts))
    env = {
        **os.environ,
        "STREAM_DETECTOR_TOPICS__ALERTS": topics["alerts"],
        "STREAM_DETECTOR_NOTIFY__SECRET": SECRET,
        "STREAM_DETECTOR_NOTIFY__DEAD_LETTER": topics["dlq"],
        "STREAM_DETECTOR_NOTIFY__BATCH_SIZE": str(batch_size),
        "STREAM_DETECTOR_CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAM_DETECTOR_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
    }
    argv = [
        sys.executable,
        "-m",
        "stream_detector",
        "notify",
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--webhook-url",
        receiver.url,
        "--group-id",
        f"notify-{uuid.uuid4().hex[:8]}",
        "--metrics-port",
        "0",
    ]
    log = (tmp_path / "notify.log").open("ab")
    first = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    second: subprocess.Popen[bytes] | None = None
    try:
        assert wait_for(lambda: len(receiver.received()) >= n_alerts // 3)
        first.kill()  # SIGKILL: no commit, no close
        first.wait(30)
        before = len(receiver.received())
        assert before < n_alerts, "the stream ended before the kill"
        second = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        assert wait_for(lambda: len(delivered_keys(receiver)) == n_alerts, 90), (
            tmp_path / "notify.log"
        ).read_text()
        second.terminate()
        assert second.wait(30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(30)
        log.close()
        receiver.stop()
    keys = delivered_keys(receiver)
    assert set(keys) == {f"tx-{i}" for i in range(n_alerts)}  # 0 lost
    duplicates = sum(keys.values()) - n_alerts
    print(f"kill -9 after {before} requests: lost 0, duplicates {duplicates} (batch {batch_size})")
    assert 0 <= duplicates <= batch_size  # at most the batch in flight
    assert consume_all(topics["dlq"], 1, timeout=2) == []
