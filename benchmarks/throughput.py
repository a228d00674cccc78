"""Throughput of ``serve`` beside the bare Kafka client's own limit, measured in one run.

Starts the embedded broker, preloads N events (about 235 bytes of JSON each, shaped like the
simulator's) into a topic of P partitions, then measures, one after another and ``--repeat``
times in turn:

(a) a bare kafka-python consumer reading every event (no group, nothing else done);
(b) a bare kafka-python consume -> produce pipe: one message produced per event consumed,
    flushed once at the end, nothing committed (the least ``serve`` must do);
(b') the same pipe at least once, as ``serve`` works: flush per poll, then commit;
(c) ``stream-detector serve`` with the decisions topic on;
(d) ``serve`` with decisions off (alerts and dead letters only);
(e) scale-out: two ``serve`` replicas in one consumer group (decisions on): the partitions
    they took, the events each decided, whether every event got a decision (read back from
    the decisions topic by key), and their summed rate beside (c).

The pipes are plain kafka-python clients (default partitioner and all), producing with the
batching ``serve`` uses (``producer.*`` defaults: acks, linger, batch size), so the ratios show
what ``serve`` adds or saves, not a tuning difference. ``serve`` runs as
a child process (``python -m stream_detector serve``) watched through ``/metrics``; a fresh
consumer group per run reads the topic from the start. Every rate is taken from the first
batch to the last event, leaving out start-up and the group join (about 3 s on this broker):
rate = (N - first batch) / (time of the last event - time of the first batch).

Besides events/s it prints CPU microseconds per event of the measured process alone (the
broker and the benchmark's watcher excluded): on a shared machine those vary much less than
wall-clock rates. The best of the repeats is kept; the spread (min-max) is printed beside it.

    python benchmarks/throughput.py [--events 200000] [--partitions 4] [--repeat 3]
                                    [--scorer linear|isolation_forest] [--batch-size 500]
                                    [--no-scale-out] [--only a b c d e]

Goal: (c)/(b) >= 0.8 and (d)/(a) >= 0.8.

kafka-python checksums every record batch it reads or writes (CRC32C); without the ``crc32c``
package it does so in pure Python, which then costs more than anything else on both sides
(the header line says which one ran).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    EventSource,
    ServeProcess,
    cpu_seconds,
    fmt_rate,
    load_average,
    make_bundle,
    wait_until,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from stream_detector.config import DetectorSettings
from stream_detector.devbroker import DevBroker, make_broker

_POLL_S = 0.1
_TIMEOUT_S = 600.0


@dataclass
class Measurement:
    """One timed run: events counted from the first batch on, wall and CPU seconds."""

    events: int
    seconds: float
    cpu_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu_seconds / self.events if self.events else float("nan")


class Bench:
    """The broker, the preloaded topic and the bundle, shared by every measurement."""

    def __init__(self, args: argparse.Namespace, broker: DevBroker, workdir: Path) -> None:
        self.args = args
        self.broker = broker
        self.workdir = workdir
        self.n = args.events
        self.topic = "bench-events"
        self.labels = "bench-labels"
        # Every topic is created before the first measurement: with the embedded broker a
        # producer's metadata holds every topic of the cluster, and kafka-python's partitioner
        # walks them on each send, so topics created between runs would slow the later ones.
        self.pipe_out = "bench-pipe-out"
        self.outputs = {
            "decisions": "bench-decisions",
            "alerts": "bench-alerts",
            "dead_letter": "bench-dlq",
        }
        self.scale_out = [f"bench-decisions-scale-out-{r}" for r in range(args.repeat)]
        broker.create_topics(
            {
                self.topic: args.partitions,
                self.labels: 1,
                self.pipe_out: args.partitions,
                **{t: args.partitions for t in [*self.outputs.values(), *self.scale_out]},
            }
        )
        self.bundle = make_bundle(workdir / "model", args.scorer)
        self.settings = DetectorSettings.load(
            overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}}
        )
        self.sizes: list[int] = []

    def preload(self) -> float:
        values = EventSource().values(self.n)
        self.sizes = [len(v) for v in values]
        producer = KafkaProducer(
            bootstrap_servers=self.broker.bootstrap_servers, linger_ms=20, batch_size=256_000
        )
        start = time.perf_counter()
        p = self.args.partitions
        for i, value in enumerate(values):
            producer.send(self.topic, key=f"ev-{i}".encode(), value=value, partition=i % p)
        producer.flush()
        producer.close()
        return time.perf_counter() - start

    def output_topics(self, replicas: int) -> dict[str, str]:
        """The topics of a ``serve`` run; scale-out runs each get their own decisions topic."""
        topics = {"events": self.topic, "labels": self.labels, **self.outputs}
        if replicas > 1:
            topics["decisions"] = self.scale_out.pop(0)
        return topics

    # -- the bare client -----------------------------------------------------------------

    def _consumer(self, group: str | None) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.args.batch_size,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        if group is None:
            parts = [TopicPartition(self.topic, i) for i in range(self.args.partitions)]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
        else:
            consumer.subscribe([self.topic])
        return consumer

    def bare(self, mode: str) -> Measurement:
        """(a) ``consume``, (b) ``pipe``, (b') ``pipe-commit``."""
        committed = mode == "pipe-commit"
        consumer = self._consumer(f"bare-{uuid.uuid4().hex[:8]}" if committed else None)
        producer = None
        if mode != "consume":
            p = self.settings.producer
            producer = KafkaProducer(
                bootstrap_servers=self.broker.bootstrap_servers,
                acks=p.acks if p.acks == "all" else int(p.acks),
                linger_ms=p.linger_ms,
                batch_size=p.batch_size,
            )
        out = self.pipe_out
        count, first = 0, None
        deadline = time.monotonic() + _TIMEOUT_S
        try:
            while count < self.n:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bare {mode}: only {count} of {self.n} events arrived")
                records = consumer.poll(timeout_ms=1000, max_records=self.args.batch_size)
                if not records:
                    continue
                got = 0
                for batch in records.values():
                    got += len(batch)
                    if producer is not None:
                        send = producer.send
                        for r in batch:
                            send(out, key=r.key, value=r.value)
                if committed:
                    assert producer is not None
                    producer.flush()
                    consumer.commit(
                        {
                            tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)
                            for tp, batch in records.items()
                        }
                    )
                if first is None:
                    first = (time.perf_counter(), cpu_seconds(), got)
                count += got
            if producer is not None:
                producer.flush()
            end, cpu_end = time.perf_counter(), cpu_seconds()
        finally:
            consumer.close(autocommit=False)
            if producer is not None:
                producer.close()
        assert first is not None
        return Measurement(count - first[2], end - first[0], cpu_end - first[1])

    # -- serve ---------------------------------------------------------------------------

    def serve(self, *, decisions: bool, replicas: int = 1) -> Measurement:
        """(c) decisions on, (d) off, (e) ``replicas`` in one group."""
        topics = self.output_topics(replicas)
        group = f"serve-{uuid.uuid4().hex[:8]}"
        procs = [
            ServeProcess(
                bootstrap_servers=self.broker.bootstrap_servers,
                model=self.bundle,
                topics=topics,
                group_id=group,
                workdir=self.workdir,
                decisions=decisions,
                settings={"consumer": {"batch_size": self.args.batch_size}},
                name=f"serve-{i}",
            )
            for i in range(replicas)
        ]
        try:
            total = lambda: sum(p.events_total() for p in procs)  # noqa: E731
            wait_until(lambda: total() > 0, timeout=120, what="serve's first batch", interval=0.02)
            t0, n0 = time.perf_counter(), total()
            cpu0 = sum(cpu_seconds(p.pid) for p in procs)
            wait_until(
                lambda: total() >= self.n, timeout=_TIMEOUT_S, what="serve", interval=_POLL_S
            )
            t1 = time.perf_counter()
            cpu1 = sum(cpu_seconds(p.pid) for p in procs)
            extra: dict[str, Any] = {
                "per_replica": [p.events_total() for p in procs],
                "partitions": [p.partitions() for p in procs],
            }
        finally:
            codes = [p.stop() for p in procs]
        if any(codes):
            raise SystemExit(f"serve exited with codes {codes}")
        if replicas > 1:
            extra["read_back"] = self.read_back(topics["decisions"])
        return Measurement(self.n - n0, t1 - t0, cpu1 - cpu0, extra)

    def read_back(self, topic: str) -> tuple[int, int]:
        """(records, distinct keys) of a topic, read to the end (counted, never end offsets)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers,
            enable_auto_commit=False,
            max_poll_records=5000,
        )
        parts = [TopicPartition(topic, i) for i in range(self.args.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        keys: set[bytes] = set()
        count = 0
        idle_until = time.monotonic() + 5.0
        while time.monotonic() < idle_until:
            records = consumer.poll(timeout_ms=500)
            for batch in records.values():
                count += len(batch)
                keys.update(r.key for r in batch)
            if records:
                idle_until = time.monotonic() + (1.0 if count >= self.n else 5.0)
        consumer.close()
        return count, len(keys)


def crc32c_kind() -> str:
    """Whether kafka-python checksums record batches in C (the ``crc32c`` package) or Python."""
    from kafka.record import util

    return "C (crc32c package)" if getattr(util, "crc32c_c", None) is not None else "pure Python"


def summarize(name: str, runs: list[Measurement]) -> Measurement:
    best = max(runs, key=lambda m: m.rate)
    spread = ""
    if len(runs) > 1:
        rates = [m.rate for m in runs]
        cpus = [m.cpu_us for m in runs]
        spread = (
            f"   (runs {min(rates):,.0f}-{max(rates):,.0f}/s, "
            f"cpu {min(cpus):.1f}-{max(cpus):.1f} us, median {statistics.median(rates):,.0f}/s)"
        )
    print(f"{name:<32}{fmt_rate(best.rate)} events/s  {best.cpu_us:6.1f} us cpu/event{spread}")
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker",
        choices=("tansu", "apache"),
        default="tansu",
        help="the development broker: tansu (embedded) or apache (Apache Kafka, Java 17+)",
    )
    parser.add_argument("--events", type=int, default=200_000, help="events preloaded")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument("--batch-size", type=int, default=500, help="max records per poll")
    parser.add_argument("--scorer", choices=["linear", "isolation_forest"], default="linear")
    parser.add_argument("--no-scale-out", action="store_true", help="skip (e)")
    parser.add_argument(
        "--only", nargs="+", choices=["a", "b", "b'", "c", "d", "e"], help="measure only these"
    )
    args = parser.parse_args(argv)
    chosen = set(args.only or ["a", "b", "b'", "c", "d", "e"])
    if args.no_scale_out:
        chosen.discard("e")

    with tempfile.TemporaryDirectory() as tmp, make_broker(args.broker) as broker:
        bench = Bench(args, broker, Path(tmp))
        seconds = bench.preload()
        mean_bytes = sum(bench.sizes) / len(bench.sizes)
        print(
            f"{args.events:,} events of {mean_bytes:.0f} bytes preloaded in {seconds:.1f} s into "
            f"{args.partitions} partitions of a {args.broker} broker; scorer {args.scorer}; {args.batch_size} records "
            f"per poll; {args.repeat} round(s); kafka-python CRC32C: {crc32c_kind()}; "
            f"load average {load_average()}"
        )
        plan: list[tuple[str, str, Callable[[], Measurement]]] = [
            ("a", "(a) bare consumer", lambda: bench.bare("consume")),
            ("b", "(b) bare consume->produce", lambda: bench.bare("pipe")),
            ("b'", "(b') ... flush+commit per poll", lambda: bench.bare("pipe-commit")),
            ("c", "(c) serve, decisions on", lambda: bench.serve(decisions=True)),
            ("d", "(d) serve, decisions off", lambda: bench.serve(decisions=False)),
            ("e", "(e) serve, 2 replicas", lambda: bench.serve(decisions=True, replicas=2)),
        ]
        runs: dict[str, list[Measurement]] = {key: [] for key, _, _ in plan}
        for _ in range(args.repeat):
            for key, _, measure in plan:
                if key in chosen:
                    runs[key].append(measure())
        best = {key: summarize(name, runs[key]) for key, name, _ in plan if runs[key]}
        print(f"load average after: {load_average()}")
        for num, den in (("c", "b"), ("d", "a"), ("c", "b'")):
            if num in best and den in best:
                wall = best[num].rate / best[den].rate
                cpu = best[den].cpu_us / best[num].cpu_us
                goal = "   goal >= 0.8" if den != "b'" else ""
                print(f"ratio ({num})/({den}): {wall:.2f}   (cpu per event: {cpu:.2f}){goal}")
        if "e" in best:
            e = best["e"]
            split = ", ".join(
                f"replica {i}: partitions {parts} events {n:,}"
                for i, (parts, n) in enumerate(
                    zip(e.extra["partitions"], e.extra["per_replica"], strict=True)
                )
            )
            print(f"scale-out: {split}")
            lost = 0
            for run in runs["e"]:
                records, distinct = run.extra["read_back"]
                lost += args.events - distinct
                print(
                    f"scale-out: decisions {records:,} for {distinct:,} distinct events of "
                    f"{args.events:,}: lost {args.events - distinct}, "
                    f"duplicates {records - distinct}"
                )
            if "c" in best:
                print(f"ratio (e)/(c): {e.rate / best['c'].rate:.2f}   (2 replicas / 1)")
            if lost:
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
