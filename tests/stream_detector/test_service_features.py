"""The service with behavioural features on the real broker and a real Redis.

``score --history --labels`` is the reference: the decisions ``serve`` publishes for the same
events and labels must carry the same scores (to 1e-9), with the in-memory store and with Redis,
after a ``kill -9`` in the middle of a batch, with two replicas sharing the Redis state, and
across a Redis restart in the middle of the stream (during which nothing is decided).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream_detector.backfill import backfill
from stream_detector.bundle import load_bundle
from stream_detector.cli import main
from stream_detector.config import DetectorSettings
from stream_detector.devbroker import free_port
from stream_detector.service import Service

from .conftest import SERVE, FeatureWorld, RunningDetector, serve_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topics(service_topics: Callable[..., dict[str, str]]) -> dict[str, str]:
    return service_topics()


@pytest.fixture
def run_detector() -> Iterator[Callable[[Service], RunningDetector]]:
    """``run_detector(detector)``: run it in a thread; stopped and joined at teardown."""
    started: list[RunningDetector] = []

    def start(detector: Service) -> RunningDetector:
        running = RunningDetector(detector, detector.bundle, detector.registry)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.detector.stop()
        running.thread.join(timeout=30)


def serve_flags(broker: Any, bundle: Path, group: str) -> list[str]:
    return [
        "--model", str(bundle),
        "--bootstrap-servers", broker.bootstrap_servers,
        "--metrics-port", str(free_port()),
        "--group-id", group,
    ]  # fmt: skip


def by_day(path: Path) -> dict[int, list[tuple[str, dict[str, Any], bytes]]]:
    """JSON lines of events or labels grouped by the day in their ``event_id`` (tx-<day>-<n>)."""
    days: dict[int, list[tuple[str, dict[str, Any], bytes]]] = {}
    for line in path.read_bytes().splitlines():
        doc = orjson.loads(line)
        days.setdefault(int(doc["event_id"].split("-")[1]), []).append((doc["event_id"], doc, line))
    return days


def send_day(producer: Any, topic: str, rows: list[tuple[str, dict[str, Any], bytes]]) -> None:
    """Events keyed by card: each card's events reach one partition, in time order."""
    for event_id, doc, line in rows:
        key = doc.get("customer_id", event_id).encode()
        producer.send(topic, key=key, value=line)
    producer.flush()


def stream_days(
    world: FeatureWorld,
    names: dict[str, str],
    producer: Any,
    consume_all: Callable[..., list[Any]],
    *,
    between: Callable[[int], None] | None = None,
) -> list[Any]:
    """Each live day's events, then its labels, waiting for the day's decisions in between:
    the labels reach the service long before the 2-day delayed windows need them."""
    events, labels = by_day(world.live), by_day(world.labels)
    sent = 0
    for day in sorted(events):
        if between is not None:
            between(day)
        send_day(producer, names["events"], events[day])
        sent += len(events[day])
        consume_all(names["decisions"], sent, timeout=120, settle=0.2)
        send_day(producer, names["labels"], labels[day])
    return consume_all(names["decisions"], sent, timeout=120, settle=1.0)


def score_file(world: FeatureWorld, out: Path, *, labels: bool = True) -> dict[str, float]:
    argv = ["score", "--model", str(world.bundle), "--input", str(world.live)]
    argv += ["--output", str(out), "--history", str(world.history)]
    if labels:
        argv += ["--labels", str(world.labels)]
    assert main(argv) == 0
    return {d["event_id"]: d["score"] for d in map(orjson.loads, out.read_bytes().splitlines())}


def assert_same_scores(
    records: list[Any], expected: dict[str, float], *, repeats: bool = False
) -> None:
    """Every event decided, each with score's score; once, unless ``repeats`` (a replay under
    at-least-once repeats the batches not yet committed: every copy must then score alike)."""
    ids = Counter(r.key.decode() for r in records)
    assert set(ids) == set(expected), "events lost"
    if not repeats:
        assert max(ids.values()) == 1, "events decided twice"
    served = [(r.key.decode(), orjson.loads(r.value)["score"]) for r in records]
    assert max(abs(score - expected[e]) for e, score in served) <= 1e-9


