"""Exactly-once mode on the embedded broker: the transactional code paths, end to end.

The embedded broker accepts every transactional call but shows aborted records to
``read_committed`` readers, so these tests check what it does honour: outputs published,
offsets committed through ``send_offsets_to_transaction``, and an aborted transaction
replayed rather than lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from stream_detector.bundle import load_bundle
from stream_detector.config import DetectorSettings
from stream_detector.service import Service

from ..conftest import training_data

pytestmark = pytest.mark.integration

PER_PARTITION = 150


def _run(
    broker: Any,
    bundle_dir: Path,
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    *,
    fail_first_commit: bool,
) -> tuple[Service, dict[str, str], list[Any]]:
    topics = {
        "events": topic_factory(2, prefix="events"),
        "labels": topic_factory(1, prefix="labels"),
        "decisions": topic_factory(2, prefix="decisions"),
        "alerts": topic_factory(1, prefix="alerts"),
        "dead_letter": topic_factory(1, prefix="dlq"),
    }
    X, _ = training_data(2 * PER_PARTITION, seed=5)
    producer = producer_factory()
    for i, (a, h, d) in enumerate(X.tolist()):
        body = {"event_id": f"tx-{i}", "amount": a, "hour_of_day": h, "distance": d}
        producer.send(topics["events"], value=orjson.dumps(body), partition=i % 2)
    producer.flush()
    group = f"eos-{uuid.uuid4().hex[:8]}"
    settings = DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "topics": topics,
            "consumer": {
                "group_id": group,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "batch_size": 50,
            },
            "producer": {"transactional_id": f"{group}-0"},
            "metrics": {"port": 0},
            "processing_guarantee": "exactly_once",
        }
    )
    detector = Service(settings, load_bundle(bundle_dir), registry=CollectorRegistry())
    failed: list[bool] = []

    def fail_once(phase: str) -> None:
        if phase == "published" and fail_first_commit and not failed:
            failed.append(True)
            producer = detector.delivery.publisher.producer
            real = producer.commit_transaction

            def broken() -> None:
                producer.commit_transaction = real
                raise KafkaError("injected: commit_transaction failed")

            producer.commit_transaction = broken

    detector.phase_hook = fail_once
    thread = threading.Thread(target=detector.run, daemon=True)
    thread.start()
    committed = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group)
    expected = {0: PER_PARTITION, 1: PER_PARTITION}
    try:
        decisions = consume_all(topics["decisions"], 2 * PER_PARTITION, timeout=60, settle=1.0)
        deadline = time.monotonic() + 30
        while True:  # the last transaction may still be committing
            offsets = {p: committed.committed(TopicPartition(topics["events"], p)) for p in (0, 1)}
            if offsets == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        detector.stop()
        thread.join(timeout=30)
        committed.close()
    assert offsets == expected, offsets
    return detector, topics, decisions


def test_exactly_once_commits_outputs_and_offsets_in_transactions(
    broker: Any,
    bundle_dir: Path,
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
) -> None:
    detector, _, decisions = _run(
        broker, bundle_dir, topic_factory, producer_factory, consume_all, fail_first_commit=False
    )
    ids = Counter(r.key.decode() for r in decisions)
    assert set(ids) == {f"tx-{i}" for i in range(2 * PER_PARTITION)}
    assert max(ids.values()) == 1
    assert detector.delivery.transactions["aborted"] == 0
    assert detector.delivery.transactions["committed"] >= 6  # batches of at most 50


def test_an_aborted_transaction_is_processed_again_not_lost(
    broker: Any,
    bundle_dir: Path,
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
) -> None:
    detector, _, decisions = _run(
        broker, bundle_dir, topic_factory, producer_factory, consume_all, fail_first_commit=True
    )
    ids = Counter(r.key.decode() for r in decisions)
    assert set(ids) == {f"tx-{i}" for i in range(2 * PER_PARTITION)}
    assert detector.delivery.transactions["aborted"] == 1
    # The embedded broker shows the aborted batch to read_committed readers (Apache Kafka
    # hides it): its decisions (at most a batch, 50) appear twice here.
    assert 0 < sum(n - 1 for n in ids.values()) <= 50
