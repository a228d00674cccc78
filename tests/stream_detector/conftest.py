"""Fixtures shared by the serving-side tests: a small trained bundle, and factories that run
``score`` and ``serve`` on it (the service in a thread or in its own process) on the broker."""

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stream_detector.bundle import ModelBundle, load_bundle, write_bundle
from stream_detector.cli import main
from stream_detector.config import DetectorSettings
from stream_detector.scoring import LinearScorer

if TYPE_CHECKING:
    from stream_detector.devbroker import EmbeddedBroker
    from stream_detector.service import Service

FEATURES = ("amount", "hour_of_day", "distance")


def training_data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fraud when the amount is large, most of all at night, far from home."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.gamma(2.0, 30.0, n), rng.uniform(0, 24, n), rng.exponential(3.0, n)])
    logit = 0.04 * (X[:, 0] - 150) + 0.8 * (X[:, 2] - 6) - 0.1 * np.abs(X[:, 1] - 12)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear-model bundle over FEATURES, threshold 0.5."""
    X, y = training_data()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    out = tmp_path_factory.mktemp("bundle") / "model"
    write_bundle(
        out,
        scorer=LinearScorer.from_sklearn(model),
        features=FEATURES,
        label="is_fraud",
        technique="none",
        scorer_name="classifier",
        threshold=0.5,
        threshold_policy="fixed:0.5",
        class_prior_train=float(y.mean()),
        metrics={"pr_auc": 0.9, "roc_auc": 0.95, "precision": 0.8, "recall": 0.7},
        reference=np.median(X, axis=0),
    )
    return out


def write_events(path: Path, X: np.ndarray, extra_lines: dict[int, bytes] | None = None) -> None:
    """Rows of ``X`` as FEATURES events ``tx-<row>`` in JSON Lines; ``extra_lines`` inserted
    at their positions."""
    lines = [
        orjson.dumps({"event_id": f"tx-{i}", "amount": a, "hour_of_day": h, "distance": d})
        for i, (a, h, d) in enumerate(X.tolist())
    ]
    for pos, line in sorted((extra_lines or {}).items()):
        lines.insert(pos, line)
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.fixture
def score_events(bundle_dir: Path, tmp_path: Path) -> Callable[..., tuple[int, list[dict]]]:
    """``score_events(X, *flags, extra_lines=None) -> (exit code, decisions)``.

    Writes the rows of ``X`` as events (see :func:`write_events`), runs ``stream-detector
    score --model <bundle_dir>`` over them in-process with ``flags`` added, and returns its
    exit code and the decisions it wrote.
    """
    events, decisions = tmp_path / "in.jsonl", tmp_path / "out.jsonl"

    def run(
        X: np.ndarray, *flags: str, extra_lines: dict[int, bytes] | None = None
    ) -> tuple[int, list[dict]]:
        write_events(events, X, extra_lines)
        decisions.unlink(missing_ok=True)
        argv = ["score", "--model", str(bundle_dir), "--input", str(events)]
        code = main([*argv, "--output", str(decisions), *flags])
        lines = decisions.read_bytes().splitlines() if decisions.exists() else []
        return code, [orjson.loads(line) for line in lines]

    return run


# -- the service on the session broker --------------------------------------------------------


@pytest.fixture
def service_topics(topic_factory: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """``service_topics(events=3, labels=1, decisions=2, alerts=2, dead_letter=1)``: new
    topics with these partition counts, as the ``topics`` setting names them."""

    def create(
        *,
        events: int = 3,
        labels: int = 1,
        decisions: int = 2,
        alerts: int = 2,
        dead_letter: int = 1,
    ) -> dict[str, str]:
        return {
            "events": topic_factory(events, prefix="events"),
            "labels": topic_factory(labels, prefix="labels"),
            "decisions": topic_factory(decisions, prefix="decisions"),
            "alerts": topic_factory(alerts, prefix="alerts"),
            "dead_letter": topic_factory(dead_letter, prefix="dlq"),
        }

    return create


def event_bytes(X: np.ndarray) -> list[tuple[str, bytes]]:
    """Rows of ``X`` as ``(event_id, value)`` of FEATURES events ``tx-<row>`` with an entity
    and the time now."""
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
def produce_events(producer_factory: Callable[..., Any]) -> Callable[..., list[tuple[str, bytes]]]:
    """``produce_events(topic, X) -> [(event_id, value), ...]``: the rows of ``X`` as events
    (:func:`event_bytes`) sent to ``topic`` keyed by their id, and flushed."""

    def produce(topic: str, X: np.ndarray) -> list[tuple[str, bytes]]:
        events = event_bytes(X)
        producer = producer_factory()
        for event_id, value in events:
            producer.send(topic, key=event_id.encode(), value=value)
        producer.flush()
        return events

    return produce


@pytest.fixture
def detector_settings(broker: EmbeddedBroker) -> Callable[..., DetectorSettings]:
    """``detector_settings(topics, **overrides) -> DetectorSettings`` for the session broker: a
    new consumer group, timeouts the embedded broker suits, batches of 250, metrics on a free
    port, messages up to 4096 bytes. A dict override is merged into the section it names."""

    def load(topics: dict[str, str], **overrides: Any) -> DetectorSettings:
        settings: dict[str, Any] = {
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
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(settings.get(key), dict):
                value = {**settings[key], **value}
            settings[key] = value
        return DetectorSettings.load(overrides=settings)

    return load


class RunningDetector:
    """A detector running in a thread: its bundle and metrics registry, its exit code once it
    returned, its HTTP endpoints."""

    def __init__(self, detector: Service, bundle: ModelBundle, registry: CollectorRegistry) -> None:
        self.detector = detector
        self.bundle = bundle
        self.registry = registry
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.detector.run()

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` on the detector's metrics address: (status, body)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.detector.endpoints.port}{path}", timeout=5
            ) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


@pytest.fixture
def start_detector(
    bundle_dir: Path, detector_settings: Callable[..., DetectorSettings]
) -> Iterator[Callable[..., RunningDetector]]:
    """``start_detector(topics, **overrides) -> RunningDetector``: the service on the bundle of
    ``bundle_dir``, with ``detector_settings(topics, **overrides)`` and a fresh metrics
    registry, running in a thread; stopped and joined at teardown."""
    from stream_detector.service import Service

    started: list[RunningDetector] = []

    def start(topics: dict[str, str], **overrides: Any) -> RunningDetector:
        settings = detector_settings(topics, **overrides)
        bundle, registry = load_bundle(bundle_dir), CollectorRegistry()
        running = RunningDetector(Service(settings, bundle, registry=registry), bundle, registry)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.detector.stop()
        running.thread.join(timeout=30)


SERVE = (sys.executable, "-m", "stream_detector", "serve")
"""``stream-detector serve`` in its own process; the flags follow."""


def serve_env(topics: dict[str, str], *, batch_size: int = 100, **extra: str) -> dict[str, str]:
    """The environment of a ``serve`` process: this one's, plus the ``topics``, consumer
    timeouts the embedded broker suits, ``batch_size`` and ``extra`` variables."""
    env = {
        **os.environ,
        "STREAM_DETECTOR_CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAM_DETECTOR_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
        "STREAM_DETECTOR_CONSUMER__BATCH_SIZE": str(batch_size),
        **extra,
    }
    for key, name in topics.items():
        env[f"STREAM_DETECTOR_TOPICS__{key.upper()}"] = name
    return env


@pytest.fixture
def serve_process() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``serve_process(*flags, env=..., output=True) -> Popen``: ``serve`` in its own process,
    its stdout and stderr in one pipe (or discarded when ``output`` is false); killed at
    teardown if it still runs."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str, env: dict[str, str], output: bool = True) -> subprocess.Popen[bytes]:
        to = subprocess.PIPE if output else subprocess.DEVNULL
        proc = subprocess.Popen(
            [*SERVE, *flags],
            env=env,
            stdout=to,
            stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stop_process(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM ``proc`` if it runs, wait for it (60 s, then kill); return what it printed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return (out or b"").decode()


# -- behavioural features: a small simulated world and a bundle over a feature spec ----------

SPEC = {
    "numeric": ["amount"],
    "calendar": ["hour", "night"],
    "lateness": "1d",
    "windows": [
        {
            "key": "customer_id",
            "windows": ["1d", "7d"],
            "field": "amount",
            "stats": ["count", "mean", "std"],
            "relative": ["ratio", "zscore"],
        },
        {"key": "customer_id", "windows": ["1d"], "distinct": "terminal_id"},
        {"key": "customer_id", "windows": ["7d"], "since_previous": True},
        {
            "key": "terminal_id",
            "windows": ["3d"],
            "delay": "2d",
            "stats": ["count"],
            "labels": ["count", "rate"],
        },
    ],
}
"""Every kind of feature, with windows short enough for a few simulated days."""

LABEL_DELAY_MS = 60_000
"""Labels of the live stream arrive a minute after their events (within the 2-day delay)."""


@dataclass(frozen=True)
class FeatureWorld:
    """A simulated history (CSV) and live stream (events and labels, JSON Lines) with a
    bundle over :data:`SPEC`."""

    history: Path
    live: Path
    labels: Path
    bundle: Path
    all_rows: Path
    n_live: int


@pytest.fixture(scope="session")
def feature_world(tmp_path_factory: pytest.TempPathFactory) -> FeatureWorld:
    from offline.data import spec_features
    from stream_detector.features import FeatureSpec
    from stream_detector.history import read_table
    from stream_detector.simulate import ALL_COLUMNS, TRAINING_COLUMNS, TransactionSimulator
    from stream_detector.simulate.output import write_csv, write_jsonl

    root = tmp_path_factory.mktemp("features")
    sim = TransactionSimulator(
        n_customers=60,
        n_terminals=120,
        n_days=12,
        compromised_terminals_per_day=0.5,
        compromised_customers_per_day=0.5,
        random_state=3,
    )
    history, live = sim.generate(n_days=9), sim.generate(start_day=9, n_days=3)
    # The history in a shuffled row order: loading sorts it by (timestamp, event_id).
    shuffled = history.take(np.random.default_rng(0).permutation(len(history)))
    write_csv(shuffled, root / "history.csv", columns=TRAINING_COLUMNS)
    write_jsonl(live.iter_events(), root / "live.jsonl")
    write_jsonl(live.iter_labels(LABEL_DELAY_MS), root / "labels.jsonl")
    from stream_detector.simulate import Transactions

    write_csv(Transactions.concatenate([history, live]), root / "all.csv", columns=ALL_COLUMNS)
    spec = FeatureSpec.parse(SPEC)
    _write_spec_bundle(
        root / "bundle", spec, spec_features(read_table(root / "history.csv"), spec, None)[0]
    )
    return FeatureWorld(
        history=root / "history.csv",
        live=root / "live.jsonl",
        labels=root / "labels.jsonl",
        bundle=root / "bundle",
        all_rows=root / "all.csv",
        n_live=len(live),
    )


def _write_spec_bundle(path: Path, spec: Any, X: np.ndarray) -> None:
    """A linear bundle over ``spec`` with seeded weights, standardised on ``X``."""
    scale = X.std(axis=0)
    coef = np.random.default_rng(1).normal(size=len(spec.names))
    write_bundle(
        path,
        scorer=LinearScorer(
            coef=coef, intercept=-3.0, mean=X.mean(axis=0), scale=np.where(scale > 0, scale, 1.0)
        ),
        features=spec.names,
        label="is_fraud",
        technique="none",
        scorer_name="classifier",
        threshold=0.4,
        threshold_policy="fixed:0.4",
        class_prior_train=0.01,
        metrics={"pr_auc": None},
        feature_spec=spec,
    )


TIME_FIELD = "event_time"
"""The time field of :func:`renamed_world`'s spec, events and history."""


