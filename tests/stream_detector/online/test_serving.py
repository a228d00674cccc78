"""The online features of ``serve`` on the real broker: labels, live control, cold start, drift."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream_detector.bundle import load_bundle
from stream_detector.config import DetectorSettings
from stream_detector.devbroker import free_port
from stream_detector.online import corrected_threshold
from stream_detector.service import Detector

from ..conftest import training_data

pytestmark = pytest.mark.integration

TOKEN = "integration-admin-token"


def event(event_id: str, x: list[float]) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "timestamp": int(time.time() * 1000),
            "amount": x[0],
            "hour_of_day": x[1],
            "distance": x[2],
        }
    )


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> dict[str, str]:
    return {
        "events": topic_factory(2, prefix="events"),
        "labels": topic_factory(2, prefix="labels"),
        "decisions": topic_factory(2, prefix="decisions"),
        "alerts": topic_factory(1, prefix="alerts"),
        "dead_letter": topic_factory(1, prefix="dlq"),
    }


def http(url: str, *, body: bytes | None = None, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return r.status, orjson.loads(raw) if r.headers[
                "Content-Type"
            ] == "application/json" else raw
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()
    except urllib.error.URLError:  # not listening yet
        return 0, None


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture
def running() -> Iterator[Callable[[Detector], threading.Thread]]:
    started: list[tuple[Detector, threading.Thread]] = []

    def start(detector: Detector) -> threading.Thread:
        thread = threading.Thread(target=detector.run, daemon=True)
        thread.start()
        started.append((detector, thread))
        return thread

    yield start
    for detector, thread in started:
        detector.stop()
        thread.join(timeout=30)


def test_labels_are_joined_counted_dead_lettered_and_move_the_prior(
    broker: Any,
    topics: dict[str, str],
    bundle_dir: Path,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    running: Callable[[Detector], threading.Thread],
) -> None:
    X, _ = training_data(600, seed=4)
    producer = producer_factory()
    for i, x in enumerate(X[:500].tolist()):
        producer.send(topics["events"], key=f"tx-{i}".encode(), value=event(f"tx-{i}", x))
    producer.flush()
    registry = CollectorRegistry()
    settings = DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "topics": topics,
            "threshold_mode": "prior_corrected",
            "metrics": {"port": 0},
            "consumer": {
                "group_id": f"g-{uuid.uuid4().hex[:8]}",
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "batch_size": 100,
            },
            "online": {"prior": {"strength": 100}},
        }
    )
    bundle = load_bundle(bundle_dir)
    detector = Detector(settings, bundle, registry=registry)
    running(detector)
    first = consume_all(topics["decisions"], 500, timeout=60)
    assert len(first) == 500
    reference = detector.online.reference_prior
    assert registry.get_sample_value("stream_detector_class_prior") == reference

    # Labels after their decisions: a quarter fraud, ten unknown ids, five malformed messages.
    y = np.array([int(i % 4 == 0) for i in range(500)])
    bad = {
        b"b0": (b"{oops", "not_json"),
        b"b1": (b'{"event_id": "tx-1", "label": 7}', "bad_label"),
        b"b2": (b'{"label": 1}', "missing_field"),
        b"b3": (b"", "empty"),
        b"b4": (b'{"event_id": "tx-2", "label": 1, "timestamp": "soon"}', "bad_timestamp"),
    }
    for i in range(500):
        producer.send(
            topics["labels"],
            key=f"tx-{i}".encode(),
            value=orjson.dumps({"event_id": f"tx-{i}", "label": int(y[i])}),
        )
    for i in range(10):
        producer.send(
            topics["labels"], key=b"gone", value=orjson.dumps({"event_id": f"gone-{i}", "label": 0})
        )
    for key, (raw, _) in bad.items():
        producer.send(topics["labels"], key=key, value=raw, headers=[("trace", b"t9")])
    producer.flush()

    dead = consume_all(topics["dead_letter"], len(bad), timeout=30)
    assert sorted((r.key, r.value) for r in dead) == sorted((k, v) for k, (v, _) in bad.items())
    for record in dead:
        headers = dict(record.headers)
        assert headers["error.type"].decode() == bad[record.key][1]
        assert headers["source.topic"].decode() == topics["labels"]
        assert int(headers["source.partition"]) in (0, 1)
        assert int(headers["source.offset"]) >= 0
        assert headers["error.message"]
        assert headers["trace"] == b"t9"
    value = registry.get_sample_value
    wait_for(lambda: value("stream_detector_labels_unmatched_total") == 10)
    wait_for(
        lambda: (value("stream_detector_labels_total", {"label": "0"}) or 0) == 500 - y.sum() + 10
    )
    assert value("stream_detector_labels_total", {"label": "1"}) == y.sum()
    for _, reason in bad.values():
        assert value("stream_detector_labels_invalid_total", {"reason": reason}) == 1
    assert value("stream_detector_events_invalid_total", {"reason": "not_json"}) is None

    # The prior gauge moved to numpy's smoothed rate; the live precision and recall match.
    labels = np.r_[y, np.zeros(10)]
    prior = (labels.sum() + 100 * reference) / (labels.size + 100)
    assert value("stream_detector_class_prior") == pytest.approx(prior, abs=1e-12)
    decided = {r.key.decode(): orjson.loads(r.value) for r in first}
    flagged = np.array([decided[f"tx-{i}"]["flagged"] for i in range(500)])
    assert value("stream_detector_alert_precision") == pytest.approx(y[flagged].mean())
    assert value("stream_detector_alert_recall") == pytest.approx(flagged[y == 1].mean())
    status, health = http(f"http://127.0.0.1:{detector.endpoints.port}/healthz")
    assert status == 200
    assert health["feedback"]["joined"] == 500
    assert health["feedback"]["unmatched"] == 10
    assert health["class_prior"]["estimate"] == pytest.approx(prior)

    # Events after the labels are decided at the corrected threshold, which the gauge shows.
    for i, x in enumerate(X[500:].tolist(), start=500):
        producer.send(topics["events"], key=f"tx-{i}".encode(), value=event(f"tx-{i}", x))
    producer.flush()
    everything = [orjson.loads(r.value) for r in consume_all(topics["decisions"], 600, timeout=30)]
    later = [d for d in everything if int(d["event_id"].removeprefix("tx-")) >= 500]
    expected = corrected_threshold(0.5, reference_prior=reference, live_prior=prior)
    assert expected < 0.4  # the live prior is well above the reference: more is flagged
    assert len(later) == 100
    assert {d["threshold_mode"] for d in later} == {"prior_corrected"}
    assert all(d["threshold"] == pytest.approx(expected) for d in later)
    assert all(d["flagged"] == (d["score"] >= d["threshold"]) for d in later)
    assert value("stream_detector_threshold") == pytest.approx(expected)


def serve(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stream_detector", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def serve_env(broker: Any, topics: dict[str, str], **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "STREAM_DETECTOR_CONSUMER__GROUP_ID": f"g-{uuid.uuid4().hex[:8]}",
        "STREAM_DETECTOR_CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAM_DETECTOR_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
        "STREAM_DETECTOR_CONSUMER__BATCH_SIZE": "50",
        **extra,
    }
    for key, name in topics.items():
        env[f"STREAM_DETECTOR_TOPICS__{key.upper()}"] = name
    return env


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out.decode()


def test_sighup_and_admin_change_the_threshold_from_the_next_batch_losing_nothing(
    broker: Any,
    topics: dict[str, str],
    bundle_dir: Path,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    config = tmp_path / "detector.yaml"
    config.write_text("threshold: 0.5\n")
    port = free_port()
    proc = serve(
        ["--config", str(config), "--model", str(bundle_dir), "--metrics-port", str(port)],
        serve_env(broker, topics, STREAM_DETECTOR_ADMIN__TOKEN=TOKEN),
    )
    base = f"http://127.0.0.1:{port}"
    X, _ = training_data(3000, seed=12)
    producer = producer_factory()
    background_done = threading.Event()

    def background() -> None:  # a steady stream while the threshold changes
        for i, x in enumerate(X[:2000].tolist()):
            producer.send(topics["events"], key=f"bg-{i}".encode(), value=event(f"bg-{i}", x))
            time.sleep(0.004)
        background_done.set()

    def phase(name: str, rows: np.ndarray) -> list[str]:
        """Produce a phase's events and wait until all are decided."""
        ids = [f"{name}-{i}" for i in range(len(rows))]
        for event_id, x in zip(ids, rows.tolist(), strict=True):
            producer.send(topics["events"], key=event_id.encode(), value=event(event_id, x))
        producer.flush()
        wait_for(
            lambda: (
                set(ids)
                <= {r.key.decode() for r in consume_all(topics["decisions"], 10**6, timeout=0.3)}
            ),
            timeout=60,
        )
        return ids

    try:
        wait_for(lambda: http(base + "/readyz")[0] == 200, timeout=60)
        threading.Thread(target=background, daemon=True).start()
        p1 = phase("p1", X[2000:2300])

        status, state = http(base + "/admin/threshold", body=b'{"threshold": 0.8}', token=TOKEN)
        assert status == 200
        assert state["threshold"] == 0.8
        assert state["in_force"] == 0.8
        p2 = phase("p2", X[2300:2600])  # produced after the change was acknowledged

        config.write_text("threshold: 0.3\nthreshold_mode: prior_corrected\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: http(base + "/admin/threshold", token=TOKEN)[1]["mode"] == "prior_corrected"
        )
        p3 = phase("p3", X[2600:3000])
        assert background_done.wait(timeout=60)
        producer.flush()
        total = 2000 + 300 + 300 + 400
        records = consume_all(topics["decisions"], total, timeout=90, settle=1.0)
        status, metrics = http(base + "/metrics")
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out[-3000:]

    # Every event exactly one decision; every decision consistent with its own threshold.
    ids = Counter(r.key.decode() for r in records)
    assert len(ids) == total
    assert max(ids.values()) == 1
    decisions = {r.key.decode(): orjson.loads(r.value) for r in records}
    assert all(d["flagged"] == (d["score"] >= d["threshold"]) for d in decisions.values())
    # Settings in force, in the order they were set; an event produced after a change was
    # acknowledged is decided under that change (or a later one): from the next batch on.
    order = {(0.5, "fixed"): 0, (0.8, "fixed"): 1, (0.3, "prior_corrected"): 2}

    def step(d: dict[str, Any]) -> int:
        return order[(round(d["threshold"], 9), d["threshold_mode"])]

    assert {step(decisions[e]) for e in p3} == {2}
    assert {step(decisions[e]) for e in p2} == {1}  # all decided before the SIGHUP
    assert {step(decisions[e]) for e in p1} == {0}
    # Per partition, in offset order, the settings only ever move forward: a clean switch.
    by_partition: dict[int, list[int]] = defaultdict(list)
    for d in sorted(
        decisions.values(), key=lambda d: (d["source"]["partition"], d["source"]["offset"])
    ):
        by_partition[d["source"]["partition"]].append(step(d))
    assert all(seq == sorted(seq) for seq in by_partition.values())
    assert any(
        0 in seq and 2 in seq for seq in by_partition.values()
    )  # changes happened mid-stream

    assert "threshold change source=admin mode=fixed->fixed threshold=0.5->0.8" in out
    assert "threshold change source=sighup mode=fixed->prior_corrected threshold=0.8->0.3" in out
    assert b'stream_detector_threshold_changes_total{source="admin"} 1.0' in metrics
    assert b'stream_detector_threshold_changes_total{source="sighup"} 1.0' in metrics


