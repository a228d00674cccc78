"""The online monitor around batches, without a broker: thresholds, labels, metrics, health."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream_detector.bundle import load_bundle
from stream_detector.config import DetectorSettings
from stream_detector.decide import Decider
from stream_detector.errors import ConfigError
from stream_detector.messages import Message, Source
from stream_detector.metrics import DetectorMetrics
from stream_detector.online import OnlineMonitor, cold_start_bundle, reference_prior

from ..conftest import training_data


def event_messages(X: np.ndarray, start: int = 0) -> list[Message]:
    return [
        Message(
            None,
            orjson.dumps(
                {"event_id": f"tx-{start + i}", "amount": a, "hour_of_day": h, "distance": d}
            ),
            Source("events", 0, start + i),
        )
        for i, (a, h, d) in enumerate(X.tolist())
    ]


def label_messages(pairs: list[tuple[str, int]]) -> list[Message]:
    return [
        Message(e.encode(), orjson.dumps({"event_id": e, "label": y}), Source("labels", 0, i))
        for i, (e, y) in enumerate(pairs)
    ]


def make(bundle_dir: Path, **overrides: object) -> tuple[OnlineMonitor, Decider, CollectorRegistry]:
    registry = CollectorRegistry()
    bundle = load_bundle(bundle_dir)
    monitor = OnlineMonitor(
        DetectorSettings.load(overrides=overrides), bundle, metrics=DetectorMetrics(registry)
    )
    return monitor, Decider(bundle), registry


def test_labels_are_joined_counted_and_move_the_prior(bundle_dir: Path) -> None:
    monitor, decider, registry = make(bundle_dir, online={"prior": {"strength": 10}})
    prior0 = monitor.reference_prior
    assert registry.get_sample_value("stream_detector_class_prior") == prior0
    assert math.isnan(registry.get_sample_value("stream_detector_alert_precision") or 0.0)
    X, y = training_data(400, seed=9)
    decider.threshold, decider.threshold_mode = monitor.threshold_for_batch()
    outcome = decider.decide(event_messages(X))
    flagged = np.array([d["flagged"] for d in outcome.decisions])
    pairs = [(f"tx-{i}", int(y[i])) for i in range(400)] + [("tx-unknown", 1)]
    batch = monitor.parse_labels(
        [*label_messages(pairs), Message(None, b"{", Source("labels", 0, 999))]
    )
    assert [d.error.reason for d in batch.dead_letters] == ["not_json"]
    monitor.observe(outcome, batch)

    value = registry.get_sample_value
    assert value("stream_detector_labels_total", {"label": "1"}) == y.sum() + 1
    assert value("stream_detector_labels_total", {"label": "0"}) == 400 - y.sum()
    assert value("stream_detector_labels_invalid_total", {"reason": "not_json"}) == 1
    assert value("stream_detector_labels_unmatched_total") == 1
    all_labels = np.r_[y, 1]
    expected_prior = (all_labels.sum() + 10 * prior0) / (all_labels.size + 10)
    assert value("stream_detector_class_prior") == pytest.approx(expected_prior)
    assert value("stream_detector_alert_precision") == pytest.approx(y[flagged].mean())
    assert value("stream_detector_alert_recall") == pytest.approx(flagged[y == 1].mean())
    # How many labels the live figures stand on (the window is larger than 400 here).
    assert value("stream_detector_alert_precision_labels") == flagged[:400].sum()
    assert value("stream_detector_alert_recall_labels") == y[:400].sum()
    health = monitor.health()
    assert health["feedback"] == {
        "remembered": 0,
        "joined": 400,
        "unmatched": 1,
        "precision": pytest.approx(y[flagged].mean()),
        "recall": pytest.approx(flagged[y == 1].mean()),
    }
    assert health["class_prior"]["labels"] == 401
    assert health["threshold"] == {
        "in_force": 0.5,
        "mode": "fixed",
        "threshold": 0.5,
        "budget": 0.01,
    }


def test_prior_corrected_threshold_follows_the_labels(bundle_dir: Path) -> None:
    monitor, _, registry = make(
        bundle_dir,
        threshold_mode="prior_corrected",
        online={"prior": {"strength": 0, "window_size": 1000}},
    )
    ref = monitor.reference_prior
    assert monitor.threshold_for_batch() == (pytest.approx(0.5), "prior_corrected")
    live = min(ref * 2, 0.9)
    n_pos = round(live * 1000)
    monitor.observe(
        Decider(monitor.bundle).decide([]),
        monitor.parse_labels(label_messages([(f"x{i}", int(i < n_pos)) for i in range(1000)])),
    )
    t, mode = monitor.threshold_for_batch()
    p = n_pos / 1000
    shift = math.log(p / (1 - p)) - math.log(ref / (1 - ref))
    assert mode == "prior_corrected"
    assert t == pytest.approx(1 / (1 + math.exp(shift)))
    assert registry.get_sample_value("stream_detector_threshold") == t
    assert (
        registry.get_sample_value("stream_detector_threshold_mode", {"mode": "prior_corrected"})
        == 1
    )
    assert registry.get_sample_value("stream_detector_threshold_mode", {"mode": "fixed"}) == 0


def test_reference_prior_prefers_the_validation_prior(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    assert reference_prior(bundle) == bundle.manifest.class_prior_train  # no validation prior
    with_validation = type(bundle)(
        bundle.manifest.model_copy(update={"class_prior_validation": 0.123}),
        bundle.scorer,
        bundle.reference,
    )
    assert reference_prior(with_validation) == 0.123


def test_cold_start_flags_nothing_while_warming_up_and_learns_valid_events() -> None:
    bundle = cold_start_bundle(
        features=["amount"],
        threshold=0.99,
        class_prior=0.01,
        n_trees=5,
        height=6,
        window_size=50,
        warmup=300,
    )
    monitor = OnlineMonitor(DetectorSettings.load(), bundle)
    decider = Decider(bundle)
    rng = np.random.default_rng(1)
    for start in range(0, 600, 100):
        messages = [
            Message(None, orjson.dumps({"amount": float(a)}), Source("e", 0, start + i))
            for i, a in enumerate(rng.gamma(2, 30, 100))
        ]
        messages.append(Message(None, b'{"amount": "bad"}', Source("e", 0, 10_000 + start)))
        decider.threshold, decider.threshold_mode = monitor.threshold_for_batch()
        outcome = decider.decide(messages)
        assert len(outcome.dead_letters) == 1
        if start < 300:
            assert decider.threshold_mode == "alert_rate"  # the cold-start default
            assert decider.threshold == 1.0
            assert not outcome.alerts
        monitor.observe(outcome)
    assert monitor.health()["cold_start"] == {"learned": 600, "warming_up": False}
    t, mode = monitor.threshold_for_batch()
    assert (mode, t) == ("alert_rate", 0.99)  # fewer scores than min_scores: the fallback


def test_prior_corrected_is_refused_for_anomaly_scores() -> None:
    bundle = cold_start_bundle(features=["amount"], threshold=0.99, class_prior=0.01)
    with pytest.raises(ConfigError, match="prior_corrected needs scores"):
        OnlineMonitor(
            DetectorSettings.load(overrides={"threshold_mode": "prior_corrected"}), bundle
        )


def test_apply_settings_changes_mode_threshold_and_budget(bundle_dir: Path) -> None:
    monitor, _, registry = make(bundle_dir)
    monitor.apply_settings(
        DetectorSettings.load(
            overrides={
                "threshold": 0.7,
                "threshold_mode": "alert_rate",
                "online": {"alert_rate": {"budget": 0.05}},
            }
        ),
        source="sighup",
    )
    state = monitor.thresholds.state
    assert (state.mode, state.threshold, state.budget) == ("alert_rate", 0.7, 0.05)
    assert (
        registry.get_sample_value("stream_detector_threshold_changes_total", {"source": "sighup"})
        == 1
    )
    assert registry.get_sample_value("stream_detector_threshold") == 0.7
    monitor.apply_settings(DetectorSettings.load(), source="sighup")  # back to the bundle's
    assert monitor.thresholds.state.threshold == 0.5
    assert monitor.thresholds.state.mode == "fixed"
