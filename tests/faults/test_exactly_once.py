"""Scenario 7, fast variant: exactly-once under ``kill -9`` and a fenced zombie (Apache Kafka)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_detector.testing.faults.scenarios import run_exactly_once_scenario

# Tansu shows aborted records to read_committed readers: exactly-once output needs Apache Kafka.
pytestmark = [pytest.mark.integration, pytest.mark.broker_kinds("apache")]


def test_kill_9_and_a_zombie_leave_every_input_exactly_once(
    broker: Any, fault_bundle: Path, tmp_path: Path
) -> None:
    # One kill at each phase here; benchmarks/faults.py makes 20 and more.
    result = run_exactly_once_scenario(
        broker, fault_bundle, tmp_path, n_events=1500, kills=4, seed=7
    )
    result.report.assert_ok(exactly_once_decisions=True)
    notes = result.notes
    assert notes["kills_at"]["published"] >= 1, notes  # a transaction open when killed
    assert notes["aborted_records_hidden"] > 0, notes  # aborted outputs exist, unseen
    assert notes["zombie_paused"], notes
    assert notes["replacement_assigned"], notes
    assert notes["zombie_refused"], notes
    assert notes["final_exit"] == 0, notes
