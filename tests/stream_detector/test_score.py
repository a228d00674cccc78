"""The ``score`` command: events in JSON Lines to decisions, in order; its user errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stream_detector.bundle import load_bundle
from stream_detector.cli import main

from .conftest import training_data


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
