"""The service with behavioural features on the real broker: the decisions ``score`` makes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream_detector.backfill import backfill
from stream_detector.bundle import load_bundle
from stream_detector.cli import main
from stream_detector.service import Detector

from .conftest import FeatureWorld
from .test_service import Running, run_detector, settings_for, topics  # noqa: F401

pytestmark = pytest.mark.integration


def by_day(path: Path) -> dict[int, list[tuple[str, bytes]]]:
    """JSON lines of events or labels grouped by the day in their ``event_id`` (tx-<day>-<n>)."""
    days: dict[int, list[tuple[str, bytes]]] = {}
    for line in path.read_bytes().splitlines():
        event_id = orjson.loads(line)["event_id"]
        days.setdefault(int(event_id.split("-")[1]), []).append((event_id, line))
    return days


def stream_days(
    world: FeatureWorld,
    names: dict[str, str],
    producer: Any,
    consume_all: Callable[..., list[Any]],
) -> list[Any]:
    """Each live day's events, then its labels, waiting for the day's decisions in between:
    the labels reach the service long before the 2-day delayed windows need them."""
    events, labels = by_day(world.live), by_day(world.labels)
    sent = 0
    for day in sorted(events):
        for event_id, line in events[day]:
            # One partition: the events arrive in time order, as score reads them.
            producer.send(names["events"], key=event_id.encode(), value=line, partition=0)
        producer.flush()
        sent += len(events[day])
        consume_all(names["decisions"], sent, timeout=90, settle=0.2)
        for event_id, line in labels[day]:
            producer.send(names["labels"], key=event_id.encode(), value=line)
        producer.flush()
    return consume_all(names["decisions"], sent, timeout=90, settle=1.0)


def score_file(world: FeatureWorld, out: Path) -> dict[str, dict[str, Any]]:
    argv = ["score", "--model", str(world.bundle), "--input", str(world.live)]
    argv += ["--output", str(out), "--history", str(world.history), "--labels", str(world.labels)]
    assert main(argv) == 0
    return {d["event_id"]: d for d in map(orjson.loads, out.read_bytes().splitlines())}


def test_serve_decides_as_score_with_history_and_labels(
    broker: Any,
    topics: dict[str, str],  # noqa: F811
    feature_world: FeatureWorld,
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
    run_detector: Callable[[Detector], Running],  # noqa: F811
    tmp_path: Path,
) -> None:
    bundle = load_bundle(feature_world.bundle)
    registry = CollectorRegistry()
    detector = Detector(settings_for(broker, topics), bundle, registry=registry)
    assert detector.decider.engine is not None
    backfill(detector.decider.engine, bundle, feature_world.history)
    running = run_detector(detector)
    decisions = stream_days(feature_world, topics, producer_factory(linger_ms=5), consume_all)

    expected = score_file(feature_world, tmp_path / "scored.jsonl")
    served = {r.key.decode(): orjson.loads(r.value) for r in decisions}
    assert len(decisions) == len(served) == feature_world.n_live == len(expected)
    gaps = [abs(d["score"] - expected[e]["score"]) for e, d in served.items()]
    assert max(gaps) <= 1e-9
    assert [served[e]["flagged"] for e in expected] == [d["flagged"] for d in expected.values()]
    assert any(d["flagged"] for d in served.values())

    # The metrics of the features and the store.
    assert registry.get_sample_value("stream_detector_feature_seconds_count") >= 1
    assert registry.get_sample_value("stream_detector_store_round_trips_total") >= 2
    assert registry.get_sample_value("stream_detector_store_keys") > 0
    assert registry.get_sample_value("stream_detector_store_errors_total") == 0
    assert running.get("/readyz")[0] == 200
    assert np.isfinite(registry.get_sample_value("stream_detector_store_seconds_sum"))
