"""Latency of ``serve`` at a steady event rate, and its memory over the run.

Starts the embedded broker and ``stream-detector serve`` (a child process, decisions on), then
for each rate produces events at that steady rate for ``--duration`` seconds (a paced
kafka-python producer in a child process, ``linger_ms=0``; each event's ``timestamp`` is the
wall clock when it is sent) while a consumer reads the decisions back. For every decision:

- **latency** = the decision record's timestamp (set by ``serve``'s producer when it sends the
  decision) minus the event's timestamp: event produced -> decision produced;
- **seen** = the wall clock when the consumer here received the decision minus the event's
  timestamp (adds the broker round trip and the reader's fetch wait).

Both clocks are this machine's; timestamps have millisecond resolution. The embedded broker
holds every fetch for ``fetch_max_wait_ms`` even when data arrives (Kafka answers at once), so
``serve`` runs with ``consumer.fetch_max_wait_ms: 10`` here (``--fetch-max-wait-ms``). The labels
topic (unused here) has one partition, the others four. The first
``--warmup`` seconds of each rate are left out of the percentiles. A fresh ``serve`` runs for
each rate; its resident memory (RSS) is sampled every second: start (after warm-up), end,
maximum, and the slope over the second half of the run (a leak shows as steady growth).

    python benchmarks/latency.py [--rates 1000 5000] [--duration 300] [--warmup 10]

Goal at 1,000 events/s: p99 <= 50 ms, no memory growth.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from _harness import (
    EventSource,
    ServeProcess,
    load_average,
    make_bundle,
    percentiles,
    rss_bytes,
    wait_until,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_detector.kafka import EmbeddedBroker

_PARTITIONS = 4
_GOAL_P99_MS = 50.0


class Reader(threading.Thread):
    """Reads the decisions topic and keeps (event time, decision time, seen time) per event."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        parts = [TopicPartition(topic, p) for p in range(_PARTITIONS)]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.rows: list[tuple[int, int, float]] = []
        self.ids: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            records = self.consumer.poll(timeout_ms=100)
            seen = time.time() * 1000.0
            for batch in records.values():
                for r in batch:
                    decision = orjson.loads(r.value)
                    self.ids.add(decision["event_id"])
                    self.rows.append((decision["timestamp"], r.timestamp, seen))
        self.consumer.close()


def produce_steady(
    bootstrap: str, topic: str, rate: int, seconds: float, source: EventSource, start_id: int
) -> tuple[int, float]:
    """Send ``rate`` events a second for ``seconds`` from a child process, so that reading
    here never delays a send; return (events sent, achieved rate)."""
    # spawn, not fork: this process runs client threads whose locks a fork would copy held
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    child = context.Process(
        target=_produce, args=(queue, bootstrap, topic, rate, seconds, source, start_id)
    )
    child.start()
    result: tuple[int, float] = queue.get(timeout=seconds + 120)
    child.join(30)
    return result


