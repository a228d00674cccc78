"""Security: secrets stay out of logs, endpoints bind where configured."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stream_detector.devbroker import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Pa55w0rd-5f0c1e"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_sasl_password_never_reaches_the_logs_and_endpoints_bind_the_configured_address(
    broker: Any, fault_bundle: Path
) -> None:
    # DEBUG: the most verbose level, the client library's request logs included (see
    # tests/stream_detector/kafka/test_redact.py for the SASL login line itself).
    port = free_port("127.0.0.2")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAM_DETECTOR_")},
        "STREAM_DETECTOR_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAM_DETECTOR_KAFKA__SASL_MECHANISM": "PLAIN",
        "STREAM_DETECTOR_KAFKA__SASL_USERNAME": "detector",
        "STREAM_DETECTOR_KAFKA__SASL_PASSWORD": SECRET,
        "STREAM_DETECTOR_KAFKA__CONNECT_TIMEOUT_S": "3",
    }
    # The embedded broker speaks no SASL: start-up retries, then fails with one line.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream_detector",
            "--log-level",
            "DEBUG",
            "serve",
            "--model",
            str(fault_bundle),
            "--bootstrap-servers",
            broker.bootstrap_servers,
            "--metrics-host",
            "127.0.0.2",
            "--metrics-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = _status(f"http://127.0.0.2:{port}/readyz")
                break
            except OSError:
                assert time.monotonic() < deadline, "the endpoints never came up"
                time.sleep(0.1)
        health = _status(f"http://127.0.0.2:{port}/healthz")
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            pass  # bound to 127.0.0.2 only
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    assert ready == 503  # not connected: not ready
    assert health == 200
    assert proc.returncode == 2, text[-2000:]
    assert text.strip().splitlines()[-1].startswith("stream-detector: error: cannot reach Kafka")
    assert SECRET not in text