def redis_state(url: str, prefix: str) -> dict[str, Any]:
    return {"store": "redis", "redis_url": url, "key_prefix": prefix, "retry_backoff_s": 0.2}


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_serve_decides_as_score_with_history_and_labels(
    store: str,
    broker: Any,
    topics: dict[str, str],
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Service], RunningDetector],
    detector_settings: Callable[..., DetectorSettings],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    state: dict[str, Any] = {}
    if store == "redis":
        server = request.getfixturevalue("redis_server")
        state = redis_state(server.url, f"t{uuid.uuid4().hex[:10]}")
    bundle = load_bundle(feature_world.bundle)
    registry = CollectorRegistry()
    settings = detector_settings(topics, state=state)
    detector = Service(settings, bundle, registry=registry)
    assert detector.decider.engine is not None
    backfill(detector.decider.engine, bundle, feature_world.history)
    running = run_detector(detector)
    decisions = stream_days(feature_world, topics, producer_factory(linger_ms=5), consume_all)
    assert_same_scores(decisions, score_file(feature_world, tmp_path / "scored.jsonl"))
    assert any(orjson.loads(r.value)["flagged"] for r in decisions)

    assert registry.get_sample_value("stream_detector_feature_seconds_count") >= 1
    assert registry.get_sample_value("stream_detector_store_round_trips_total") >= 2
    assert registry.get_sample_value("stream_detector_store_keys") > 0
    assert registry.get_sample_value("stream_detector_store_errors_total") == 0
    assert registry.get_sample_value("stream_detector_store_seconds_count") >= 1
    assert running.get("/readyz")[0] == 200


def test_serve_and_backfill_read_the_event_time_from_the_field_the_spec_names(
    broker: Any,
    topics: dict[str, str],
    renamed_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Service], RunningDetector],
    detector_settings: Callable[..., DetectorSettings],
    tmp_path: Path,
) -> None:
    """The spec's time field is ``event_time``; every event also carries a ``timestamp`` a
    day off, which must be ignored (labels keep their ``timestamp``)."""
    bundle = load_bundle(renamed_world.bundle)
    detector = Service(detector_settings(topics), bundle, registry=CollectorRegistry())
    assert detector.decider.engine is not None
    backfill(detector.decider.engine, bundle, renamed_world.history)
    run_detector(detector)
    decisions = stream_days(renamed_world, topics, producer_factory(linger_ms=5), consume_all)
    assert_same_scores(decisions, score_file(renamed_world, tmp_path / "scored.jsonl"))
    live = {
        d["event_id"]: d["event_time"]
        for d in map(orjson.loads, renamed_world.live.read_bytes().splitlines())
    }
    assert all(orjson.loads(r.value)["timestamp"] == live[r.key.decode()] for r in decisions)


@pytest.mark.parametrize("aligned", [True, False])
def test_a_backlog_read_days_apart_on_four_partitions_is_aligned_by_event_time(
    aligned: bool,
    broker: Any,
    service_topics: Callable[..., dict[str, str]],
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Service], RunningDetector],
    detector_settings: Callable[..., DetectorSettings],
    tmp_path: Path,
) -> None:
    """The live days wait on 4 events and 2 labels partitions before the service starts: read
    partition after partition, the backlog's partitions are days apart in event time, and
    without alignment a terminal's events on the partitions read last are too late for its
    state. Aligned: nothing dead-lettered, and the scores of score's replay."""
    names = service_topics(events=4, labels=2)
    producer = producer_factory(linger_ms=5)
    events, labels = by_day(feature_world.live), by_day(feature_world.labels)
    for day in sorted(events):
        send_day(producer, names["events"], events[day])
    for day in sorted(labels):
        send_day(producer, names["labels"], labels[day])
    bundle = load_bundle(feature_world.bundle)
    registry = CollectorRegistry()
    detector = Service(detector_settings(names), bundle, registry=registry)
    assert detector.decider.engine is not None
    assert detector.aligner is not None
    if not aligned:
        detector.aligner = None
    backfill(detector.decider.engine, bundle, feature_world.history)
    run_detector(detector)
    if not aligned:
        # Read partition after partition, some of the backlog is too late (how much depends on
        # how the client splits its fetches): the test below would fail without alignment.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            decided = registry.get_sample_value("stream_detector_events_total") or 0.0
            if decided >= feature_world.n_live:
                break
            time.sleep(0.5)
        too_late = registry.get_sample_value(
            "stream_detector_events_invalid_total", {"reason": "too_late"}
        )
        assert too_late is not None
        assert too_late > 0
        return
    decisions = consume_all(names["decisions"], feature_world.n_live, timeout=180, settle=1.0)
    assert (
        registry.get_sample_value("stream_detector_events_invalid_total", {"reason": "too_late"})
        == 0
    )
    assert consume_all(names["dead_letter"], 0, timeout=5, settle=0.5) == []
    assert_same_scores(decisions, score_file(feature_world, tmp_path / "scored.jsonl"))
    assert registry.get_sample_value("stream_detector_records_held_back_total") > 0
    assert registry.get_sample_value("stream_detector_partitions_paused") == 0


