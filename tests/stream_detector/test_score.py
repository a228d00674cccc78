"""The ``score`` command: events in JSON Lines to decisions, in order; its user errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from offline.data import spec_features
from offline.evaluation import evaluate_bundle
from stream_detector.bundle import load_bundle
from stream_detector.cli import main
from stream_detector.history import read_table

from .conftest import TIME_FIELD, FeatureWorld, training_data


def read_decisions(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_score_writes_one_decision_per_event_in_order(
    bundle_dir: Path, score_events: Callable[..., tuple[int, list[dict]]]
) -> None:
    X, _ = training_data(500, seed=11)
    code, out = score_events(X)
    assert code == 0
    assert [d["event_id"] for d in out] == [f"tx-{i}" for i in range(500)]
    expected = load_bundle(bundle_dir).score_samples(X)
    np.testing.assert_allclose([d["score"] for d in out], expected, rtol=0, atol=1e-12)
    assert [d["flagged"] for d in out] == (expected >= 0.5).tolist()
    assert all(("reasons" in d) == d["flagged"] for d in out)


def test_score_threshold_flag(score_events: Callable[..., tuple[int, list[dict]]]) -> None:
    X, _ = training_data(20, seed=1)
    code, out = score_events(X, "--threshold", "1")
    assert code == 0
    assert {d["threshold"] for d in out} == {1.0}


def test_invalid_lines_are_reported_and_skipped(
    score_events: Callable[..., tuple[int, list[dict]]], capsys: pytest.CaptureFixture[str]
) -> None:
    X, _ = training_data(3, seed=1)
    invalid = {1: b'{"amount": "x"}'}
    code, out = score_events(X, extra_lines=invalid)
    assert code == 0
    assert [d["event_id"] for d in out] == ["tx-0", "tx-1", "tx-2"]
    err = capsys.readouterr().err
    assert "line 2: missing_feature" in err or "line 2: non_numeric" in err
    assert score_events(X, "--strict", extra_lines=invalid)[0] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "--model", "MISSING"], "is not a directory"),
        (["score", "--model", "BUNDLE", "--input", "MISSING"], "cannot read input"),
        (
            ["score", "--model", "BUNDLE", "--input", "IN", "--threshold", "2"],
            "argument --threshold: must be in [0, 1]; got 2",
        ),
        (
            ["score", "--model", "BUNDLE", "--threshold", "abc"],
            "argument --threshold: must be a number in [0, 1]; got 'abc'",
        ),
        (["score"], "the following arguments are required: --model"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    bundle_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "in.jsonl").write_text("")
    subst = {
        "MISSING": str(tmp_path / "missing"),
        "BUNDLE": str(bundle_dir),
        "IN": str(tmp_path / "in.jsonl"),
    }
    assert main([subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("stream-detector")
    assert message in err


# -- behavioural features: score replays what the offline path computes --------------------


def _offline(world: FeatureWorld) -> tuple[dict[str, int], np.ndarray]:
    """The offline features of history + live in one pass (labels known at event time)."""
    frame = read_table(world.all_rows)
    bundle = load_bundle(world.bundle)
    assert bundle.spec is not None
    X, order, _ = spec_features(frame, bundle.spec, frame["is_fraud"].to_numpy())
    ids = frame["event_id"].to_numpy()[order]
    return {str(e): i for i, e in enumerate(ids)}, X


def test_score_with_history_and_labels_equals_the_offline_features(
    feature_world: FeatureWorld, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    argv = ["score", "--model", str(feature_world.bundle), "--input", str(feature_world.live)]
    argv += ["--output", str(out), "--history", str(feature_world.history)]
    assert main([*argv, "--labels", str(feature_world.labels)]) == 0
    decisions = read_decisions(out)
    assert len(decisions) == feature_world.n_live
    row, X = _offline(feature_world)
    bundle = load_bundle(feature_world.bundle)
    expected = bundle.score_samples(X[[row[d["event_id"]] for d in decisions]])
    np.testing.assert_allclose([d["score"] for d in decisions], expected, rtol=0, atol=1e-9)
    assert 0 < sum(d["flagged"] for d in decisions) < len(decisions)
    flagged = [d for d in decisions if d["flagged"]]
    names = set(bundle.features)
    assert all(r["feature"] in names for d in flagged for r in d["reasons"])


def test_score_without_the_labels_misses_the_label_features(
    feature_world: FeatureWorld, tmp_path: Path
) -> None:
    """The labels file matters: without it the terminals' live frauds are unknown."""
    out = tmp_path / "out.jsonl"
    argv = ["score", "--model", str(feature_world.bundle), "--input", str(feature_world.live)]
    assert main([*argv, "--output", str(out), "--history", str(feature_world.history)]) == 0
    row, X = _offline(feature_world)
    decisions = read_decisions(out)
    expected = load_bundle(feature_world.bundle).score_samples(
        X[[row[d["event_id"]] for d in decisions]]
    )
    assert np.abs(np.array([d["score"] for d in decisions]) - expected).max() > 1e-6


