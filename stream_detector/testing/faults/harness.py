"""The fault harness: streams, output collectors, ``serve`` processes and the scenarios.

Shared by the fast variants in ``tests/faults/`` (run by ``make test``) and the full run in
``benchmarks/faults.py``. Every scenario runs the real service against the real embedded
broker, injects its faults, then hands everything found on the output topics to
:func:`stream_detector.testing.faults.checker.check`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_detector.testing.bundles import write_test_bundle

from .checker import Report, Sent, accounted, check, separate_resent_alerts

FEATURES = ("amount", "hour_of_day", "distance")

BAD_MESSAGES: dict[str, bytes] = {
    "not_json": b"{not json",
    "not_object": b"[1, 2]",
    "missing_feature": b'{"amount": 1, "hour_of_day": 2}',
    "non_numeric": b'{"amount": "1", "hour_of_day": 2, "distance": 3}',
    "non_finite": b'{"amount": 1e999, "hour_of_day": 2, "distance": 3}',
    "not_utf8": b"\xff\xfe\xfd",
    "empty": b"",
}


# -- data and model --------------------------------------------------------------------------


def training_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraud when the amount is large, most of all at night, far from home."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.gamma(2.0, 30.0, n), rng.uniform(0, 24, n), rng.exponential(3.0, n)])
    logit = 0.04 * (X[:, 0] - 150) + 0.8 * (X[:, 2] - 6) - 0.1 * np.abs(X[:, 1] - 12)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def write_fault_bundle(directory: Path, *, alert_share: float = 0.15, seed: int = 0) -> Path:
    """A linear bundle whose threshold flags about ``alert_share`` of the events."""
    X, y = training_data(4000, seed)
    return write_test_bundle(directory, X, y, FEATURES, alert_share=alert_share)


def make_stream(n: int, *, prefix: str, seed: int, bad_every: int = 50) -> list[Sent]:
    """``n`` valid events keyed by ``event_id``, with an invalid message every ``bad_every``."""
    X, _ = training_data(n, seed + 1)
    now = int(time.time() * 1000)
    out: list[Sent] = []
    reasons = list(BAD_MESSAGES)
    for i, (a, h, d) in enumerate(X.tolist()):
        event_id = f"{prefix}-{i}"
        value = orjson.dumps(
            {
                "event_id": event_id,
                "entity_id": f"c-{i % 97}",
                "timestamp": now + i,
                "amount": a,
                "hour_of_day": h,
                "distance": d,
            }
        )
        out.append(Sent(event_id.encode(), value, event_id))
        if bad_every and i % bad_every == bad_every // 2:
            reason = reasons[len(out) % len(reasons)]
            out.append(Sent(f"{prefix}-bad-{i}".encode(), BAD_MESSAGES[reason], None, reason))
    return out


def produce(bootstrap: str, topic: str, messages: Iterable[Sent], **overrides: Any) -> int:
    """Produce messages (keyed) and wait for every acknowledgement; return how many."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=32 * 1024 * 1024, **overrides
    )
    try:
        futures = [producer.send(topic, key=m.key, value=m.value) for m in messages]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=30)
        return len(futures)
    finally:
        producer.close(timeout=10)


