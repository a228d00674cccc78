"""The service end to end on the real broker: decisions, alerts, dead letters, metrics, stop;
its online features: labels, live control, cold start, drift."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np
import orjson
import pytest

from stream_detector.decide import Decider
from stream_detector.devbroker import free_port
from stream_detector.messages import Message, Source
from stream_detector.online import corrected_threshold

from .conftest import SERVE, RunningDetector, event_bytes, serve_env, stop_process, training_data

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


@pytest.fixture
def topics(service_topics: Callable[..., dict[str, str]]) -> dict[str, str]:
    return service_topics()


def test_every_message_ends_as_a_decision_alert_or_dead_letter(
    topics: dict[str, str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    start_detector: Callable[..., RunningDetector],
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

    running = start_detector(topics)
    detector, bundle, registry = running.detector, running.bundle, running.registry

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
    # The validation figures live quality is compared with, and readiness, for alert rules.
    validation = bundle.manifest.metrics
    for key in ("precision", "recall"):
        exported = registry.get_sample_value(f"stream_detector_validation_{key}")
        assert exported == validation[key], key
    assert registry.get_sample_value("stream_detector_ready") == 1.0

    status, body = running.get("/metrics")
    assert status == 200
    assert b"stream_detector_events_total" in body
    assert running.get("/healthz")[0] == 200
    assert running.get("/readyz")[0] == 200

    detector.stop()
    running.thread.join(timeout=30)
    assert running.code == 0
    assert not detector.is_ready()
    assert registry.get_sample_value("stream_detector_ready") == 0.0


def test_threshold_flag_is_in_force_and_decisions_can_be_turned_off(
    topics: dict[str, str],
    produce_events: Callable[..., list[tuple[str, bytes]]],
    consume_all: Callable[..., list[Any]],
    start_detector: Callable[..., RunningDetector],
) -> None:
    X, _ = training_data(200, seed=3)
    produce_events(topics["events"], X)
    running = start_detector(topics, threshold=0.9, decisions_enabled=False)
    bundle, registry = running.bundle, running.registry
    n_flagged = int((bundle.score_samples(X) >= 0.9).sum())
    alerts = consume_all(topics["alerts"], n_flagged, timeout=60, settle=2.0)
    assert len(alerts) == n_flagged > 0
    assert {orjson.loads(r.value)["threshold"] for r in alerts} == {0.9}
    assert registry.get_sample_value("stream_detector_threshold") == 0.9
    assert consume_all(topics["decisions"], 1, timeout=2) == []


def test_sigterm_mid_stream_loses_and_repeats_nothing(
    broker: Any,
    topics: dict[str, str],
    bundle_dir: Path,
    produce_events: Callable[..., list[tuple[str, bytes]]],
    consume_all: Callable[..., list[Any]],
    serve_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    X, _ = training_data(6000, seed=8)
    events = produce_events(topics["events"], X)
    group = f"g-{uuid.uuid4().hex[:8]}"
    flags = ("--model", str(bundle_dir), "--bootstrap-servers", broker.bootstrap_servers)
    env = serve_env(topics)
    first = serve_process(*flags, "--metrics-port", str(free_port()), "--group-id", group, env=env)
    partial = consume_all(topics["decisions"], 500, timeout=60)
    assert len(partial) >= 500
    out = stop_process(first)
    assert first.returncode == 0, out[-2000:]
    assert "signal=SIGTERM" in out
    before = consume_all(topics["decisions"], len(events), timeout=3)
    assert len(before) < len(events), "stop came too late to test anything"

    second = serve_process(
        *flags, "--metrics-port", str(free_port()), "--group-id", group, env=env, output=False
    )
    try:
        decisions = consume_all(topics["decisions"], len(events), timeout=90, settle=2.0)
    finally:
        stop_process(second)
    ids = Counter(r.key.decode() for r in decisions)
    assert set(ids) == {e for e, _ in events}, "events lost across the restart"
    assert max(ids.values()) == 1, "a clean stop must not repeat decisions"
    assert second.returncode == 0


def test_unreachable_broker_is_a_one_line_error(bundle_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "STREAM_DETECTOR_KAFKA__CONNECT_TIMEOUT_S": "2"}
    port_0 = ("--metrics-port", "0")
    proc = subprocess.run(
        [*SERVE, "--model", str(bundle_dir), "--bootstrap-servers", f"127.0.0.1:{port}", *port_0],
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
        [*SERVE, "--model", str(bad), "--bootstrap-servers", "127.0.0.1:1"],
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


# -- the online features: labels, live control, cold start, drift -----------------------------

TOKEN = "integration-admin-token"
ONLINE_PARTITIONS = {"events": 2, "labels": 2, "decisions": 2, "alerts": 1, "dead_letter": 1}


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


def test_labels_are_joined_counted_dead_lettered_and_move_the_prior(
    service_topics: Callable[..., dict[str, str]],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    start_detector: Callable[..., RunningDetector],
) -> None:
    topics = service_topics(**ONLINE_PARTITIONS)
    X, _ = training_data(600, seed=4)
    producer = producer_factory()
    for i, x in enumerate(X[:500].tolist()):
        producer.send(topics["events"], key=f"tx-{i}".encode(), value=event(f"tx-{i}", x))
    producer.flush()
    running = start_detector(
        topics,
        threshold_mode="prior_corrected",
        consumer={"batch_size": 100},
        online={"prior": {"strength": 100}},
    )
    detector, registry = running.detector, running.registry
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
    assert value("stream_detector_events_invalid_total", {"reason": "not_json"}) == 0  # labels' own

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


def serving_env(broker: Any, topics: dict[str, str], **extra: str) -> dict[str, str]:
    """:func:`serve_env` with the broker and a new consumer group set, batches of 50."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    return serve_env(
        topics,
        batch_size=50,
        STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        STREAM_DETECTOR_CONSUMER__GROUP_ID=group,
        **extra,
    )


