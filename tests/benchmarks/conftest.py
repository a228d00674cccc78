"""Smoke runs of the scripts in benchmarks/: tiny sizes, exit code 0, the ratio lines printed.

Never an assertion on a timing: the figures on a shared machine are noise at these sizes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_benchmark() -> object:
    """``run_benchmark("throughput.py", "--events", "2000") -> stdout``; fails on exit code != 0."""

    def run(script: str, *args: str, timeout: float = 240.0) -> str:
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BENCHMARKS.parent,
            check=False,
        )
        assert done.returncode == 0, (
            f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    return run