@pytest.fixture(scope="session")
def renamed_world(
    feature_world: FeatureWorld, tmp_path_factory: pytest.TempPathFactory
) -> FeatureWorld:
    """:func:`feature_world` with the event time in ``event_time`` (the spec's ``timestamp``
    names it), and a ``timestamp`` field a day off in every event and history row, which
    must be ignored. Labels keep their ``timestamp``; the bundle's weights are the same."""
    from offline.data import spec_features
    from stream_detector.features import FeatureSpec
    from stream_detector.history import read_table

    root = tmp_path_factory.mktemp("renamed")
    frame = read_table(feature_world.history).rename(columns={"timestamp": TIME_FIELD})
    frame["timestamp"] = frame[TIME_FIELD] - 86_400_000
    frame.to_csv(root / "history.csv", index=False)
    lines = []
    for line in feature_world.live.read_bytes().splitlines():
        doc = orjson.loads(line)
        doc[TIME_FIELD] = doc["timestamp"]
        doc["timestamp"] = doc["timestamp"] - 86_400_000
        lines.append(orjson.dumps(doc))
    (root / "live.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    spec = FeatureSpec.parse({**SPEC, "timestamp": TIME_FIELD})
    X = spec_features(read_table(feature_world.history), FeatureSpec.parse(SPEC), None)[0]
    _write_spec_bundle(root / "bundle", spec, X)
    return FeatureWorld(
        history=root / "history.csv",
        live=root / "live.jsonl",
        labels=feature_world.labels,
        bundle=root / "bundle",
        all_rows=feature_world.all_rows,
        n_live=feature_world.n_live,
    )