def test_two_replicas_share_the_redis_state(
    broker: Any,
    topic_factory: Callable[..., str],
    topics: dict[str, str],
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Service], RunningDetector],
    detector_settings: Callable[..., DetectorSettings],
    redis_server: Any,
    tmp_path: Path,
) -> None:
    """Two replicas of one group, each with a share of the cards: a terminal's windows count
    the events the other replica decided, so both decide as one process would."""
    names = {**topics, "events": topic_factory(2, prefix="events")}
    state = redis_state(redis_server.url, f"t{uuid.uuid4().hex[:10]}")
    settings = detector_settings(names, state=state)
    bundle = load_bundle(feature_world.bundle)
    first = Service(settings, bundle, registry=CollectorRegistry())
    assert first.decider.engine is not None
    backfill(first.decider.engine, bundle, feature_world.history)
    second = Service(settings, load_bundle(feature_world.bundle), registry=CollectorRegistry())
    run_detector(first)
    run_detector(second)
    deadline = time.monotonic() + 60
    while not (first.is_ready() and second.is_ready()):
        assert time.monotonic() < deadline, "the replicas did not both get partitions"
        time.sleep(0.2)
    decisions = stream_days(feature_world, names, producer_factory(linger_ms=5), consume_all)
    assert_same_scores(decisions, score_file(feature_world, tmp_path / "scored.jsonl"))
    assert first.batches > 0
    assert second.batches > 0