def test_the_event_time_comes_from_the_field_the_spec_names(
    feature_world: FeatureWorld, renamed_world: FeatureWorld, tmp_path: Path
) -> None:
    """Events and history with their time in ``event_time`` (and a ``timestamp`` a day off,
    ignored) give the features and scores of the same events timed in ``timestamp``."""
    spec, renamed = load_bundle(feature_world.bundle).spec, load_bundle(renamed_world.bundle).spec
    assert spec is not None
    assert renamed is not None
    assert renamed.timestamp == TIME_FIELD
    X, order, ts = spec_features(read_table(feature_world.history), spec, None)
    X2, order2, ts2 = spec_features(read_table(renamed_world.history), renamed, None)
    np.testing.assert_array_equal(order, order2)
    np.testing.assert_array_equal(ts, ts2)
    np.testing.assert_array_equal(X, X2)

    def score(world: FeatureWorld) -> list[dict]:
        out = tmp_path / f"{world.bundle.parent.name}.jsonl"
        argv = ["score", "--model", str(world.bundle), "--input", str(world.live)]
        argv += ["--output", str(out), "--history", str(world.history)]
        assert main([*argv, "--labels", str(world.labels), "--strict"]) == 0
        return read_decisions(out)

    expected, got = score(feature_world), score(renamed_world)
    assert len(got) == renamed_world.n_live
    assert [d["event_id"] for d in got] == [d["event_id"] for d in expected]
    assert [d["timestamp"] for d in got] == [d["timestamp"] for d in expected]
    np.testing.assert_allclose(
        [d["score"] for d in got], [d["score"] for d in expected], rtol=0, atol=1e-12
    )


def test_evaluate_with_history_and_labels_scores_as_score_replays(
    feature_world: FeatureWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``evaluate --history --labels`` measures the scores ``score --history --labels``
    gives the same events (the live stream as a labelled table)."""
    out = tmp_path / "out.jsonl"
    argv = ["score", "--model", str(feature_world.bundle), "--input", str(feature_world.live)]
    argv += ["--output", str(out), "--history", str(feature_world.history)]
    assert main([*argv, "--labels", str(feature_world.labels)]) == 0
    replayed = {d["event_id"]: d["score"] for d in read_decisions(out)}
    frame = read_table(feature_world.all_rows)
    live = frame[frame["event_id"].isin(list(replayed))]
    live.to_csv(tmp_path / "live.csv", index=False)
    ev = evaluate_bundle(
        feature_world.bundle,
        tmp_path / "live.csv",
        "is_fraud",
        history=feature_world.history,
        labels=feature_world.labels,
    )
    ids = live.sort_values(["timestamp", "event_id"])["event_id"].tolist()
    assert ev.metrics.n == len(ids) == feature_world.n_live
    np.testing.assert_allclose(ev.scores, [replayed[e] for e in ids], rtol=0, atol=1e-9)
    # Without them, each label is known at its own event's time over the file alone: other
    # features, other scores.
    alone = evaluate_bundle(feature_world.bundle, tmp_path / "live.csv", "is_fraud")
    assert np.abs(alone.scores - ev.scores).max() > 1e-6

    evaluate = [
        "evaluate",
        "--model",
        str(feature_world.bundle),
        "--data",
        str(tmp_path / "live.csv"),
    ]
    evaluate += ["--label", "is_fraud", "--history", str(feature_world.history)]
    capsys.readouterr()
    assert (
        main([*evaluate, "--labels", str(feature_world.labels), "--report", str(tmp_path / "r")])
        == 0
    )
    assert f"{len(ids)} rows" in capsys.readouterr().out
    metrics = orjson.loads((tmp_path / "r" / "metrics.json").read_bytes())
    assert metrics["pr_auc"] == pytest.approx(ev.metrics.pr_auc, abs=1e-12)


def test_history_and_labels_need_a_feature_spec(
    bundle_dir: Path, feature_world: FeatureWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["score", "--model", str(bundle_dir), "--history", str(feature_world.history)]
    assert main(argv) == 2
    assert "need a bundle with a feature spec" in capsys.readouterr().err
