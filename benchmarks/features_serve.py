"""``serve`` with behavioural features against ``serve`` without, the same events, in one run.

The serve part of the feature benchmarks (``benchmarks/features.py`` measures the offline
computation and the stores alone). Starts the embedded broker, preloads N simulated card
transactions (the simulator's demo history, its days repeated forward in time, so every
event is later than the last; keyed by card) into P partitions, then measures, ``--repeat``
times in turn, with ``benchmarks/throughput.py``'s machinery (``serve`` in a child process
watched through ``/metrics``, the rate from its first batch to the last event):

(c) ``serve`` of a bundle over the raw numeric fields (no features: the baseline);
(f) ``serve`` of a bundle over the card feature set of ``configs/train.yaml`` (15 windows
    per event over 2 keys, calendar features), in-memory store;
(g) the same with a Redis store (a ``redis-server`` started on a free port, append-only file
    fsynced every second, as in ``docker-compose.yml``).

It prints events/s and CPU microseconds per event of the ``serve`` process (Redis's own CPU
for (g) beside it), the ratios (f)/(c) and (g)/(c) (goals >= 0.8 and >= 0.5) of the best and
the median rates, the CPU-per-event ratios (c)/(f) and (c)/(g) (steadier than rates on a
shared machine), the feature
time and store round trips per batch from ``serve``'s metrics, and Redis's memory per key.

    python benchmarks/features_serve.py [--events 100000] [--partitions 4] [--repeat 2]
                                        [--batch-size 500] [--only c f g]

The feature set's lateness is raised to 30 days here: partitions of a preloaded backlog are
read up to a fetch (a few thousand events, days of this small world) apart, and a terminal's
events come from every partition.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml
from _harness import ServeProcess, cpu_seconds, load_average, make_bundle, wait_until
from kafka import KafkaProducer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from throughput import Measurement, summarize

from offline.data import spec_features
from stream_detector.bundle import write_bundle
from stream_detector.devbroker import EmbeddedBroker
from stream_detector.features import FeatureSpec
from stream_detector.scoring import LinearScorer
from stream_detector.simulate import EVENT_COLUMNS, TransactionSimulator

REPO = Path(__file__).resolve().parents[1]
_TIMEOUT_S = 900.0
_DAY_MS = 86_400_000


def card_spec() -> FeatureSpec:
    section = yaml.safe_load((REPO / "configs" / "train.yaml").read_text())["features"]
    return FeatureSpec.parse({**section, "lateness": "30d"})


def history() -> dict[str, np.ndarray]:
    return TransactionSimulator.from_preset("demo", random_state=0).generate().columns


def feature_bundle(directory: Path, spec: FeatureSpec) -> Path:
    """A logistic model over the spec's features of the simulator's history."""
    import pandas as pd

    frame = pd.DataFrame(history())
    X, order, _ = spec_features(frame, spec, frame["is_fraud"].to_numpy())
    y = frame["is_fraud"].to_numpy()[order]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    compiled = LinearScorer.from_sklearn(model)
    threshold = float(np.quantile(compiled.score_samples(X), 0.99))
    write_bundle(
        directory,
        scorer=compiled,
        features=spec.names,
        label="is_fraud",
        technique="none",
        scorer_name="classifier",
        threshold=threshold,
        threshold_policy=f"fixed:{threshold:.6f}",
        class_prior_train=float(y.mean()),
        metrics={"pr_auc": 0.0},
        reference=np.median(X, axis=0),
        feature_spec=spec,
    )
    return directory


def events(n: int) -> list[tuple[bytes, bytes]]:
    """``n`` events (key: the card), the history's days repeated later and later in time."""
    columns = history()
    names = [c for c in EVENT_COLUMNS if c != "event_id"]
    rows = list(zip(*(columns[c].tolist() for c in names), strict=True))
    ts = columns["timestamp"]
    span = int(ts[-1] - ts[0]) + _DAY_MS
    at = names.index("timestamp")
    out = []
    for i in range(n):
        row = list(rows[i % len(rows)])
        row[at] = int(ts[i % len(rows)]) + (i // len(rows)) * span
        event = {"event_id": f"ev-{i}", **dict(zip(names, row, strict=True))}
        out.append((event["customer_id"].encode(), orjson.dumps(event)))
    return out


class RedisServer:
    """``redis-server`` on a free port, AOF fsynced every second; removed on close."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = tempfile.mkdtemp(prefix="bench-redis-")
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             self.directory, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        self.client = redis.Redis.from_url(self.url)
        wait_until(self._up, timeout=20, what="redis-server")

    def _up(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def memory(self) -> tuple[int, int]:
        """(used_memory bytes, keys)."""
        return int(self.client.info("memory")["used_memory"]), int(self.client.dbsize())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        shutil.rmtree(self.directory, ignore_errors=True)


def measure(
    broker: EmbeddedBroker,
    workdir: Path,
    topics: dict[str, str],
    model: Path,
    n: int,
    args: argparse.Namespace,
    state: dict[str, Any] | None = None,
    redis: RedisServer | None = None,
) -> Measurement:
    group = f"serve-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {"consumer": {"batch_size": args.batch_size}}
    if state:
        settings["state"] = state
    proc = ServeProcess(
        bootstrap_servers=broker.bootstrap_servers,
        model=model,
        topics=topics,
        group_id=group,
        workdir=workdir,
        settings=settings,
    )
    try:
        wait_until(lambda: proc.events_total() > 0, timeout=180, what="serve's first batch")
        t0, n0, cpu0 = time.perf_counter(), proc.events_total(), cpu_seconds(proc.pid)
        redis_cpu0 = cpu_seconds(redis.process.pid) if redis else 0.0
        wait_until(lambda: proc.events_total() >= n, timeout=_TIMEOUT_S, what="serve", interval=0.1)
        t1, cpu1 = time.perf_counter(), cpu_seconds(proc.pid)
        redis_cpu = (cpu_seconds(redis.process.pid) - redis_cpu0) if redis else 0.0
        metrics = proc.scrape()
    finally:
        code = proc.stop()
    if code:
        raise SystemExit(f"serve exited with code {code}")
    extra = {
        "invalid": sum(
            v for k, v in metrics.items() if k.startswith("stream_detector_events_invalid_total")
        ),
        "feature_s": metrics.get("stream_detector_feature_seconds_sum", 0.0),
        "batches": metrics.get("stream_detector_feature_seconds_count", 0.0),
        "round_trips": metrics.get("stream_detector_store_round_trips_total", 0.0),
        "store_s": metrics.get("stream_detector_store_seconds_sum", 0.0),
        "redis_cpu_us": redis_cpu / max(n - n0, 1) * 1e6,
    }
    return Measurement(n - n0, t1 - t0, cpu1 - cpu0, extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--only", nargs="+", choices=["c", "f", "g"])
    args = parser.parse_args(argv)
    chosen = set(args.only or ["c", "f", "g"])
    spec = card_spec()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        topics = {
            "events": "fs-events",
            "labels": "fs-labels",
            "decisions": "fs-decisions",
            "alerts": "fs-alerts",
            "dead_letter": "fs-dlq",
        }
        broker.create_topics({name: (1 if k in ("labels", "dead_letter") else args.partitions)
                              for k, name in topics.items()})  # fmt: skip
        plain = make_bundle(work / "plain")
        featured = feature_bundle(work / "features", spec)
        values = events(args.events)
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, linger_ms=20, batch_size=256_000
        )
        for key, value in values:
            producer.send(topics["events"], key=key, value=value)
        producer.flush()
        producer.close()
        size = sum(len(v) for _, v in values) / len(values)
        print(
            f"{args.events:,} events of {size:.0f} bytes in {args.partitions} partitions (keyed "
            f"by card); {len(spec.names)} features; batches of {args.batch_size}; "
            f"{args.repeat} round(s); load average {load_average()}"
        )
        runs: dict[str, list[Measurement]] = {k: [] for k in ("c", "f", "g")}
        redis_memory: list[tuple[int, int]] = []
        for _ in range(args.repeat):
            if "c" in chosen:
                runs["c"].append(measure(broker, work, topics, plain, args.events, args))
            if "f" in chosen:
                runs["f"].append(measure(broker, work, topics, featured, args.events, args))
            if "g" in chosen:
                server = RedisServer()
                try:
                    base = server.memory()[0]
                    state = {"store": "redis", "redis_url": server.url}
                    runs["g"].append(
                        measure(broker, work, topics, featured, args.events, args, state, server)
                    )
                    used, keys = server.memory()
                    redis_memory.append((used - base, keys))
                finally:
                    server.close()
        names = {
            "c": "(c) serve, no features",
            "f": "(f) serve, features, memory store",
            "g": "(g) serve, features, Redis store",
        }
        best = {k: summarize(names[k], v) for k, v in runs.items() if v}
        for k in ("f", "g"):
            if k in best:
                e = best[k].extra
                batches = max(e["batches"], 1)
                print(
                    f"    {k}: feature time {e['feature_s'] / batches * 1000:.1f} ms/batch, "
                    f"store {e['round_trips'] / batches:.1f} round trips and "
                    f"{e['store_s'] / batches * 1000:.1f} ms/batch, dead letters "
                    f"{e['invalid']:.0f}"
                    + (f", redis-server cpu {e['redis_cpu_us']:.1f} us/event" if k == "g" else "")
                )
        print(f"load average after: {load_average()}")
        for k, goal in (("f", 0.8), ("g", 0.5)):
            if k in best and "c" in best:
                ratio = best[k].rate / best["c"].rate
                median = statistics.median(m.rate for m in runs[k]) / statistics.median(
                    m.rate for m in runs["c"]
                )
                # CPU per event is steadier than the rate on a shared machine: the least CPU
                # per event of each, (c)'s over (k)'s (for (g) with and without redis-server's)
                cpu_c = min(m.cpu_us for m in runs["c"])
                cpu_k = min(m.cpu_us for m in runs[k])
                cpu = f"{cpu_c / cpu_k:.2f}"
                if k == "g":
                    total = min(m.cpu_us + m.extra["redis_cpu_us"] for m in runs[k])
                    cpu += f" ({cpu_c / total:.2f} counting redis-server's CPU)"
                print(
                    f"ratio ({k})/(c): {ratio:.2f} best, {median:.2f} median   goal >= {goal};"
                    f"   CPU per event (c)/({k}): {cpu}"
                )
        if redis_memory:
            used, keys = redis_memory[-1]
            print(f"redis: {used / 1e6:.1f} MB for {keys:,} keys ({used / max(keys, 1):.0f} B/key)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
