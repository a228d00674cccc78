"""Latency of ``serve`` at a steady event rate beside a bare client's, and its memory over time.

For each rate, ``--rounds`` times in turn, two stages run, each on a **fresh** embedded broker:

- ``serve`` (a child process, decisions on), and
- the **baseline**: a bare kafka-python consume -> produce pipe in a child process working as
  ``serve`` does at least once (group consumer with ``serve``'s consumer settings, one output
  per event with ``serve``'s producer settings, flush per poll, then commit).

A paced kafka-python producer (a child process, ``linger_ms=0``) sends events at the rate for
``--duration`` seconds, each event's ``timestamp`` the wall clock when it is sent, while a
consumer reads the outputs back. For every output:

- **latency** = the output record's timestamp (set by the stage's producer when it sends it)
  minus the event's timestamp: event produced -> output produced;
- **seen** = the wall clock when the reader here received it minus the event's timestamp (adds
  the broker round trip and the reader's fetch wait).

The first ``--warmup`` seconds of each stage are left out; the rounds are pooled. The ratio
serve p99 / baseline p99 shows what ``serve`` adds to what the broker and the client library
cost by themselves on this machine.

Why a fresh broker per stage and short stages: the embedded broker (Tansu, in memory) slows
down as it holds more records. At 1,000 events/s even a bare librdkafka consumer's latency
grows from p50 4 ms / p99 12 ms in the first 5 s to p50 200 ms / p99 1.4 s after 60 s, and it
falls behind after ~65 s; Apache Kafka does not do that. Tansu also holds every fetch for
``fetch_max_wait_ms`` even when data arrives (Kafka answers at once), so both stages fetch with
``consumer.fetch_max_wait_ms: 10`` here (``--fetch-max-wait-ms``).

**Memory**: then one long ``serve`` stage (``--rss-duration`` seconds, default 300, at
``--rss-rate`` events/s, default 100, a rate the embedded broker sustains for that long)
samples the service's resident memory (RSS) every second: after warm-up, at the end, maximum,
and the slope over the second half (a leak shows as steady growth). ``serve`` keeps two
bounded memories that grow until full (decisions awaiting their labels,
``online.feedback.memory_size``, and alerted event ids, ``dedupe.capacity``, 200,000 each by
default, hours at this rate); this run sets both to ``--memory-bound`` (default 2,000) so they
are full within the warm-up and any growth after it is a leak.

Both clocks are this machine's; timestamps have millisecond resolution. The labels topic
(unused here) has one partition, the others four.

    python benchmarks/latency.py [--rates 1000 5000] [--duration 20] [--rounds 2] [--warmup 5]
                                 [--rss-duration 300] [--rss-rate 100] [--memory-bound 2000]

Goal at 1,000 events/s: p99 <= 50 ms; no memory growth.
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
from kafka.structs import OffsetAndMetadata

from stream_detector.config import DetectorSettings
from stream_detector.devbroker import DevBroker, make_broker

_PARTITIONS = 4
_GOAL_P99_MS = 50.0
_QS = (50, 99, 100)


class Reader(threading.Thread):
    """Reads an output topic and keeps (event time, output time, seen time) per event.

    Decisions carry the event's ``timestamp`` and ``event_id``; so do the baseline's outputs
    (the events themselves).
    """

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


def pipe_baseline(
    bootstrap: str, topics: dict[str, str], fetch_max_wait_ms: int, ready: Any, stop: Any
) -> None:
    """The baseline: consume -> produce one output per event -> flush -> commit, per poll."""
    settings = DetectorSettings()
    c, p = settings.consumer, settings.producer
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"baseline-{topics['events']}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=c.batch_size,
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=p.acks if p.acks == "all" else int(p.acks),
        linger_ms=p.linger_ms,
        batch_size=p.batch_size,
    )
    consumer.subscribe([topics["events"]])
    while not consumer.assignment():
        consumer.poll(timeout_ms=100)
    ready.set()
    out = topics["decisions"]
    while not stop.is_set():
        records = consumer.poll(timeout_ms=100)
        if not records:
            continue
        for batch in records.values():
            for r in batch:
                producer.send(out, key=r.key, value=r.value)
        producer.flush()
        consumer.commit(
            {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1) for tp, batch in records.items()}
        )
    producer.close()
    consumer.close(autocommit=False)


class Stage:
    """What runs between the events and the outputs: ``serve`` or the baseline pipe."""

    def __init__(
        self,
        name: str,
        broker: DevBroker,
        bundle: Path,
        workdir: Path,
        fmw: int,
        settings: dict[str, Any] | None = None,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = name
        self.topics = {
            "events": f"events-{tag}",
            "labels": f"labels-{tag}",
            "decisions": f"decisions-{tag}",
            "alerts": f"alerts-{tag}",
            "dead_letter": f"dlq-{tag}",
        }
        broker.create_topics(
            {name: 1 if key == "labels" else _PARTITIONS for key, name in self.topics.items()}
        )
        self.serve: ServeProcess | None = None
        self.child: Any = None
        if name == "serve":
            self.serve = ServeProcess(
                bootstrap_servers=broker.bootstrap_servers,
                model=bundle,
                topics=self.topics,
                group_id=f"latency-{tag}",
                workdir=workdir,
                settings={"consumer": {"fetch_max_wait_ms": fmw}, **(settings or {})},
            )
            return
        context = multiprocessing.get_context("spawn")
        self.ready, self.stopping = context.Event(), context.Event()
        self.child = context.Process(
            target=pipe_baseline,
            args=(broker.bootstrap_servers, self.topics, fmw, self.ready, self.stopping),
        )
        self.child.start()

    @property
    def pid(self) -> int:
        return self.serve.pid if self.serve is not None else int(self.child.pid)

    def wait_ready(self) -> None:
        if self.serve is not None:
            wait_until(self.serve.ready, timeout=120, what="serve to join its group", interval=0.2)
        elif not self.ready.wait(120):
            raise SystemExit("the baseline pipe did not join its group")

    def stop(self) -> int:
        if self.serve is not None:
            return self.serve.stop()
        self.stopping.set()
        self.child.join(30)
        return int(self.child.exitcode or 0)


def run_stage(
    args: argparse.Namespace,
    bundle: Path,
    workdir: Path,
    rate: int,
    stage_name: str,
    duration: float,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stage on a fresh broker: latencies (ms, after warm-up) and the RSS samples."""
    with make_broker(args.broker) as broker:
        return _run_stage(args, broker, bundle, workdir, rate, stage_name, duration, settings)