def test_sighup_and_admin_change_the_threshold_from_the_next_batch_losing_nothing(
    broker: Any,
    service_topics: Callable[..., dict[str, str]],
    bundle_dir: Path,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    serve_process: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    topics = service_topics(**ONLINE_PARTITIONS)
    config = tmp_path / "detector.yaml"
    config.write_text("threshold: 0.5\n")
    port = free_port()
    proc = serve_process(
        *("--config", str(config), "--model", str(bundle_dir), "--metrics-port", str(port)),
        env=serving_env(broker, topics, STREAM_DETECTOR_ADMIN__TOKEN=TOKEN),
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
        out = stop_process(proc)
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
    service_topics: Callable[..., dict[str, str]],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    serve_process: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    topics = service_topics(**{**ONLINE_PARTITIONS, "events": 1})  # one partition: order
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
    proc = serve_process(
        "--config", str(config), "--metrics-port", str(port), env=serving_env(broker, topics)
    )
    try:
        records = consume_all(topics["decisions"], len(rows), timeout=90, settle=0.5)
        dead = consume_all(topics["dead_letter"], 8, timeout=20, settle=0.3)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http(base + "/healthz")[1]["cold_start"]["learned"] == len(rows))
        _, health = http(base + "/healthz")
        _, metrics = http(base + "/metrics")
    finally:
        out = stop_process(proc)
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


# -- operations: counters at zero before their first event, the status line ----------------------


def test_every_labelled_counter_shows_on_metrics_before_its_first_event(
    topics: dict[str, str],
    start_detector: Callable[..., RunningDetector],
    produce_events: Callable[..., list[tuple[str, bytes]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from stream_detector.events import InvalidReason, LabelReason
    from stream_detector.metrics import ControlSource, ReplayReason

    running = start_detector(topics, status_interval_s=0.2)
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the detector did not get ready"
        try:
            if running.get("/readyz")[0] == 200:
                break
        except urllib.error.URLError:
            pass  # the endpoints are not up yet
        time.sleep(0.1)
    status, body = running.get("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    counters = {name: f for name, f in families.items() if f.type == "counter"}
    assert len(counters) >= 12
    assert [name for name, f in counters.items() if not f.samples] == []

    def values(name: str, label: str) -> set[str]:
        family = families[f"stream_detector_{name}"]
        samples = [s for s in family.samples if s.name.endswith("_total")]
        assert {s.value for s in samples} == {0.0}, name
        return {s.labels[label] for s in samples}

    assert values("events_invalid", "reason") == set(get_args(InvalidReason))
    assert values("labels_invalid", "reason") == set(get_args(LabelReason))
    assert values("labels", "label") == {"0", "1"}
    assert values("threshold_changes", "source") == set(get_args(ControlSource))
    assert values("control_errors", "source") == set(get_args(ControlSource))
    assert values("batches_replayed", "reason") == set(get_args(ReplayReason))
    features = running.bundle.features
    assert values("drift", "signal") == {"score", "labels", *(f"feature:{f}" for f in features)}

    # The status line: every interval, then once more at the stop, key=value like the others.
    with caplog.at_level("INFO", logger="stream_detector.service"):
        X, _ = training_data(300, seed=8)
        produce_events(topics["events"], X)
        deadline = time.monotonic() + 60
        while running.registry.get_sample_value("stream_detector_events_total") != 300:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        running.detector.stop()
        running.thread.join(timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("status ")]
    assert len(lines) >= 2
    fields = dict(item.split("=", 1) for item in lines[-1].split()[1:])
    n_alerts = int(running.registry.get_sample_value("stream_detector_alerts_total") or 0)
    assert fields["events"] == "300"
    assert fields["alerts"] == str(n_alerts)
    assert fields["dead_letters"] == "0"
    assert int(fields["lag"]) >= 0  # known once a batch was committed
    assert float(fields["threshold"]) == 0.5
    assert fields["threshold_mode"] == "fixed"
    assert 0.0 < float(fields["prior"]) < 1.0


# Tansu's high watermark is approximate after multi-record batches; Apache Kafka's is exact.
@pytest.mark.broker_kinds("apache")
def test_consumer_lag_is_exact_on_apache_kafka(
    service_topics: Callable[..., dict[str, str]],
    produce_events: Callable[..., list[tuple[str, bytes]]],
    start_detector: Callable[..., RunningDetector],
) -> None:
    from kafka import TopicPartition

    topics = service_topics(events=1, decisions=1, alerts=1)
    X, _ = training_data(1000, seed=5)
    produce_events(topics["events"], X)
    partition = TopicPartition(topics["events"], 0)
    seen: list[tuple[float | None, int | None]] = []
    running = start_detector(topics, consumer={"batch_size": 100})
    detector, registry = running.detector, running.registry

    def at_phase(phase: str) -> None:
        # At each batch's first phase the gauge still holds the lag after the previous commit.
        consumer = detector._consumer
        if phase == "decided" and consumer is not None:
            lag = registry.get_sample_value("stream_detector_consumer_lag", {"partition": "0"})
            seen.append((lag, consumer.committed(partition)))

    detector.phase_hook = at_phase  # set before the group join ends: no batch is missed
    deadline = time.monotonic() + 90
    while registry.get_sample_value("stream_detector_events_total") != len(X):
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while registry.get_sample_value("stream_detector_consumer_lag", {"partition": "0"}) != 0:
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    measured = [(lag, committed) for lag, committed in seen if committed is not None]
    assert len(measured) >= 3, seen  # several batches of 100 out of 1,000
    assert all(lag == len(X) - committed for lag, committed in measured), measured
