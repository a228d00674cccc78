"""The reference receiver run as documented: ``python -m stream_detector.notify.receiver``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from stream_detector.devbroker import free_port
from stream_detector.notify.signing import sign

SECRET = "0123456789abcdef-secret"


def test_running_the_module_warns_of_nothing() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "stream_detector.notify.receiver",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("usage: python -m stream_detector.notify.receiver")


def test_the_module_verifies_signatures_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = {**os.environ, "STREAM_DETECTOR_NOTIFY__SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "stream_detector.notify.receiver",
         "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        body = b'{"event_id": "tx-1"}'
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=body,
            headers={"X-Stream-Detector-Signature": sign(body, SECRET)},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "RuntimeWarning" not in err
    assert "signature=checked" in err