def _run_stage(
    args: argparse.Namespace,
    broker: DevBroker,
    bundle: Path,
    workdir: Path,
    rate: int,
    stage_name: str,
    duration: float,
    settings: dict[str, Any] | None,
) -> dict[str, Any]:
    stage = Stage(stage_name, broker, bundle, workdir, args.fetch_max_wait_ms, settings)
    topics = stage.topics
    reader = Reader(broker.bootstrap_servers, topics["decisions"])
    reader.start()
    source = EventSource()
    samples: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample_rss() -> None:
        while not sampling.is_set():
            samples.append((time.monotonic(), rss_bytes(stage.pid)))
            sampling.wait(1.0)

    try:
        stage.wait_ready()
        # A few events first: the first batch pays for lazy imports and connections.
        produce_steady(broker.bootstrap_servers, topics["events"], 200, 1.0, source, 0)
        wait_until(lambda: len(reader.ids) >= 200, timeout=60, what="the first outputs")
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        started = time.time() * 1000.0
        sent, achieved = produce_steady(
            broker.bootstrap_servers, topics["events"], rate, duration, source, 1_000_000
        )
        total = 200 + sent
        wait_until(lambda: len(reader.ids) >= total, timeout=180, what=f"{stage_name} to catch up")
    except SystemExit:
        if stage.serve is not None:
            print(stage.serve.log_tail(30), flush=True)
        raise
    finally:
        sampling.set()
        reader.stop.set()
        reader.join(10)
        code = stage.stop()
    if code:
        raise SystemExit(f"{stage_name} exited with code {code}")
    warmup = min(args.warmup, duration / 4)
    cutoff = started + warmup * 1000.0
    rows = np.array([r for r in reader.rows if r[0] >= cutoff], dtype=np.float64).reshape(-1, 3)
    return {
        "stage": stage_name,
        "rate": rate,
        "achieved": achieved,
        "sent": sent,
        "decided": len(reader.ids) - 200,
        "latency": rows[:, 1] - rows[:, 0],
        "seen": rows[:, 2] - rows[:, 0],
        "rss": samples,
        "warmup": warmup,
    }