def test_serve_without_a_model_starts_cold_and_reports_drift(
    broker: Any,
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    tmp_path: Path,
    topic_factory: Callable[..., str],
) -> None:
    topics = {**topics, "events": topic_factory(1, prefix="events")}  # one partition: order
    config = tmp_path / "detector.yaml"
    config.write_text(
        "online:\n"
        "  alert_rate: {budget: 0.05, min_scores: 200}\n"
        "  drift: {chunk_size: 25}\n"
        "  cold_start: {features: [amount, distance], warmup: 300, n_trees: 10, height: 8,\n"
        "               window_size: 100}\n"
    )
    rng = np.random.default_rng(8)
    normal = np.column_stack([rng.gamma(4, 10, 700), rng.exponential(3, 700)])
    shifted = np.column_stack([rng.gamma(4, 10, 300) * 6, rng.exponential(3, 300)])
    producer = producer_factory()
    rows = [*normal.tolist(), *shifted.tolist()]
    for i, (amount, distance) in enumerate(rows):
        producer.send(
            topics["events"],
            value=orjson.dumps({"event_id": f"c-{i}", "amount": amount, "distance": distance}),
        )
        if i % 100 == 50 and i < 800:
            producer.send(topics["events"], value=b'{"event_id": "no-amount", "distance": 1}')
    producer.flush()
    port = free_port()
    proc = serve(["--config", str(config), "--metrics-port", str(port)], serve_env(broker, topics))
    try:
        records = consume_all(topics["decisions"], len(rows), timeout=90, settle=0.5)
        dead = consume_all(topics["dead_letter"], 8, timeout=20, settle=0.3)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http(base + "/healthz")[1]["cold_start"]["learned"] == len(rows))
        _, health = http(base + "/healthz")
        _, metrics = http(base + "/metrics")
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "cold start with the online anomaly scorer features=amount,distance" in out

    decisions = sorted(
        (orjson.loads(r.value) for r in records), key=lambda d: d["source"]["offset"]
    )
    assert [d["event_id"] for d in decisions] == [f"c-{i}" for i in range(len(rows))]
    assert len(dead) == 8
    assert {dict(r.headers)["error.type"] for r in dead} == {b"missing_feature"}
    assert all(d["model_version"].startswith("coldstart-") for d in decisions)
    warming = decisions[:300]
    assert all(d["threshold"] == 1.0 and not d["flagged"] for d in warming)  # warm-up: no flags
    assert {d["threshold_mode"] for d in decisions} == {"alert_rate"}
    after = decisions[300:700]
    assert np.mean([d["flagged"] for d in after]) < 0.15
    # Six-fold amounts stand out at first; the online model then learns them as the new normal.
    assert np.mean([d["flagged"] for d in decisions[700:750]]) > 0.5
    # Learned only the valid events; the amount's mean moved and the health page says so.
    assert health["cold_start"] == {"learned": len(rows), "warming_up": False}
    assert {"feature:amount", "score"} <= set(health["drift"]["drifting"])
    assert health["drift"]["signals"]["feature:amount"]["detections"] >= 1
    assert "drift detected signal=feature:amount" in out
    assert b'stream_detector_model_info{model_version="coldstart-' in metrics
    assert b'scorer="halfspacetrees"' in metrics
    assert b'stream_detector_drift_total{signal="feature:amount"} 0.0' not in metrics