def test_kill_9_mid_batch_then_restart_counts_every_event_once(
    broker: Any,
    topic_factory: Callable[..., str],
    topics: dict[str, str],
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    redis_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The process dies after its fourth batch was computed into Redis, before anything of it
    was published; the restarted service reads the batch again and the store, holding its
    events already, gives them the features they had: every window equals a clean replay's.

    One events partition: the backlog arrives in time order. Batches of 20 events (a few hours
    of this small world), so a replayed event is within the 1-day lateness of its entities'
    latest events and the store recognises it (one replayed from further back would be refused
    as too late, see ``stream_detector.features.engine``)."""
    topics = {**topics, "events": topic_factory(1, prefix="events")}
    redis = redis_factory(appendonly=True)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = {
        "STREAM_DETECTOR_STATE__STORE": "redis",
        "STREAM_DETECTOR_STATE__REDIS_URL": redis.url,
        "STREAM_DETECTOR_STATE__KEY_PREFIX": prefix,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    argv = ["backfill", "--model", str(feature_world.bundle), "--data", str(feature_world.history)]
    assert main(argv) == 0
    producer = producer_factory(linger_ms=5)
    events = by_day(feature_world.live)
    for day in sorted(events):
        send_day(producer, topics["events"], events[day])
    group = f"g-{uuid.uuid4().hex[:8]}"
    serve = [*SERVE[3:], *serve_flags(broker, feature_world.bundle, group)]
    faulty = [sys.executable, "-m", "stream_detector.testing.faults.serve_faulty"]
    faulty += ["--kill-phase", "decided", "--kill-after", "4", "--"]
    proc = subprocess.Popen(
        [*faulty, *serve],
        env=serve_env(topics, batch_size=20, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"serve was not killed at its fourth batch: {stderr.decode()[-3000:]}")
    first = subprocess.CompletedProcess(proc.args, proc.returncode, b"", stderr)
    assert first.returncode == -9, first.stderr.decode()[-2000:]
    assert b"fault: kill -9 at phase=decided batch=4" in first.stderr
    partial = consume_all(topics["decisions"], feature_world.n_live, timeout=3)
    assert 0 < len(partial) < feature_world.n_live

    second = subprocess.Popen(
        [sys.executable, "-m", "stream_detector", *serve],
        env=serve_env(topics, batch_size=20, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        decisions = consume_all(topics["decisions"], feature_world.n_live, timeout=120, settle=2)
    finally:
        second.terminate()
        second.wait(timeout=60)
    dead = consume_all(topics["dead_letter"], 1, timeout=1)
    assert not dead, [(r.key, dict(r.headers)) for r in dead]
    # The batch in flight when killed and the one before it (sent, not yet committed) are
    # decided again: the same scores, the state counting each event once.
    expected = score_file(feature_world, tmp_path / "s.jsonl", labels=False)
    assert_same_scores(decisions, expected, repeats=True)


def test_redis_stopped_mid_stream_nothing_lost_nothing_decided_meanwhile(
    broker: Any,
    topics: dict[str, str],
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Service], RunningDetector],
    detector_settings: Callable[..., DetectorSettings],
    redis_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    redis = redis_factory(appendonly=True)
    state = {**redis_state(redis.url, "outage"), "timeout_s": 1.0}
    registry = CollectorRegistry()
    bundle = load_bundle(feature_world.bundle)
    detector = Service(detector_settings(topics, state=state), bundle, registry=registry)
    assert detector.decider.engine is not None
    backfill(detector.decider.engine, bundle, feature_world.history)
    running = run_detector(detector)
    producer = producer_factory(linger_ms=5)
    days = sorted(by_day(feature_world.live))

    def outage(day: int) -> None:
        if day != days[1]:
            return
        decided = len(consume_all(topics["decisions"], feature_world.n_live, timeout=1))
        redis.stop()
        send_day(producer, topics["events"], by_day(feature_world.live)[day])
        deadline = time.monotonic() + 30
        while not registry.get_sample_value("stream_detector_store_errors_total"):
            assert time.monotonic() < deadline, "the store outage went unnoticed"
            time.sleep(0.1)
        time.sleep(2.0)
        assert running.get("/readyz")[0] == 503
        assert len(consume_all(topics["decisions"], feature_world.n_live, timeout=1)) == decided
        redis.start()

    decisions = stream_days(feature_world, topics, producer, consume_all, between=outage)
    # The outage day was sent twice (during the outage, then by stream_days): the second copy
    # is the same events, decided again with the same features (idempotent by event_id).
    first_copy = {}
    for r in decisions:
        first_copy.setdefault(r.key.decode(), r)
    expected = score_file(feature_world, tmp_path / "scored.jsonl")
    assert_same_scores(list(first_copy.values()), expected)
    served = [(r.key.decode(), orjson.loads(r.value)["score"]) for r in decisions]
    assert max(abs(s - expected[e]) for e, s in served) <= 1e-9
    assert registry.get_sample_value("stream_detector_store_errors_total") >= 1
    assert running.get("/readyz")[0] == 200


def test_a_store_unreachable_too_long_is_one_line_and_exit_2(
    broker: Any,
    topics: dict[str, str],
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
) -> None:
    events = by_day(feature_world.live)
    first_day = events[min(events)][:5]
    send_day(producer_factory(), topics["events"], first_day)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with_port = [*SERVE, *serve_flags(broker, feature_world.bundle, group)]
    env = serve_env(
        topics,
        STREAM_DETECTOR_STATE__STORE="redis",
        STREAM_DETECTOR_STATE__REDIS_URL="redis://:s3cret-pass@127.0.0.1:1/0",
        STREAM_DETECTOR_STATE__TIMEOUT_S="0.5",
        STREAM_DETECTOR_STATE__RETRY_BACKOFF_S="0.2",
        STREAM_DETECTOR_STATE__GIVE_UP_AFTER_S="3",
    )
    proc = subprocess.run(with_port, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("stream-detector: error: the state store (redis) was unreachable")
    assert "Traceback" not in proc.stderr.decode()
    assert b"s3cret-pass" not in proc.stderr + proc.stdout
    assert DetectorSettings.load().state.store == "memory"


@pytest.fixture(autouse=True)
def _collect() -> Iterator[None]:
    yield
    import gc

    gc.collect()
