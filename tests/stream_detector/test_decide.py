from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from offline.data import spec_features
from stream_detector.backfill import backfill
from stream_detector.bundle import load_bundle
from stream_detector.decide import Decider
from stream_detector.errors import ConfigError
from stream_detector.history import read_labels, read_table
from stream_detector.messages import Message, Source

from .conftest import FeatureWorld, training_data


def messages(rows: np.ndarray, *, with_ids: bool = True) -> list[Message]:
    out = []
    for i, (amount, hour, distance) in enumerate(rows.tolist()):
        body = {
            "amount": amount,
            "hour_of_day": hour,
            "distance": distance,
            "entity_id": "c-1",
            "timestamp": 1_700_000_000_000 + i,
        }
        if with_ids:
            body["event_id"] = f"tx-{i}"
        out.append(Message(None, orjson.dumps(body), Source("events", 1, 100 + i)))
    return out


def test_decisions_follow_the_model_and_threshold(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    X, _ = training_data(300, seed=5)
    outcome = Decider(bundle).decide(messages(X))
    scores = bundle.score_samples(X)
    assert [d["event_id"] for d in outcome.decisions] == [f"tx-{i}" for i in range(300)]
    np.testing.assert_array_equal([d["score"] for d in outcome.decisions], scores)
    assert [d["flagged"] for d in outcome.decisions] == (scores >= 0.5).tolist()
    assert len(outcome.alerts) == int((scores >= 0.5).sum()) > 0
    d = outcome.decisions[7]
    assert set(d) == {
        "event_id",
        "entity_id",
        "timestamp",
        "score",
        "threshold",
        "threshold_mode",
        "flagged",
        "model_version",
        "source",
    }
    assert d["threshold_mode"] == "fixed"
    assert d["source"] == {"topic": "events", "partition": 1, "offset": 107}
    assert (d["entity_id"], d["timestamp"], d["model_version"]) == (
        "c-1",
        1_700_000_000_007,
        bundle.model_version,
    )


def test_without_decisions_the_alerts_and_columns_are_the_same(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    X, _ = training_data(300, seed=5)
    batch = messages(X[:150]) + messages(X[150:], with_ids=False)
    full = Decider(bundle).decide(batch, now=1.7e9)
    lean = Decider(bundle).decide(batch, now=1.7e9, decisions=False)
    assert lean.decisions == []
    assert len(full.alerts) > 0
    assert lean.alerts == full.alerts
    assert lean.alert_positions == full.alert_positions
    assert lean.event_ids == full.event_ids == [d["event_id"] for d in full.decisions]
    assert lean.flagged == full.flagged == [d["flagged"] for d in full.decisions]
    assert full.event_ids[150] == "events-1-100"
    np.testing.assert_array_equal(lean.scores, full.scores)
    assert lean.lags_seconds == full.lags_seconds


def test_alerts_carry_reasons_that_explain_the_score(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    X, _ = training_data(300, seed=5)
    outcome = Decider(bundle, reasons_top=2).decide(messages(X))
    for alert, pos in zip(outcome.alerts, outcome.alert_positions, strict=True):
        assert alert["flagged"]
        assert outcome.decisions[pos]["event_id"] == alert["event_id"]
        assert 1 <= len(alert["reasons"]) <= 2
        contributions = [r["contribution"] for r in alert["reasons"]]
        assert contributions == sorted(contributions, key=abs, reverse=True)
        assert all(c != 0 for c in contributions)
        assert {r["feature"] for r in alert["reasons"]} <= set(bundle.features)


def test_all_the_reasons_of_an_alert_add_up_to_its_score(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    X, _ = training_data(300, seed=5)
    d = len(bundle.features)
    outcome = Decider(bundle, reasons_top=d).decide(messages(X))
    base = bundle.scorer.attribute(X[:1], bundle.reference).scores().base[0]
    assert outcome.alerts
    for alert in outcome.alerts:
        total = sum(r["contribution"] for r in alert["reasons"])
        assert total == pytest.approx(alert["score"] - base, abs=1e-9)
        assert all(r["contribution_logit"] * r["contribution"] > 0 for r in alert["reasons"])


def test_threshold_override_and_validation(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    X, _ = training_data(100, seed=1)
    outcome = Decider(bundle, threshold=0.0).decide(messages(X))
    assert all(d["flagged"] and d["threshold"] == 0.0 for d in outcome.decisions)
    with pytest.raises(ConfigError, match=r"threshold must be in \[0, 1\]; got 1.3"):
        Decider(bundle, threshold=1.3)


def test_missing_event_id_defaults_to_topic_partition_offset(bundle_dir: Path) -> None:
    X, _ = training_data(2, seed=1)
    outcome = Decider(load_bundle(bundle_dir)).decide(messages(X, with_ids=False))
    assert [d["event_id"] for d in outcome.decisions] == ["events-1-100", "events-1-101"]


def test_bad_messages_become_dead_letters_and_neighbours_are_unaffected(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    X, _ = training_data(4, seed=2)
    good = messages(X)
    bad = [
        Message(b"k1", b"nope", Source("events", 0, 1)),
        Message(b"k2", b'{"amount": 1}', Source("events", 0, 2)),
    ]
    outcome = Decider(bundle).decide([good[0], bad[0], good[1], bad[1], good[2], good[3]])
    assert [d["event_id"] for d in outcome.decisions] == ["tx-0", "tx-1", "tx-2", "tx-3"]
    assert [(dl.message.key, dl.error.reason) for dl in outcome.dead_letters] == [
        (b"k1", "not_json"),
        (b"k2", "missing_feature"),
    ]
    alone = Decider(bundle).decide(good)
    assert [d["score"] for d in outcome.decisions] == [d["score"] for d in alone.decisions]


def test_a_batch_of_only_bad_messages(bundle_dir: Path) -> None:
    outcome = Decider(load_bundle(bundle_dir)).decide([Message(None, None, Source("e", 0, 0))])
    assert outcome.decisions == []
    assert len(outcome.dead_letters) == 1


def test_event_lag_is_measured_from_the_event_timestamp(bundle_dir: Path) -> None:
    X, _ = training_data(3, seed=1)
    outcome = Decider(load_bundle(bundle_dir)).decide(messages(X), now=1_700_000_010.0)
    assert outcome.lags_seconds == pytest.approx([10.0, 9.999, 9.998])


# -- behavioural features ----------------------------------------------------------------------


def _raw(i: int, **fields: object) -> Message:
    return Message(None, orjson.dumps(fields), Source("events", 0, i))


def test_feature_batches_equal_the_offline_pass_after_a_backfill(
    feature_world: FeatureWorld,
) -> None:
    """Batches of 97 events in arrival order, labels added before each batch as the service
    does: the features are the offline pass's over history + live, bit for bit."""
    bundle = load_bundle(feature_world.bundle)
    decider = Decider(bundle)
    assert decider.engine is not None
    backfill(decider.engine, bundle, feature_world.history)
    lines = feature_world.live.read_bytes().splitlines()
    labels = read_labels(feature_world.labels)
    frame = read_table(feature_world.all_rows)
    X, order, _ = spec_features(frame, bundle.spec, frame["is_fraud"].to_numpy())  # type: ignore[arg-type]
    row = {str(e): i for i, e in enumerate(frame["event_id"].to_numpy()[order])}
    got, ids = [], []
    for start in range(0, len(lines), 97):
        batch = [_message(line, start + j) for j, line in enumerate(lines[start : start + 97])]
        latest = max(orjson.loads(m.value)["timestamp"] for m in batch)  # type: ignore[arg-type]
        known = labels["known_at"] <= latest
        decider.add_labels({name: values[known] for name, values in labels.items()})
        labels = {name: values[~known] for name, values in labels.items()}
        outcome = decider.decide(batch)
        assert not outcome.dead_letters
        got.append(outcome.features)
        ids += outcome.event_ids
    assert np.array_equal(np.concatenate(got), X[[row[e] for e in ids]])
    gaps = np.concatenate(got)[:, bundle.features.index("customer_id.since_previous")]
    assert (gaps > 0).any()  # an entry with only since_previous, computed
    assert (gaps == -1).any()
    assert decider.last_stats is not None
    assert decider.last_stats.round_trips >= 1


def _message(line: bytes, offset: int) -> Message:
    return Message(None, line, Source("events", 0, offset))


def test_events_without_keys_or_time_and_late_events_are_dead_lettered(
    feature_world: FeatureWorld,
) -> None:
    decider = Decider(load_bundle(feature_world.bundle))
    day = 86_400_000
    base = {"customer_id": "c-1", "terminal_id": "t-1", "amount": 10.0}
    batch = [
        _raw(0, event_id="a", timestamp=5 * day, **base),
        _raw(1, event_id="b", timestamp=5 * day, terminal_id="t-1", amount=1.0),
        _raw(2, event_id="c", **base),
        _raw(3, event_id="d", timestamp="yesterday", **base),
        _raw(4, event_id="e", timestamp=5 * day - 2 * day, **base),  # 2 days behind c-1
        _raw(5, event_id="f", timestamp=5 * day - day // 2, **base),  # within the lateness
    ]
    outcome = decider.decide(batch)
    reasons = {d.message.source.offset: d.error.reason for d in outcome.dead_letters}
    assert reasons == {1: "missing_key", 2: "bad_timestamp", 3: "bad_timestamp", 4: "too_late"}
    assert outcome.event_ids == ["a", "f"]
    assert len(outcome.scores) == outcome.features.shape[0] == 2
    assert "more than 1d behind" in str(
        next(d.error for d in outcome.dead_letters if d.error.reason == "too_late")
    )
