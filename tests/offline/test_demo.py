"""`make demo` end to end, small: broker, simulate, train, serve, stream, summary, clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.integration
def test_demo_runs_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_detector",
            "demo",
            "--workdir",
            str(tmp_path),
            "--technique",
            "class_weight",
            "--history-days",
            "14",
            "--events",
            "600",
            "--rate",
            "3000",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "[5/5] summary" in out
    assert "decisions received   600" in out
    assert "events streamed      600 valid + 1 malformed" in out
    assert "dead letters         1 (not_json)" in out
    assert "events_total=601" in out
    assert "events_invalid_total=1" in out
    assert "serve exit code      0" in out
    # Events stamped with the wall clock when sent: the lag falls in the histogram's buckets
    # (simulated timestamps would put it above every one of them).
    lag = next(line for line in out.splitlines() if line.startswith("  event lag "))
    assert lag.startswith("  event lag            median <= "), lag
    assert ", p99 <= " in lag, lag
    n_alerts = out.count("\nALERT ") + out.startswith("ALERT ")
    assert f"alerts               {n_alerts} (" in out
    assert (tmp_path / "model" / "manifest.json").is_file()
    assert (tmp_path / "serve.log").is_file()


def test_demo_rejects_bad_flags(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_detector",
            "demo",
            "--workdir",
            str(tmp_path),
            "--events",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("stream-detector: error: --events")
