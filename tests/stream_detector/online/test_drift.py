"""ADWIN drift detection on scores, feature chunk means and labels."""

from __future__ import annotations

import numpy as np
import pytest

from stream_detector.errors import ConfigError
from stream_detector.online import DriftMonitor


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_stationary_stream_raises_no_alarm_and_a_shift_is_found() -> None:
    rng = np.random.default_rng(7)
    clock = Clock()
    monitor = DriftMonitor(features=["amount", "hour"], chunk_size=200, hold_s=60, clock=clock)
    for _ in range(60):  # 30,000 events in batches of varying size
        n = int(rng.integers(100, 900))
        X = np.column_stack([rng.gamma(2, 30, n), rng.uniform(0, 24, n)])
        assert monitor.update(rng.beta(1, 30, n).tolist(), X) == []
        assert monitor.update_labels((rng.uniform(size=n) < 0.01).astype(int).tolist()) == []
    assert monitor.drifting() == []
    clock.now = 2_000.0
    fired: set[str] = set()
    for _ in range(20):
        n = 500
        X = np.column_stack([rng.gamma(2, 60, n), rng.uniform(0, 24, n)])  # amounts double
        fired.update(monitor.update(rng.beta(1, 30, n).tolist(), X))
        fired.update(monitor.update_labels((rng.uniform(size=n) < 0.05).astype(int).tolist()))
    assert fired == {"feature:amount", "labels"}  # the scores and the hour did not move
    assert sorted(monitor.drifting()) == ["feature:amount", "labels"]
    state = monitor.state()
    assert state["signals"]["feature:amount"]["last_detected_at"] == 2_000.0
    assert state["signals"]["score"]["detections"] == 0
    clock.now = 2_100.0  # past hold_s: no longer drifting, the counts stay
    assert monitor.drifting() == []
    assert monitor.state()["signals"]["labels"]["detections"] >= 1


def test_feature_means_are_taken_over_fixed_chunks() -> None:
    """ADWIN sees the mean of every chunk_size events, whatever the batch boundaries."""
    seen: list[float] = []
    monitor = DriftMonitor(features=["x"], chunk_size=4)
    detector = monitor._detectors["feature:x"]
    original = detector.update
    detector.update = lambda v: (seen.append(v), original(v))[1]  # type: ignore[method-assign]
    values = np.arange(11, dtype=float)
    for part in (values[:3], values[3:4], values[4:10], values[10:]):
        monitor.update([], part[:, None])
    assert seen == [np.mean(values[0:4]), np.mean(values[4:8])]  # 8, 9, 10 wait for a 4th


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"drift delta must be in \(0, 1\) and chunk_size >= 1"):
        DriftMonitor(features=["x"], chunk_size=0)