class StreamProducer:
    """Produces messages at a steady rate on a background thread (a live stream)."""

    def __init__(
        self, bootstrap: str, topic: str, messages: Sequence[Sent], *, rate: float
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.messages = messages
        self.rate = rate
        self.produced = 0
        self.error: BaseException | None = None
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        try:
            started = time.monotonic()
            for i, m in enumerate(self.messages):
                if self._stop.is_set():
                    break
                if not self._running.is_set():
                    paused = time.monotonic()
                    self._running.wait()
                    started += time.monotonic() - paused
                ahead = started + i / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                producer.send(self.topic, key=m.key, value=m.value)
                if i % 50 == 49:
                    producer.flush(timeout=30)
                    self.produced = i + 1
            producer.flush(timeout=30)
            self.produced = len(self.messages)
        except Exception as exc:  # noqa: BLE001 - handed to the test thread by join()
            self.error = exc
        finally:
            producer.close(timeout=10)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def join(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise AssertionError(f"stream producer failed: {self.error!r}")

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join(30)


# -- topics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultTopics:
    events: str
    labels: str
    decisions: str
    alerts: str
    dead_letter: str
    partitions: dict[str, int] = field(default_factory=dict, compare=False)

    @classmethod
    def fresh(cls, *, events: int = 4, outputs: int = 2) -> FaultTopics:
        tag = uuid.uuid4().hex[:10]
        names = {
            k: f"{k.replace('_', '-')}-{tag}"
            for k in ("events", "labels", "decisions", "alerts", "dead_letter")
        }
        sizes = {
            names["events"]: events,
            names["labels"]: 1,
            names["decisions"]: outputs,
            names["alerts"]: outputs,
            names["dead_letter"]: 1,
        }
        return cls(**names, partitions=sizes)

    def create(self, broker: Any) -> FaultTopics:
        broker.create_topics(self.partitions)
        return self

    def env(self) -> dict[str, str]:
        return {
            f"STREAM_DETECTOR_TOPICS__{k.upper()}": getattr(self, k)
            for k in ("events", "labels", "decisions", "alerts", "dead_letter")
        }

    def overrides(self) -> dict[str, str]:
        return {
            k: getattr(self, k) for k in ("events", "labels", "decisions", "alerts", "dead_letter")
        }

    @property
    def outputs(self) -> tuple[str, str, str]:
        return (self.decisions, self.alerts, self.dead_letter)


# -- reading the outputs ---------------------------------------------------------------------


class OutputCollector:
    """Reads every record of the output topics from the beginning, on a background thread."""

    def __init__(
        self, bootstrap: str, topics: FaultTopics, *, isolation_level: str = "read_uncommitted"
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.isolation_level = isolation_level
        self._records: dict[str, list[Any]] = {t: [] for t in topics.outputs}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.last_record_at = time.monotonic()
        self.error: BaseException | None = None
        self._ready = threading.Event()

    def start(self) -> OutputCollector:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError(f"collector could not assign the output topics: {self.error}")
        return self

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            reconnect_backoff_max_ms=500,
            isolation_level=self.isolation_level,
        )
        try:
            tps = []
            deadline = time.monotonic() + 30
            for topic in self.topics.outputs:
                parts = consumer.partitions_for_topic(topic)
                while not parts and time.monotonic() < deadline:
                    time.sleep(0.1)
                    parts = consumer.partitions_for_topic(topic)
                tps += [TopicPartition(topic, p) for p in sorted(parts or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self._ready.set()
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=100, max_records=5000)
                if batch:
                    with self._lock:
                        for tp, records in batch.items():
                            self._records[tp.topic].extend(records)
                        self.last_record_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread through .error
            self.error = exc
            self._ready.set()
        finally:
            consumer.close(timeout_ms=2000)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def records(self, topic: str) -> list[Any]:
        with self._lock:
            return list(self._records[topic])

    @property
    def decisions(self) -> list[Any]:
        return self.records(self.topics.decisions)

    @property
    def alerts(self) -> list[Any]:
        return self.records(self.topics.alerts)

    @property
    def dead_letters(self) -> list[Any]:
        return self.records(self.topics.dead_letter)

    def accounted(self, sent: Sequence[Sent]) -> set[bytes]:
        return accounted(sent, (r.key for r in self.decisions), (r.key for r in self.dead_letters))

    def wait_accounted(
        self, sent: Sequence[Sent], fraction: float = 1.0, timeout: float = 120.0
    ) -> int:
        """Wait until ``fraction`` of ``sent`` has a decision or dead letter; return the count."""
        need = int(len(sent) * fraction)
        deadline = time.monotonic() + timeout
        while True:
            done = len(self.accounted(sent))
            if done >= need or time.monotonic() > deadline:
                return done
            time.sleep(0.1)

    def drain(self, idle_s: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until no record arrived for ``idle_s`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_record_at < idle_s and time.monotonic() < deadline:
            time.sleep(0.05)


def check_collected(
    sent: Sequence[Sent], collectors: Sequence[OutputCollector], **kwargs: Any
) -> Report:
    """Check the union of what several collectors read (one per broker lifetime)."""
    report = check(
        sent,
        [r for c in collectors for r in c.decisions],
        [r for c in collectors for r in c.alerts],
        [r for c in collectors for r in c.dead_letters],
        **kwargs,
    )
    if len(collectors) > 1:
        separate_resent_alerts(
            report, [c.decisions for c in collectors], [c.alerts for c in collectors]
        )
    return report


# -- serve processes -------------------------------------------------------------------------


def serve_env(topics: FaultTopics, **settings: Any) -> dict[str, str]:
    """The environment of a ``serve`` process: topics and settings as STREAM_DETECTOR_ vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_DETECTOR_")}
    env.update(topics.env())
    defaults = {
        "CONSUMER__SESSION_TIMEOUT_MS": 3000,
        "CONSUMER__HEARTBEAT_INTERVAL_MS": 500,
        "CONSUMER__BATCH_SIZE": 100,
        "KAFKA__CONNECT_TIMEOUT_S": 20,
        "KAFKA__GIVE_UP_AFTER_S": 60,
    }
    for key, value in {**defaults, **settings}.items():
        env[f"STREAM_DETECTOR_{key.upper()}"] = str(value)
    return env