def _produce(
    queue: Any,
    bootstrap: str,
    topic: str,
    rate: int,
    seconds: float,
    source: EventSource,
    start_id: int,
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    sent, total = 0, int(rate * seconds)
    t0 = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            i = start_id + sent
            value = source.value(i, timestamp_ms=int(time.time() * 1000))
            producer.send(topic, key=f"ev-{i}".encode(), value=value)
            sent += 1
        time.sleep(0.0005)
    producer.flush()
    producer.close()
    queue.put((sent, sent / (time.perf_counter() - t0)))


def run_rate(
    args: argparse.Namespace, broker: EmbeddedBroker, bundle: Path, workdir: Path, rate: int
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topics = {
        "events": f"events-{tag}",
        "labels": f"labels-{tag}",
        "decisions": f"decisions-{tag}",
        "alerts": f"alerts-{tag}",
        "dead_letter": f"dlq-{tag}",
    }
    broker.create_topics(
        {name: 1 if key == "labels" else _PARTITIONS for key, name in topics.items()}
    )
    serve = ServeProcess(
        bootstrap_servers=broker.bootstrap_servers,
        model=bundle,
        topics=topics,
        group_id=f"latency-{tag}",
        workdir=workdir,
        settings={"consumer": {"fetch_max_wait_ms": args.fetch_max_wait_ms}},
    )
    reader = Reader(broker.bootstrap_servers, topics["decisions"])
    reader.start()
    source = EventSource()
    samples: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample_rss() -> None:
        while not sampling.is_set():
            samples.append((time.monotonic(), rss_bytes(serve.pid)))
            sampling.wait(1.0)

    try:
        wait_until(serve.ready, timeout=120, what="serve to join its group", interval=0.2)
        # A few events first: the first batch pays for lazy imports and connections.
        produce_steady(broker.bootstrap_servers, topics["events"], 200, 1.0, source, 0)
        wait_until(lambda: serve.events_total() >= 200, timeout=60, what="the first events")
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        started = time.time() * 1000.0
        sent, achieved = produce_steady(
            broker.bootstrap_servers, topics["events"], rate, args.duration, source, 1_000_000
        )
        total = 200 + sent
        wait_until(lambda: serve.events_total() >= total, timeout=120, what="serve to catch up")
        wait_until(lambda: len(reader.ids) >= total, timeout=60, what="the last decisions")
    except SystemExit:
        print(serve.log_tail(30), flush=True)
        raise
    finally:
        sampling.set()
        reader.stop.set()
        reader.join(10)
        code = serve.stop()
    if code:
        raise SystemExit(f"serve exited with code {code}")
    cutoff = started + args.warmup * 1000.0
    rows = np.array([r for r in reader.rows if r[0] >= cutoff], dtype=np.float64)
    latency = rows[:, 1] - rows[:, 0] if rows.size else np.empty(0)
    seen = rows[:, 2] - rows[:, 0] if rows.size else np.empty(0)
    times = np.array([t for t, _ in samples])
    rss = np.array([b for _, b in samples], dtype=np.float64) / 2**20
    warm = times >= times[0] + min(args.warmup, args.duration / 2)
    half = times >= times[0] + (times[-1] - times[0]) / 2
    slope = float(np.polyfit(times[half], rss[half], 1)[0] * 60) if half.sum() > 2 else 0.0
    return {
        "rate": rate,
        "achieved": achieved,
        "sent": sent,
        "decided": len(reader.ids) - 200,
        "latency": percentiles(latency.tolist(), [50, 99, 100]),
        "seen": percentiles(seen.tolist(), [50, 99, 100]),
        "rss": (rss[warm][0], rss[-1], rss.max(), slope),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds per rate")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out")
    parser.add_argument("--scorer", choices=["linear", "isolation_forest"], default="linear")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=10,
        help="serve's consumer.fetch_max_wait_ms (the embedded broker waits it out)",
    )
    args = parser.parse_args(argv)
    args.warmup = min(args.warmup, args.duration / 4)
    results = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        bundle = make_bundle(Path(tmp) / "model", args.scorer)
        print(
            f"rates {args.rates} events/s, {args.duration:g} s each (first {args.warmup:g} s "
            f"left out), scorer {args.scorer}, {_PARTITIONS} partitions, "
            f"consumer.fetch_max_wait_ms {args.fetch_max_wait_ms}; load average "
            f"{load_average()}",
            flush=True,
        )
        for rate in args.rates:
            r = run_rate(args, broker, bundle, Path(tmp), rate)
            results.append(r)
            p50, p99, worst = r["latency"]
            s50, s99, sworst = r["seen"]
            start, end, peak, slope = r["rss"]
            print(
                f"{rate:>6,}/s (achieved {r['achieved']:,.0f}/s): decided {r['decided']:,} of "
                f"{r['sent']:,}\n"
                f"        event produced -> decision produced: p50 {p50:6.1f} ms   "
                f"p99 {p99:6.1f} ms   max {worst:6.1f} ms\n"
                f"        event produced -> decision seen:     p50 {s50:6.1f} ms   "
                f"p99 {s99:6.1f} ms   max {sworst:6.1f} ms\n"
                f"        serve RSS: {start:.1f} MB after warm-up, {end:.1f} MB at the end, "
                f"max {peak:.1f} MB; second half {slope:+.2f} MB/min",
                flush=True,
            )
        print(f"load average after: {load_average()}")
        for r in results:
            print(
                f"ratio p99/goal at {r['rate']:,}/s: {r['latency'][1] / _GOAL_P99_MS:.2f}   "
                f"(goal <= 1 at 1,000/s: p99 <= {_GOAL_P99_MS:g} ms)"
            )
    lost = [r for r in results if r["decided"] < r["sent"]]
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
