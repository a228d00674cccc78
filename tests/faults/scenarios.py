"""The fault scenarios of the harness, each a function returning a checked result.

The fast variants in ``tests/faults/`` call them with small sizes; ``benchmarks/faults.py``
calls them with the full sizes and prints the figures.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checker import Report
from .harness import (
    FaultTopics,
    OutputCollector,
    ServeProcess,
    StreamProducer,
    check_collected,
    make_stream,
    produce,
    serve_env,
)


@dataclass
class ScenarioResult:
    name: str
    report: Report
    faults: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return f"{self.name}: faults={self.faults} {self.report.summary()} seconds={self.seconds:.1f} {extra}"


def _group() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


def run_kill_scenario(
    broker: Any,
    bundle: Path,
    workdir: Path,
    *,
    n_events: int,
    kills: int,
    seed: int = 0,
    session_timeout_ms: int = 2000,
    batch_size: int = 100,
    rate: float | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 1: ``kill -9`` of ``serve`` at random points, restarting each time.

    Half the kills are the process killing itself right after a phase of a batch (scored,
    outputs acknowledged but not committed, committed), the other half come from outside at a
    random moment (mid-publish included). With ``rate`` the events arrive as a live stream
    that runs while a ``serve`` process runs (so every kill lands mid-stream, however many
    there are); without it they are all produced first.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    topics = FaultTopics.fresh(events=4).create(broker)
    sent = make_stream(n_events, prefix=f"k{seed}", seed=seed)
    stream = None
    if rate is None:
        produce(broker.bootstrap_servers, topics.events, sent)
    else:
        stream = StreamProducer(broker.bootstrap_servers, topics.events, sent, rate=rate)
        stream.pause()
        stream.start()
    collector = OutputCollector(broker.bootstrap_servers, topics).start()
    group = _group()
    env = serve_env(
        topics,
        consumer__session_timeout_ms=session_timeout_ms,
        consumer__heartbeat_interval_ms=max(session_timeout_ms // 6, 100),
        consumer__batch_size=batch_size,
    )
    modes = ["decided", "published", "committed", "random"]
    hits: dict[str, int] = dict.fromkeys(modes, 0)
    done = 0
    mid_stream = 0
    proc = final = None
    try:
        for k in range(kills):
            mode = modes[k % len(modes)] if k < len(modes) else rng.choice(modes)
            logfile = workdir / f"kill-{k}.log"
            faults = (
                []
                if mode == "random"
                else ["--kill-phase", mode, "--kill-after", str(rng.randint(1, 4))]
            )
            proc = ServeProcess(
                bundle, broker.bootstrap_servers, group, env, logfile, faults=faults
            )
            proc.start()
            proc.wait_log(r"partitions assigned partitions=\S+", timeout=60)
            if stream is not None:
                stream.resume()
            if mode == "random":
                time.sleep(rng.uniform(0.05, 1.2))
            elif proc.wait(30) is None or "fault: kill -9" not in proc.log():
                mode = "random"  # the phase never came (nothing left to read): kill from outside
            mid_stream += stream is not None and not stream.done
            proc.kill9()
            if stream is not None:
                stream.pause()
            hits[mode] += 1
            done += 1
            log(
                f"kill {done}/{kills} at={mode} accounted={len(collector.accounted(sent))}/{len(sent)}"
            )
        final = ServeProcess(
            bundle, broker.bootstrap_servers, group, env, workdir / "final.log"
        ).start()
        if stream is not None:
            stream.resume()
            stream.join(600)
        collector.wait_accounted(sent, timeout=180)
        time.sleep(1.0)
        collector.drain(idle_s=1.0)
        code = final.term()
        collector.drain(idle_s=0.5)
    finally:
        if stream is not None:
            stream.stop()
        collector.stop()
        for p in (final, proc):
            if p is not None:
                p.ensure_dead()
    report = check_collected(sent, [collector])
    return ScenarioResult(
        "kill -9",
        report,
        faults=done,
        seconds=time.monotonic() - started,
        notes={"kills_at": hits, "final_exit": code, "kills_mid_stream": mid_stream},
    )


def run_sigterm_scenario(
    broker: Any,
    bundle: Path,
    workdir: Path,
    *,
    n_events: int,
    stops: int,
    rate: float = 500.0,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 3: SIGTERM mid-stream, restarting each time: nothing lost, nothing repeated."""
    started = time.monotonic()
    rng = random.Random(seed)
    topics = FaultTopics.fresh(events=4).create(broker)
    sent = make_stream(n_events, prefix=f"t{seed}", seed=seed)
    collector = OutputCollector(broker.bootstrap_servers, topics).start()
    group = _group()
    # A long session: no spurious rebalance may replay a batch in this scenario.
    env = serve_env(
        topics,
        consumer__session_timeout_ms=3000,
        consumer__heartbeat_interval_ms=500,
        consumer__batch_size=100,
    )
    stream = StreamProducer(broker.bootstrap_servers, topics.events, sent, rate=rate)
    stream.pause()  # runs while a serve process runs
    stream.start()
    codes = []
    mid_stream = 0
    proc = None
    try:
        for k in range(stops):
            proc = ServeProcess(
                bundle, broker.bootstrap_servers, group, env, workdir / f"term-{k}.log"
            ).start()
            proc.wait_log(r"partitions assigned partitions=\S+", timeout=60)
            stream.resume()
            time.sleep(rng.uniform(0.3, 1.0))
            mid_stream += not stream.done
            codes.append(proc.term())
            stream.pause()  # no backlog builds up while the next process starts
            log(
                f"stop {k + 1}/{stops} exit={codes[-1]} produced={stream.produced} "
                f"accounted={len(collector.accounted(sent))}/{len(sent)}"
            )
        proc = ServeProcess(
            bundle, broker.bootstrap_servers, group, env, workdir / "term-final.log"
        ).start()
        stream.resume()
        stream.join()
        collector.wait_accounted(sent, timeout=120)
        proc.wait_log(r"partitions assigned", timeout=30)
        codes.append(proc.term())
        collector.drain(idle_s=0.5)
    finally:
        stream.stop()
        collector.stop()
        if proc is not None:
            proc.ensure_dead()
    report = check_collected(sent, [collector])
    return ScenarioResult(
        "SIGTERM",
        report,
        faults=stops,
        seconds=time.monotonic() - started,
        notes={"exit_codes": codes, "stopped_mid_stream": mid_stream},
    )


