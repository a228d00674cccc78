"""``stream-detector serve`` as a child process: started, signalled, watched through its log
and its HTTP endpoints. The fault harness and the serving benchmarks both run it this way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

__all__ = ["FAULT_DRIVER", "ServeProcess"]

#: ``serve`` with injected faults (kill -9 or SIGSTOP at a phase), run as ``python -m``.
FAULT_DRIVER = "stream_detector.testing.faults.serve_faulty"
_SAMPLE = re.compile(rb"^(stream_detector_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$", re.M)


class ServeProcess:
    """One ``stream-detector serve`` (optionally through the fault driver), logging to a file."""

    def __init__(
        self,
        bundle: Path,
        bootstrap: str,
        group: str,
        env: dict[str, str],
        log_path: Path,
        *,
        faults: Sequence[str] = (),
        metrics_host: str = "127.0.0.1",
        metrics_port: int = 0,
        extra_args: Sequence[str] = (),
    ) -> None:
        from stream_detector.devbroker import free_port

        self.metrics_port = metrics_port or free_port()
        serve = [
            "serve",
            "--model",
            str(bundle),
            "--bootstrap-servers",
            bootstrap,
            "--group-id",
            group,
            "--metrics-host",
            metrics_host,
            "--metrics-port",
            str(self.metrics_port),
            *extra_args,
        ]
        if faults:
            self.argv = [sys.executable, "-m", FAULT_DRIVER, *faults, "--", *serve]
        else:
            self.argv = [sys.executable, "-m", "stream_detector", *serve]
        self.env = env
        self.log_path = log_path
        self.metrics_host = metrics_host
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(30)

    def term(self, timeout: float = 60) -> int | None:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30, *, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if len(regex.findall(self.log())) >= count:
                return True
            if not self.alive():
                return False
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def scrape(self) -> dict[str, float]:
        """``/metrics`` as ``{name or name{labels}: value}``; empty while nothing answers."""
        url = f"http://{self.metrics_host}:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return {}
        return {(m[1] + (m[2] or b"")).decode(): float(m[3]) for m in _SAMPLE.finditer(body)}

    def get(self, path: str, timeout: float = 3) -> int:
        """HTTP status of an endpoint (0 when nothing answers)."""
        url = f"http://{self.metrics_host}:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return 0

    def assignments(self, topic: str) -> list[set[int]]:
        """Every ``partitions assigned`` this process logged, as sets of ``topic`` partitions."""
        out = []
        for line in re.findall(r"partitions assigned partitions=(\S+)", self.log()):
            out.append(
                {int(p.rsplit(":", 1)[1]) for p in line.split(",") if p.rsplit(":", 1)[0] == topic}
            )
        return out

    def ensure_dead(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)
            self.wait(30)
