"""Scenario 2, fast variant: replicas in one group, one added and one killed mid-stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_detector.testing.faults.scenarios import run_replica_scenario

pytestmark = pytest.mark.integration


def test_replica_added_and_replica_killed_lose_nothing_and_double_no_alert(
    broker: Any, fault_bundle: Path, tmp_path: Path
) -> None:
    result = run_replica_scenario(broker, fault_bundle, tmp_path, n_events=3000, rate=400.0, seed=3)
    result.report.assert_ok()
    notes = result.notes
    assert notes["every_replica_assigned"], notes
    assert notes["survivors_cover_all_partitions"], notes
    assert sum(notes["rebalances"].values()) >= 4, notes  # a and b, then c's join or the kill
    assert set(notes["exit_codes"].values()) == {0}


# Tansu never completes the second round of a cooperative rebalance (the revoked partitions
# stay unassigned); Apache Kafka does.
@pytest.mark.broker_kinds("apache")
def test_cooperative_rebalances_lose_nothing_and_double_no_alert(
    broker: Any, fault_bundle: Path, tmp_path: Path
) -> None:
    result = run_replica_scenario(
        broker,
        fault_bundle,
        tmp_path,
        n_events=3000,
        rate=400.0,
        seed=4,
        assignor="cooperative-sticky",
    )
    result.report.assert_ok()
    notes = result.notes
    assert notes["every_replica_assigned"], notes
    assert notes["survivors_cover_all_partitions"], notes
    assert set(notes["exit_codes"].values()) == {0}