def pooled(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The stages of one kind at one rate as one: latencies pooled, counts summed."""
    return {
        "stage": stages[0]["stage"],
        "rate": stages[0]["rate"],
        "rounds": len(stages),
        "achieved": min(s["achieved"] for s in stages),
        "sent": sum(s["sent"] for s in stages),
        "decided": sum(s["decided"] for s in stages),
        "latency": percentiles(np.concatenate([s["latency"] for s in stages]).tolist(), _QS),
        "seen": percentiles(np.concatenate([s["seen"] for s in stages]).tolist(), _QS),
    }


def rss_summary(stage: dict[str, Any]) -> tuple[float, float, float, float]:
    """(MB after warm-up, MB at the end, max MB, MB/min over the second half)."""
    times = np.array([t for t, _ in stage["rss"]])
    rss = np.array([b for _, b in stage["rss"]], dtype=np.float64) / 2**20
    warm = times >= times[0] + stage["warmup"]
    half = times >= times[0] + (times[-1] - times[0]) / 2
    slope = float(np.polyfit(times[half], rss[half], 1)[0] * 60) if half.sum() > 2 else 0.0
    return float(rss[warm][0]), float(rss[-1]), float(rss.max()), slope


def report(r: dict[str, Any]) -> None:
    p50, p99, worst = r["latency"]
    s50, s99, sworst = r["seen"]
    what = "serve" if r["stage"] == "serve" else "baseline pipe"
    print(
        f"{r['rate']:>6,}/s {what:<13} ({r['rounds']} x, achieved >= {r['achieved']:,.0f}/s): "
        f"outputs for {r['decided']:,} of {r['sent']:,} events\n"
        f"        event produced -> output produced: p50 {p50:6.1f} ms   "
        f"p99 {p99:6.1f} ms   max {worst:6.1f} ms\n"
        f"        event produced -> output seen:     p50 {s50:6.1f} ms   "
        f"p99 {s99:6.1f} ms   max {sworst:6.1f} ms",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker",
        choices=("tansu", "apache"),
        default="tansu",
        help="the development broker: tansu (embedded) or apache (Apache Kafka, Java 17+)",
    )
    parser.add_argument(
        "--rates", type=int, nargs="*", default=[1000, 5000], help="none: only the memory run"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per stage")
    parser.add_argument("--rounds", type=int, default=2, help="serve/baseline rounds per rate")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out per stage")
    parser.add_argument(
        "--rss-duration", type=float, default=300.0, help="seconds of the memory run (0: none)"
    )
    parser.add_argument("--rss-rate", type=int, default=100, help="events/s of the memory run")
    parser.add_argument(
        "--memory-bound",
        type=int,
        default=2_000,
        help="online.feedback.memory_size and dedupe.capacity of the memory run",
    )
    parser.add_argument("--scorer", choices=["linear", "isolation_forest"], default="linear")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=10,
        help="consumer.fetch_max_wait_ms of both stages (the embedded broker waits it out)",
    )
    args = parser.parse_args(argv)
    results: list[tuple[dict[str, Any], dict[str, Any]]] = []
    lost = 0
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp) / "model", args.scorer)
        print(
            f"rates {args.rates} events/s; {args.rounds} round(s) of serve and the baseline pipe, "
            f"{args.duration:g} s each on a fresh {args.broker} broker (first {args.warmup:g} s "
            f"left out); "
            f"scorer {args.scorer}, {_PARTITIONS} partitions, consumer.fetch_max_wait_ms "
            f"{args.fetch_max_wait_ms}; load average {load_average()}",
            flush=True,
        )
        for rate in args.rates:
            runs: dict[str, list[dict[str, Any]]] = {"serve": [], "pipe": []}
            for _ in range(args.rounds):
                for name in runs:
                    stage = run_stage(args, bundle, Path(tmp), rate, name, args.duration)
                    lost += stage["sent"] - stage["decided"]
                    runs[name].append(stage)
            served, base = pooled(runs["serve"]), pooled(runs["pipe"])
            report(served)
            report(base)
            results.append((served, base))
        memory = None
        if args.rss_duration > 0:
            bound = args.memory_bound
            memory = run_stage(
                args,
                bundle,
                Path(tmp),
                args.rss_rate,
                "serve",
                args.rss_duration,
                {"online": {"feedback": {"memory_size": bound}}, "dedupe": {"capacity": bound}},
            )
            lost += memory["sent"] - memory["decided"]
        print(f"load average after: {load_average()}")
        for served, base in results:
            p99, b99 = served["latency"][1], base["latency"][1]
            print(
                f"at {served['rate']:,}/s: serve p99 {p99:.1f} ms, baseline pipe p99 {b99:.1f} ms: "
                f"ratio serve/baseline {p99 / max(b99, 1.0):.2f}; p99/goal {p99 / _GOAL_P99_MS:.2f}"
                f" (goal <= 1 at 1,000/s: p99 <= {_GOAL_P99_MS:g} ms)"
            )
        if memory is not None:
            start, end, peak, slope = rss_summary(memory)
            p50, p99, worst = percentiles(memory["latency"].tolist(), _QS)
            print(
                f"serve RSS over {args.rss_duration:g} s at {args.rss_rate:,}/s "
                f"({memory['decided']:,} of {memory['sent']:,} events decided): {start:.1f} MB "
                f"after warm-up, {end:.1f} MB at the end, max {peak:.1f} MB; second half "
                f"{slope:+.2f} MB/min (latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"max {worst:.1f} ms)"
            )
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
