"""What the serving benchmarks share: a model bundle, events, and ``serve`` as a child process.

Not a benchmark itself (``make bench`` skips files starting with ``_``). The events look like
the simulator's (about 235 bytes of JSON: identifiers, a timestamp and nine numeric fields);
the bundle is a StandardScaler + LogisticRegression (or an IsolationForest) fitted on the
simulator's demo history, with the threshold at the 99th percentile of the training scores, so
about 1% of the events become alerts with reasons.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from stream_detector.devbroker import free_port
from stream_detector.simulate import DEFAULT_FEATURES, EVENT_COLUMNS, TransactionSimulator
from stream_detector.testing.bundles import BundleScorer, write_test_bundle
from stream_detector.testing.serve import ServeProcess as SharedServeProcess

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def history() -> dict[str, np.ndarray]:
    """The simulator's demo history (about 40k transactions, 0.75% fraud), one array a column."""
    return TransactionSimulator.from_preset("demo", random_state=0).generate().columns


def make_bundle(directory: Path, scorer: BundleScorer = "linear") -> Path:
    """Fit a model on the simulator's history and write its bundle to ``directory``."""
    columns = history()
    X = np.column_stack([columns[f] for f in DEFAULT_FEATURES]).astype(np.float64)
    y = columns["is_fraud"].astype(int)
    return write_test_bundle(directory, X, y, DEFAULT_FEATURES, alert_share=0.01, scorer=scorer)


class EventSource:
    """Event values shaped like the simulator's, cycling through its history."""

    def __init__(self) -> None:
        columns = history()
        self._rows = list(
            zip(*(columns[c].tolist() for c in EVENT_COLUMNS if c != "event_id"), strict=True)
        )
        self._names = [c for c in EVENT_COLUMNS if c != "event_id"]

    def value(self, i: int, *, timestamp_ms: int | None = None) -> bytes:
        """Event number ``i``: ``event_id`` ``ev-<i>``, the timestamp given or the history's."""
        event: dict[str, Any] = {"event_id": f"ev-{i}"}
        event.update(zip(self._names, self._rows[i % len(self._rows)], strict=True))
        if timestamp_ms is not None:
            event["timestamp"] = timestamp_ms
        return orjson.dumps(event)

    def values(self, n: int) -> list[bytes]:
        """Events ``0 .. n-1`` with the current wall clock as timestamp."""
        now = int(time.time() * 1000)
        return [self.value(i, timestamp_ms=now) for i in range(n)]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads); this one by default."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process, in bytes."""
    pages = Path(f"/proc/{pid or os.getpid()}/statm").read_text().split()[1]
    return int(pages) * _PAGE_BYTES


def load_average() -> str:
    """The 1-minute load average, to judge how busy the machine was."""
    return f"{os.getloadavg()[0]:.2f}"


class ServeProcess(SharedServeProcess):
    """``stream-detector serve`` started at once from a YAML config, watched through ``/metrics``."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        model: Path,
        topics: Mapping[str, str],
        group_id: str,
        workdir: Path,
        decisions: bool = True,
        settings: Mapping[str, Any] | None = None,
        name: str = "serve",
    ) -> None:
        port = free_port()
        config: dict[str, Any] = {
            "kafka": {"bootstrap_servers": bootstrap_servers, "connect_timeout_s": 30},
            "topics": dict(topics),
            "consumer": {
                "group_id": group_id,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
            },
            "metrics": {"host": "127.0.0.1", "port": port},
            "model": str(model),
            "decisions_enabled": decisions,
        }
        for key, value in (settings or {}).items():
            if isinstance(value, Mapping):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        self.config_path = workdir / f"{name}-{group_id}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_DETECTOR_")}
        super().__init__(
            model,
            bootstrap_servers,
            group_id,
            env,
            workdir / f"{name}-{group_id}.log",
            metrics_port=port,
            extra_args=["--config", str(self.config_path)],
        )
        self.start()

    @property
    def port(self) -> int:
        return self.metrics_port

    def scrape(self) -> dict[str, float]:
        """``/metrics`` as ``{name or name{labels}: value}``; empty while it is not up."""
        found = super().scrape()
        if not found:
            self.check_alive()
        return found

    def events_total(self) -> int:
        return int(self.scrape().get("stream_detector_events_total", 0))

    def partitions(self) -> list[int]:
        """Partitions this replica has committed offsets for (from its consumer-lag gauge)."""
        found = re.compile(r'^stream_detector_consumer_lag\{partition="(\d+)"\}$')
        return sorted(int(m[1]) for k in self.scrape() if (m := found.match(k)))

    def ready(self) -> bool:
        if self.get("/readyz", timeout=5) == 200:
            return True
        self.check_alive()
        return False

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc is not None else None
            raise SystemExit(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (finish the batch, commit, close), then wait; kill if it hangs."""
        code = self.term(timeout)
        if code is None:
            self.ensure_dead()
        assert self.proc is not None
        return int(self.proc.returncode)


def wait_until(condition: Any, *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition()`` until it is true, or exit naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def fmt_rate(value: float) -> str:
    return f"{value:>10,.0f}"


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    if not values:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), qs)]