def run_replica_scenario(
    broker: Any,
    bundle: Path,
    workdir: Path,
    *,
    n_events: int,
    rate: float,
    seed: int = 0,
    session_timeout_ms: int = 2000,
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 2: two replicas, a third added, one killed (-9) mid-stream."""
    started = time.monotonic()
    rng = random.Random(seed)
    topics = FaultTopics.fresh(events=6).create(broker)
    sent = make_stream(n_events, prefix=f"r{seed}", seed=seed)
    collector = OutputCollector(broker.bootstrap_servers, topics).start()
    group = _group()
    env = serve_env(
        topics,
        consumer__session_timeout_ms=session_timeout_ms,
        consumer__heartbeat_interval_ms=max(session_timeout_ms // 6, 100),
        consumer__batch_size=100,
    )
    replicas: dict[str, ServeProcess] = {}

    def start(name: str) -> ServeProcess:
        replicas[name] = ServeProcess(
            bundle, broker.bootstrap_servers, group, env, workdir / f"replica-{name}.log"
        ).start()
        return replicas[name]

    stream = None
    try:
        a, b = start("a"), start("b")
        assert a.wait_log(r"partitions assigned partitions=\S+", 60), a.log()[-2000:]
        assert b.wait_log(r"partitions assigned partitions=\S+", 60), b.log()[-2000:]
        stream = StreamProducer(broker.bootstrap_servers, topics.events, sent, rate=rate).start()
        collector.wait_accounted(sent, 0.2, timeout=60)
        start("c")
        log(f"c started accounted={len(collector.accounted(sent))}")
        collector.wait_accounted(sent, 0.4, timeout=60)
        victim = rng.choice(["a", "b"])
        replicas[victim].kill9()
        log(f"killed {victim} accounted={len(collector.accounted(sent))}")
        stream.join()
        collector.wait_accounted(sent, timeout=120)
        collector.drain(idle_s=1.0)
        codes = {name: p.term() for name, p in replicas.items() if name != victim}
        collector.drain(idle_s=0.5)
    finally:
        if stream is not None:
            stream.stop()
        collector.stop()
        for p in replicas.values():
            p.ensure_dead()
    report = check_collected(sent, [collector])
    assignments = {name: p.assignments(topics.events) for name, p in replicas.items()}
    survivors = [n for n in replicas if n != victim]
    final = set().union(*(assignments[n][-1] for n in survivors if assignments[n]))
    return ScenarioResult(
        "replicas",
        report,
        faults=1,
        seconds=time.monotonic() - started,
        notes={
            "victim": victim,
            "exit_codes": codes,
            "rebalances": {n: len(v) for n, v in assignments.items()},
            "every_replica_assigned": all(any(s) for s in assignments.values()),
            "survivors_cover_all_partitions": final == set(range(6)),
        },
    )


def run_outage_scenario(
    bundle: Path,
    workdir: Path,
    *,
    n_events: int,
    rate: float,
    outage_s: float,
    give_up_after_s: float,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 4: the broker dies mid-run; a fresh one comes up at the same address.

    The embedded broker keeps nothing, so the new one gets the topics again and the events
    the old one had not seen through: everything the old broker acknowledged is read out
    before it stops (``serve`` is frozen with SIGSTOP meanwhile, so nothing it acknowledges
    goes unseen, then thawed for the outage). At the end the second broker is stopped for
    good: ``serve`` must give up after ``give_up_after_s`` with exit code 2 and one line.
    """
    from stream_detector.devbroker import EmbeddedBroker, free_port

    started = time.monotonic()
    port = free_port()
    topics = FaultTopics.fresh(events=4)
    sent = make_stream(n_events, prefix=f"o{seed}", seed=seed)
    first = EmbeddedBroker(port=port).start()
    second = None
    collectors: list[OutputCollector] = []
    proc = None
    notes: dict[str, Any] = {}
    try:
        topics.create(first)
        collectors.append(OutputCollector(first.bootstrap_servers, topics).start())
        env = serve_env(
            topics,
            kafka__give_up_after_s=give_up_after_s,
            kafka__request_timeout_ms=5000,
            consumer__session_timeout_ms=3000,
            consumer__heartbeat_interval_ms=500,
        )
        proc = ServeProcess(bundle, first.bootstrap_servers, _group(), env, workdir / "outage.log")
        proc.start()
        assert proc.wait_log(r"partitions assigned partitions=\S+", 60), proc.log()[-2000:]
        stream = StreamProducer(first.bootstrap_servers, topics.events, sent, rate=rate).start()
        collectors[0].wait_accounted(sent, 0.35, timeout=60)
        notes["ready_before"] = proc.get("/readyz")
        proc.signal(signal.SIGSTOP)
        stream.stop()
        collectors[0].drain(idle_s=1.0)
        collectors[0].stop()
        first.stop(timeout=0.2)  # the process dies (SIGKILL after 0.2 s): no graceful close
        proc.signal(signal.SIGCONT)
        log(f"broker stopped accounted={len(collectors[0].accounted(sent))}/{len(sent)}")
        statuses = []
        deadline = time.monotonic() + outage_s
        while time.monotonic() < deadline:
            statuses.append(proc.get("/readyz", timeout=1))
            time.sleep(0.25)
        notes["ready_during"] = sorted(set(statuses))
        second = EmbeddedBroker(port=port).start()
        topics.create(second)
        done = collectors[0].accounted(sent)
        remaining = [m for m in sent if m.key not in done]
        collectors.append(OutputCollector(second.bootstrap_servers, topics).start())
        produce(second.bootstrap_servers, topics.events, remaining)
        log(f"fresh broker up; produced again={len(remaining)}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(done | collectors[1].accounted(sent)) == len(sent):
                break
            time.sleep(0.1)
        collectors[1].drain(idle_s=1.0)
        notes["ready_after"] = proc.get("/readyz")
        notes["alive_after_outage"] = proc.alive()
        collectors[1].stop()
        second.stop(timeout=0.2)
        gave_up_at = time.monotonic()
        code = proc.wait(give_up_after_s + 60)
        notes["exit_code_when_broker_gone"] = code
        notes["gave_up_after_s"] = round(time.monotonic() - gave_up_at, 1)
        notes["last_line"] = proc.log().strip().splitlines()[-1][:160]
    finally:
        for c in collectors:
            c.stop()
        if proc is not None:
            proc.ensure_dead()
        first.stop()
        if second is not None:
            second.stop()
    report = check_collected(sent, collectors)
    return ScenarioResult(
        "broker outage", report, faults=1, seconds=time.monotonic() - started, notes=notes
    )


def run_slow_scenario(
    broker: Any,
    bundle_path: Path,
    *,
    n_events: int,
    ms_per_row: float,
    max_poll_interval_ms: int,
    batch_size: int,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 5: a model so slow that a full batch takes longer than ``max_poll_interval_ms``.

    In process: the bundle's ``score_samples`` sleeps ``ms_per_row`` per event. The first batch
    overruns, the consumer leaves its group, the batch is dropped unpublished and replayed;
    batch pacing then keeps every batch inside the interval. No crash, no loss.

    The events topic has one partition, so the first poll is a full batch (with two, it could
    hold one partition's records only, and not overrun).
    """
    from prometheus_client import CollectorRegistry

    from stream_detector.bundle import load_bundle
    from stream_detector.config import DetectorSettings
    from stream_detector.service import Service

    started = time.monotonic()
    topics = FaultTopics.fresh(events=1).create(broker)
    sent = make_stream(n_events, prefix=f"s{seed}", seed=seed)
    produce(broker.bootstrap_servers, topics.events, sent)
    collector = OutputCollector(broker.bootstrap_servers, topics).start()
    bundle = load_bundle(bundle_path)
    score = bundle.score_samples

    def slow_score(X: Any) -> Any:
        time.sleep(len(X) * ms_per_row / 1000)
        return score(X)

    bundle.score_samples = slow_score  # type: ignore[method-assign]
    settings = DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "connect_timeout_s": 10},
            "topics": topics.overrides(),
            "consumer": {
                "group_id": _group(),
                "session_timeout_ms": 3000,
                "heartbeat_interval_ms": 500,
                "max_poll_interval_ms": max_poll_interval_ms,
                "batch_size": batch_size,
            },
            "metrics": {"port": 0},
        }
    )
    registry = CollectorRegistry()
    detector = Service(settings, bundle, registry=registry)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["code"] = detector.run()
        except Exception as exc:  # noqa: BLE001 - a crash is what this scenario looks for
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        collector.wait_accounted(sent, timeout=180)
        collector.drain(idle_s=1.0)
        notes = {
            "alive": thread.is_alive(),
            "replayed_fenced": registry.get_sample_value(
                "stream_detector_batches_replayed_total", {"reason": "fenced"}
            )
            or 0.0,
            "replayed_commit_failed": registry.get_sample_value(
                "stream_detector_batches_replayed_total", {"reason": "commit_failed"}
            )
            or 0.0,
            "assignments": detector.delivery.listener.rebalances,
            "batch_limit": detector.delivery.pacer.limit,
            "scored_share": sum(m.event_id is not None for m in sent) / len(sent),
        }
    finally:
        detector.stop()
        thread.join(timeout=60)
        collector.stop()
    notes.update(outcome)
    report = check_collected(sent, [collector])
    return ScenarioResult(
        "slow processing", report, faults=1, seconds=time.monotonic() - started, notes=notes
    )
