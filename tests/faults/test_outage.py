"""Scenarios 4 and 5, fast variants: a broker outage, and a model slower than the poll interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_detector.testing.faults.scenarios import run_outage_scenario, run_slow_scenario

pytestmark = pytest.mark.integration


# An Apache Kafka broker takes longer to come back than the 8 s give-up window used here;
# benchmarks/faults.py --broker apache runs this scenario with a longer one.
@pytest.mark.broker_kinds("tansu")
def test_broker_outage_reconnects_by_itself_then_gives_up_when_the_broker_stays_away(
    broker_kind: str, fault_bundle: Path, tmp_path: Path
) -> None:
    result = run_outage_scenario(
        fault_bundle,
        tmp_path,
        n_events=2000,
        rate=600.0,
        outage_s=2.0,
        give_up_after_s=8.0,
        kind=broker_kind,
    )
    result.report.assert_ok()
    # What the old broker wrote but could not acknowledge before it died is sent again to the
    # new one: at most the batch in flight (serve_env's batch_size).
    assert len(result.report.alerts_resent_after_broker_loss) <= 100
    notes = result.notes
    assert notes["ready_before"] == 200
    assert 503 in notes["ready_during"], notes
    assert notes["ready_after"] == 200
    assert notes["alive_after_outage"]
    # The second broker never comes back: one line, exit code 2.
    assert notes["exit_code_when_broker_gone"] == 2, notes
    assert notes["last_line"].startswith(
        "stream-detector: error: the broker has been unreachable for "
    ), notes


def test_model_slower_than_max_poll_interval_neither_crash_loops_nor_loses(
    broker: Any, fault_bundle: Path
) -> None:
    # 300 messages at 10 ms each: 3 s, well over the 2 s interval; the pacer then keeps
    # batches at about 1 s (half the interval).
    result = run_slow_scenario(
        broker,
        fault_bundle,
        n_events=360,
        ms_per_row=10.0,
        max_poll_interval_ms=2000,
        batch_size=300,
    )
    result.report.assert_ok(exactly_once_decisions=True)
    notes = result.notes
    assert notes["alive"], notes
    assert "error" not in notes, notes
    assert notes["replayed_fenced"] >= 1, notes  # the overrun batch was dropped, not committed
    assert notes["assignments"] <= 3, notes  # no rebalance loop
    # Only valid events are scored (slowly): a full batch at the limit takes at most 1 s.
    assert notes["batch_limit"] * notes["scored_share"] * 10.0 <= 1000.0, notes
    assert notes["batch_limit"] < 300, notes
