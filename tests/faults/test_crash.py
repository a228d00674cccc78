"""Scenarios 1 and 3, fast variants: ``kill -9`` and SIGTERM of ``serve`` mid-stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_detector.testing.faults.scenarios import run_kill_scenario, run_sigterm_scenario

pytestmark = pytest.mark.integration


def test_kill_9_at_every_phase_loses_nothing_and_doubles_no_alert(
    broker: Any, fault_bundle: Path, tmp_path: Path
) -> None:
    # One kill at each phase here; benchmarks/faults.py adds kills at random moments.
    result = run_kill_scenario(broker, fault_bundle, tmp_path, n_events=2000, kills=3, seed=1)
    result.report.assert_ok()
    assert result.faults == 3
    hits = result.notes["kills_at"]
    assert hits["decided"] >= 1
    assert hits["published"] >= 1
    assert hits["committed"] >= 1
    # A kill after publishing and before committing replays that batch: decisions repeat
    # (at-least-once), which is what makes "no duplicated alert" mean something.
    assert result.report.duplicated_decisions
    assert result.notes["final_exit"] == 0


def test_sigterm_mid_stream_loses_and_repeats_nothing(
    broker: Any, fault_bundle: Path, tmp_path: Path
) -> None:
    result = run_sigterm_scenario(
        broker, fault_bundle, tmp_path, n_events=1200, stops=2, rate=300.0, seed=2
    )
    result.report.assert_ok(exactly_once_decisions=True)
    assert result.notes["exit_codes"] == [0, 0, 0]
    assert result.notes["stopped_mid_stream"] == 2
