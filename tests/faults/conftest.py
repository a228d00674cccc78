"""Fixtures of the fault harness: a model bundle that alerts often enough to count duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_detector.testing.faults.harness import write_fault_bundle


@pytest.fixture(scope="session")
def fault_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear bundle over ``amount, hour_of_day, distance`` flagging about 15% of events."""
    return write_fault_bundle(tmp_path_factory.mktemp("faults") / "model")
