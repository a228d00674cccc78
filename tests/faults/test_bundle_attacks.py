"""Scenario 7: ``serve`` refuses an attacked bundle at start, before any code from it runs.

``tests/stream_detector/test_bundle.py`` covers each attack at the level of ``load_bundle``
and ``tests/stream_detector/test_service.py`` a modified file at the level of ``serve``; here
the other attacks go through ``serve`` itself: one line, exit code 2, no connection attempted
(the broker address is unreachable, so reaching it would fail differently), and a pickled
payload never executed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stream_detector.cli import main
from stream_detector.testing.faults.attacks import ATTACKS


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "modified file"])
def test_serve_refuses_an_attacked_bundle_before_running_anything(
    fault_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    attack, message = ATTACKS[name]
    bundle = tmp_path / "bundle"
    shutil.copytree(fault_bundle, bundle)
    marker = tmp_path / "code-from-the-bundle-ran"
    attack(bundle, marker)
    code = main(
        [
            "serve",
            "--model",
            str(bundle),
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--metrics-port",
            "0",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("stream-detector: error: ")
    assert message in err[0]
    assert "Kafka" not in err[0]  # refused before any connection
    assert not marker.exists()
