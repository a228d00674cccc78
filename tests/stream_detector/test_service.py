"""The service end to end on the real broker: decisions, alerts, dead letters, metrics, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream_detector.bundle import load_bundle
from stream_detector.config import DetectorSettings
from stream_detector.decide import Decider
from stream_detector.devbroker import free_port
from stream_detector.messages import Message, Source
from stream_detector.service import Detector

from .conftest import training_data

pytestmark = pytest.mark.integration

BAD_MESSAGES: dict[str, bytes] = {
    "not_json": b"{not json",
    "not_object": b"[1, 2]",
    "missing_feature": b'{"amount": 1, "hour_of_day": 2}',
    "non_numeric": b'{"amount": "1", "hour_of_day": 2, "distance": 3}',
    "non_finite": b'{"amount": NaN, "hour_of_day": 2, "distance": 3}',
    "not_utf8": b"\xff\xfe\xfd",
    "too_large": b'{"amount": 1, "hour_of_day": 2, "distance": 3, "pad": "' + b"x" * 5000 + b'"}',
    "empty": b"",
}


def event_bytes(X: np.ndarray) -> list[tuple[str, bytes]]:
    return [
        (
            f"tx-{i}",
            orjson.dumps(
                {
                    "event_id": f"tx-{i}",
                    "entity_id": f"c-{i % 17}",
                    "timestamp": int(time.time() * 1000),
                    "amount": a,
                    "hour_of_day": h,
                    "distance": d,
                }
            ),
        )
        for i, (a, h, d) in enumerate(X.tolist())
    ]


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> dict[str, str]:
    return {
        "events": topic_factory(3, prefix="events"),
        "labels": topic_factory(1, prefix="labels"),
        "decisions": topic_factory(2, prefix="decisions"),
        "alerts": topic_factory(2, prefix="alerts"),
        "dead_letter": topic_factory(1, prefix="dlq"),
    }


def settings_for(broker: Any, topics: dict[str, str], **extra: Any) -> DetectorSettings:
    return DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "connect_timeout_s": 10},
            "topics": topics,
            "consumer": {
                "group_id": f"g-{uuid.uuid4().hex[:8]}",
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "batch_size": 250,
            },
            "metrics": {"port": 0},
            "max_message_bytes": 4096,
            **extra,
        }
    )


class Running:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.detector.run()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.detector.endpoints.port}{path}", timeout=5
            ) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


@pytest.fixture
def run_detector() -> Iterator[Callable[[Detector], Running]]:
    started: list[Running] = []

    def start(detector: Detector) -> Running:
        running = Running(detector)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.detector.stop()
        running.thread.join(timeout=30)


def test_every_message_ends_as_a_decision_alert_or_dead_letter(
    broker: Any,
    topics: dict[str, str],
    bundle_dir: Path,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Detector], Running],
) -> None:
    X, _ = training_data(3000, seed=21)
    events = event_bytes(X)
    producer = producer_factory(linger_ms=5)
    bad_sent: list[tuple[bytes, bytes, str]] = []
    for i, (event_id, value) in enumerate(events):
        producer.send(topics["events"], key=event_id.encode(), value=value)
        if i % 100 == 50:
            reason = list(BAD_MESSAGES)[len(bad_sent) % len(BAD_MESSAGES)]
            key = f"bad-{len(bad_sent)}".encode()
            producer.send(
                topics["events"], key=key, value=BAD_MESSAGES[reason], headers=[("trace", b"t1")]
            )
            bad_sent.append((key, BAD_MESSAGES[reason], reason))
    producer.flush()

    registry = CollectorRegistry()
    settings = settings_for(broker, topics)
    bundle = load_bundle(bundle_dir)
    detector = Detector(settings, bundle, registry=registry)
    running = run_detector(detector)

    decisions = consume_all(topics["decisions"], len(events), timeout=90, settle=1.0)
    dead = consume_all(topics["dead_letter"], len(bad_sent), timeout=30)
    expected_alerts = Decider(bundle).decide(
        [Message(None, v, Source(topics["events"], 0, 0)) for _, v in events]
    )
    alerts = consume_all(topics["alerts"], len(expected_alerts.alerts), timeout=30, settle=0.5)

    # Every valid event: exactly one decision, keyed by event_id, equal to what `score` decides.
    by_id = Counter(r.key.decode() for r in decisions)
    assert set(by_id) == {e for e, _ in events}
    assert max(by_id.values()) == 1
    expected = {d["event_id"]: d for d in expected_alerts.decisions}
    for record in decisions:
        d = orjson.loads(record.value)
        assert d["event_id"] == record.key.decode()
        assert abs(d["score"] - expected[d["event_id"]]["score"]) <= 1e-6
        assert d["flagged"] == expected[d["event_id"]]["flagged"]
        assert d["source"]["topic"] == topics["events"]
        assert d["model_version"] == bundle.model_version
        assert d["threshold"] == 0.5

    # Every flagged event: one alert with reasons.
    assert sorted(r.key.decode() for r in alerts) == sorted(
        a["event_id"] for a in expected_alerts.alerts
    )
    assert all(orjson.loads(r.value)["reasons"] for r in alerts)

    # Every bad message: a dead letter with its original key and bytes and the reason.
    assert sorted((r.key, r.value) for r in dead) == sorted((k, v) for k, v, _ in bad_sent)
    reasons = {r.key: dict(r.headers) for r in dead}
    for key, _, reason in bad_sent:
        h = reasons[key]
        assert h["error.type"].decode() == reason
        assert h["source.topic"].decode() == topics["events"]
        assert int(h["source.offset"]) >= 0
        assert int(h["source.partition"]) in (0, 1, 2)
        assert h["error.message"]
        assert h["trace"] == b"t1"

    # Metrics match what was published.
    deadline = time.monotonic() + 10
    while registry.get_sample_value("stream_detector_events_total") != len(events) + len(bad_sent):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert registry.get_sample_value("stream_detector_alerts_total") == len(alerts)
    for reason, n in Counter(r for _, _, r in bad_sent).items():
        assert (
            registry.get_sample_value("stream_detector_events_invalid_total", {"reason": reason})
            == n
        )
    assert registry.get_sample_value("stream_detector_score_count") == len(events)
    assert registry.get_sample_value("stream_detector_threshold") == 0.5
    assert (
        registry.get_sample_value(
            "stream_detector_model_info",
            {"model_version": bundle.model_version, "technique": "none", "scorer": "classifier"},
        )
        == 1.0
    )
    assert registry.get_sample_value("stream_detector_event_lag_seconds_count") == len(events)

    status, body = running.get("/metrics")
    assert status == 200
    assert b"stream_detector_events_total" in body
    assert running.get("/healthz")[0] == 200
    assert running.get("/readyz")[0] == 200

    detector.stop()
    running.thread.join(timeout=30)
    assert running.code == 0
    assert not detector.is_ready()


def test_threshold_flag_is_in_force_and_decisions_can_be_turned_off(
    broker: Any,
    topics: dict[str, str],
    bundle_dir: Path,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Detector], Running],
) -> None:
    X, _ = training_data(200, seed=3)
    producer = producer_factory()
    for event_id, value in event_bytes(X):
        producer.send(topics["events"], key=event_id.encode(), value=value)
    producer.flush()
    registry = CollectorRegistry()
    settings = settings_for(broker, topics, threshold=0.9, decisions_enabled=False)
    bundle = load_bundle(bundle_dir)
    run_detector(Detector(settings, bundle, registry=registry))
    n_flagged = int((bundle.score(X) >= 0.9).sum())
    alerts = consume_all(topics["alerts"], n_flagged, timeout=60, settle=2.0)
    assert len(alerts) == n_flagged > 0
    assert {orjson.loads(r.value)["threshold"] for r in alerts} == {0.9}
    assert registry.get_sample_value("stream_detector_threshold") == 0.9
    assert consume_all(topics["decisions"], 1, timeout=2) == []


def serve_cmd(broker: Any, topics: dict[str, str], bundle_dir: Path, group: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stream_detector",
        "serve",
        "--model",
        str(bundle_dir),
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--metrics-port",
        str(free_port()),
        "--group-id",
        group,
    ]


def serve_env(topics: dict[str, str], **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "STREAM_DETECTOR_CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAM_DETECTOR_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
        "STREAM_DETECTOR_CONSUMER__BATCH_SIZE": "100",
        **extra,
    }
    for key, name in topics.items():
        env[f"STREAM_DETECTOR_TOPICS__{key.upper()}"] = name
    return env


def test_sigterm_mid_stream_loses_and_repeats_nothing(
    broker: Any,
    topics: dict[str, str],
    bundle_dir: Path,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
) -> None:
    X, _ = training_data(6000, seed=8)
    events = event_bytes(X)
    producer = producer_factory(linger_ms=5)
    for event_id, value in events:
        producer.send(topics["events"], key=event_id.encode(), value=value)
    producer.flush()
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = serve_env(topics)
    first = subprocess.Popen(
        serve_cmd(broker, topics, bundle_dir, group),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        partial = consume_all(topics["decisions"], 500, timeout=60)
        assert len(partial) >= 500
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out.decode()[-2000:]
    assert b"signal=SIGTERM" in out
    before = consume_all(topics["decisions"], len(events), timeout=3)
    assert len(before) < len(events), "stop came too late to test anything"

    second = subprocess.Popen(
        serve_cmd(broker, topics, bundle_dir, group),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        decisions = consume_all(topics["decisions"], len(events), timeout=90, settle=2.0)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    ids = Counter(r.key.decode() for r in decisions)
    assert set(ids) == {e for e, _ in events}, "events lost across the restart"
    assert max(ids.values()) == 1, "a clean stop must not repeat decisions"
    assert second.returncode == 0


def test_unreachable_broker_is_a_one_line_error(bundle_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "STREAM_DETECTOR_KAFKA__CONNECT_TIMEOUT_S": "2"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_detector",
            "serve",
            "--model",
            str(bundle_dir),
            "--bootstrap-servers",
            f"127.0.0.1:{port}",
            "--metrics-port",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("stream-detector: error: cannot reach Kafka at 127.0.0.1:")
    assert str(port) in last
    assert "Traceback" not in proc.stderr


def test_serve_refuses_a_tampered_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "b"
    shutil.copytree(bundle_dir, bad)
    (bad / "model.json").write_text("{}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_detector",
            "serve",
            "--model",
            str(bad),
            "--bootstrap-servers",
            "127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "stream-detector: error: bundle file model.json does not match its sha256 in the manifest"
    ]


def test_tune_gc_freezes_start_up_objects_and_raises_the_thresholds(
    python_output: Callable[[str], str],
) -> None:
    # In a child: freezing this test process would keep its garbage for the whole session.
    code = (
        "import gc; from stream_detector.service import GC_THRESHOLDS, tune_gc; "
        "before = gc.get_freeze_count(); tune_gc(); "
        "print(before, gc.get_freeze_count() > 10_000, gc.get_threshold() == GC_THRESHOLDS)"
    )
    assert python_output(code).split() == ["0", "True", "True"]
