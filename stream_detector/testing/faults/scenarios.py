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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_detector.testing.serve import ServeProcess

from .checker import Report, Sent
from .harness import (
    FaultTopics,
    OutputCollector,
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


def _session(session_timeout_ms: int) -> dict[str, Any]:
    """Consumer settings for a session timeout, heartbeats six times within it."""
    return {
        "consumer__session_timeout_ms": session_timeout_ms,
        "consumer__heartbeat_interval_ms": max(session_timeout_ms // 6, 100),
    }


@dataclass
class Run:
    """What a scenario sets up first: topics, the events, a collector, a group, ``serve``'s env.

    ``Run.prepare`` creates fresh topics on ``broker``, makes ``n_events`` events (with bad ones
    mixed in) and starts an output collector; :meth:`serve` starts one ``serve`` process of the
    group with that environment.
    """

    broker: Any
    bundle: Path
    workdir: Path
    topics: FaultTopics
    sent: list[Sent]
    collector: OutputCollector
    group: str
    env: dict[str, str]
    rng: random.Random
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def prepare(
        cls,
        broker: Any,
        bundle: Path,
        workdir: Path,
        *,
        prefix: str,
        n_events: int,
        seed: int,
        events: int = 4,
        isolation_level: str = "read_uncommitted",
        **settings: Any,
    ) -> Run:
        topics = FaultTopics.fresh(events=events).create(broker)
        sent = make_stream(n_events, prefix=f"{prefix}{seed}", seed=seed)
        collector = OutputCollector(
            broker.bootstrap_servers, topics, isolation_level=isolation_level
        ).start()
        env = serve_env(topics, **settings)
        rng = random.Random(seed)
        return cls(broker, bundle, workdir, topics, sent, collector, _group(), env, rng)

    def serve(self, name: str, *, faults: Sequence[str] = ()) -> ServeProcess:
        """Start one ``serve`` of the group, logging to ``<workdir>/<name>.log``."""
        return ServeProcess(
            self.bundle,
            self.broker.bootstrap_servers,
            self.group,
            self.env,
            self.workdir / f"{name}.log",
            faults=faults,
        ).start()

    def stream(self, rate: float, *, paused: bool = False) -> StreamProducer:
        """Start producing the events at ``rate`` per second (``paused``: from the first resume)."""
        stream = StreamProducer(
            self.broker.bootstrap_servers, self.topics.events, self.sent, rate=rate
        )
        if paused:
            stream.pause()
        return stream.start()

    def produce_all(self) -> None:
        produce(self.broker.bootstrap_servers, self.topics.events, self.sent)

    def accounted(self) -> str:
        return f"{len(self.collector.accounted(self.sent))}/{len(self.sent)}"

    def check(self) -> Report:
        return check_collected(self.sent, [self.collector])

    def result(self, name: str, *, faults: int, notes: dict[str, Any]) -> ScenarioResult:
        """The checked outputs, with the time since :meth:`prepare`."""
        seconds = time.monotonic() - self.started
        return ScenarioResult(name, self.check(), faults=faults, seconds=seconds, notes=notes)


def _wait_assigned(proc: ServeProcess, timeout: float = 60) -> bool:
    return proc.wait_log(r"partitions assigned partitions=\S+", timeout)


#: Where a kill lands: right after a batch reached a phase, or at a random moment.
KILL_MODES = ("decided", "published", "committed", "random")


def _kill_mode(k: int, rng: random.Random) -> str:
    """Each mode once first, then modes at random."""
    return KILL_MODES[k] if k < len(KILL_MODES) else rng.choice(KILL_MODES)


def _kill_once(
    run: Run,
    name: str,
    mode: str,
    *,
    most_batches: int = 4,
    stream: StreamProducer | None = None,
) -> tuple[str, bool]:
    """Start one ``serve`` and ``kill -9`` it; return where the kill landed and if mid-stream.

    A phase kill comes from the process itself after 1 to ``most_batches`` batches reached
    the phase; when the phase never comes (nothing left to read) it becomes a random kill
    from outside. ``stream`` is resumed while the process runs, paused after.
    """
    faults = (
        []
        if mode == "random"
        else ["--kill-phase", mode, "--kill-after", str(run.rng.randint(1, most_batches))]
    )
    proc = run.serve(name, faults=faults)
    try:
        _wait_assigned(proc)
        if stream is not None:
            stream.resume()
        if mode == "random":
            time.sleep(run.rng.uniform(0.05, 1.2))
        elif proc.wait(30) is None or "fault: kill -9" not in proc.log():
            mode = "random"
        mid_stream = stream is not None and not stream.done
        proc.kill9()
    finally:
        proc.ensure_dead()
        if stream is not None:
            stream.pause()
    return mode, mid_stream


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
    run = Run.prepare(
        broker,
        bundle,
        workdir,
        prefix="k",
        n_events=n_events,
        seed=seed,
        **_session(session_timeout_ms),
        consumer__batch_size=batch_size,
    )
    stream = None
    if rate is None:
        run.produce_all()
    else:
        stream = run.stream(rate, paused=True)
    hits: dict[str, int] = dict.fromkeys(KILL_MODES, 0)
    done = 0
    mid_stream = 0
    final = None
    try:
        for k in range(kills):
            mode, during_stream = _kill_once(
                run, f"kill-{k}", _kill_mode(k, run.rng), stream=stream
            )
            mid_stream += during_stream
            hits[mode] += 1
            done += 1
            log(f"kill {done}/{kills} at={mode} accounted={run.accounted()}")
        final = run.serve("final")
        if stream is not None:
            stream.resume()
            stream.join(600)
        run.collector.wait_accounted(run.sent, timeout=180)
        time.sleep(1.0)
        run.collector.drain(idle_s=1.0)
        code = final.term()
        run.collector.drain(idle_s=0.5)
    finally:
        if stream is not None:
            stream.stop()
        run.collector.stop()
        if final is not None:
            final.ensure_dead()
    return run.result(
        "kill -9",
        faults=done,
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
    # A long session: no spurious rebalance may replay a batch in this scenario.
    run = Run.prepare(
        broker, bundle, workdir, prefix="t", n_events=n_events, seed=seed, **_session(3000)
    )
    stream = run.stream(rate, paused=True)  # runs while a serve process runs
    codes = []
    mid_stream = 0
    proc = None
    try:
        for k in range(stops):
            proc = run.serve(f"term-{k}")
            _wait_assigned(proc)
            stream.resume()
            time.sleep(run.rng.uniform(0.3, 1.0))
            mid_stream += not stream.done
            codes.append(proc.term())
            stream.pause()  # no backlog builds up while the next process starts
            log(
                f"stop {k + 1}/{stops} exit={codes[-1]} produced={stream.produced} "
                f"accounted={run.accounted()}"
            )
        proc = run.serve("term-final")
        stream.resume()
        stream.join()
        run.collector.wait_accounted(run.sent, timeout=120)
        proc.wait_log(r"partitions assigned", timeout=30)
        codes.append(proc.term())
        run.collector.drain(idle_s=0.5)
    finally:
        stream.stop()
        run.collector.stop()
        if proc is not None:
            proc.ensure_dead()
    return run.result(
        "SIGTERM",
        faults=stops,
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
    assignor: str = "range",
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 2: two replicas, a third added, one killed (-9) mid-stream, the group
    spreading partitions with ``assignor`` (``consumer.assignor``)."""
    run = Run.prepare(
        broker,
        bundle,
        workdir,
        prefix="r",
        n_events=n_events,
        seed=seed,
        events=6,
        **_session(session_timeout_ms),
        consumer__batch_size=100,
        consumer__assignor=assignor,
    )
    replicas: dict[str, ServeProcess] = {}

    def start(name: str) -> ServeProcess:
        replicas[name] = run.serve(f"replica-{name}")
        return replicas[name]

    stream = None
    try:
        a, b = start("a"), start("b")
        assert _wait_assigned(a), a.log()[-2000:]
        assert _wait_assigned(b), b.log()[-2000:]
        stream = run.stream(rate)
        run.collector.wait_accounted(run.sent, 0.2, timeout=60)
        # c may take seconds of imports to start on a loaded machine: the kill waits until it
        # is assigned (it must not be stopped before it could join).
        c = start("c")
        assert _wait_assigned(c, timeout=120), c.log()[-2000:]
        log(f"c started accounted={run.accounted()}")
        run.collector.wait_accounted(run.sent, 0.4, timeout=60)
        victim = run.rng.choice(["a", "b"])
        replicas[victim].kill9()
        log(f"killed {victim} accounted={run.accounted()}")
        stream.join()
        run.collector.wait_accounted(run.sent, timeout=120)
        # The survivors take the victim's partitions once the group notices it is gone (a
        # session timeout): wait for that before stopping them.
        survivors = [n for n in replicas if n != victim]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and set().union(
            *(taken[-1] for n in survivors if (taken := replicas[n].assignments(run.topics.events)))
        ) != set(range(6)):
            time.sleep(0.5)
        run.collector.drain(idle_s=1.0)
        codes = {name: p.term() for name, p in replicas.items() if name != victim}
        run.collector.drain(idle_s=0.5)
    finally:
        if stream is not None:
            stream.stop()
        run.collector.stop()
        for p in replicas.values():
            p.ensure_dead()
    assignments = {name: p.assignments(run.topics.events) for name, p in replicas.items()}
    survivors = [n for n in replicas if n != victim]
    final = set().union(*(assignments[n][-1] for n in survivors if assignments[n]))
    return run.result(
        "replicas" if assignor == "range" else f"replicas ({assignor})",
        faults=1,
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
    kind: str = "tansu",
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 4: the broker dies mid-run; a fresh one comes up at the same address.

    ``kind`` is the development broker's (``tansu`` or ``apache``). The new broker is empty, so the new one gets the topics again and the events
    the old one had not seen through: everything the old broker acknowledged is read out
    before it stops (``serve`` is frozen with SIGSTOP meanwhile, so nothing it acknowledges
    goes unseen, then thawed for the outage, which lasts ``outage_s`` or, until ``/readyz`` has
    answered 503, up to half of ``give_up_after_s``). At the end the second broker is stopped for
    good: ``serve`` must give up after ``give_up_after_s`` with exit code 2 and one line.
    """
    from stream_detector.devbroker import free_port, make_broker

    started = time.monotonic()
    port = free_port()
    topics = FaultTopics.fresh(events=4)
    sent = make_stream(n_events, prefix=f"o{seed}", seed=seed)
    first = make_broker(kind, port=port).start()
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
        # The outage lasts ``outage_s``, and longer (up to half the give-up window) until
        # /readyz has answered 503: on a loaded machine the thawed process may take a while to
        # notice that its connections are gone.
        statuses = []
        down_at = time.monotonic()
        while True:
            elapsed = time.monotonic() - down_at
            if elapsed >= outage_s and (503 in statuses or elapsed >= give_up_after_s / 2):
                break
            status = proc.get("/readyz", timeout=1)
            if status == 503 and 503 not in statuses:
                notes["not_ready_after_s"] = round(time.monotonic() - down_at, 2)
            statuses.append(status)
            time.sleep(0.25)
        notes["ready_during"] = sorted(set(statuses))
        notes["outage_s"] = round(time.monotonic() - down_at, 2)
        second = make_broker(kind, port=port).start()
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


def run_exactly_once_scenario(
    broker: Any,
    bundle: Path,
    workdir: Path,
    *,
    n_events: int,
    kills: int,
    seed: int = 0,
    zombie: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> ScenarioResult:
    """Scenario 7: ``processing_guarantee: exactly_once`` under ``kill -9``, and a zombie.

    A backlog is produced first. ``serve`` in exactly-once mode is killed ``kills`` times, each
    time right after a phase of a batch (scored; outputs sent with the transaction open;
    committed) or at a random moment, and restarted. Then, with ``zombie``, an instance stops
    itself (SIGSTOP) with a transaction open, a replacement with the same transactional id
    takes over, and the old one is resumed: its commit must be refused (fenced). A
    ``read_committed`` reader must see every input exactly once; a ``read_uncommitted`` reader
    of the same topics counts the aborted records the other never sees.

    Needs a broker that hides aborted records from ``read_committed`` readers (Apache Kafka).
    """
    run = Run.prepare(
        broker,
        bundle,
        workdir,
        prefix="x",
        n_events=n_events,
        seed=seed,
        isolation_level="read_committed",
        **_session(3000),
        consumer__batch_size=100,
        processing_guarantee="exactly_once",
    )
    raw = OutputCollector(broker.bootstrap_servers, run.topics).start()
    # The last fifth waits for the zombie, so that it has a batch to hold a transaction open on.
    held_back = len(run.sent) // 5 if zombie else 0
    produce(broker.bootstrap_servers, run.topics.events, run.sent[: len(run.sent) - held_back])
    hits: dict[str, int] = dict.fromkeys(KILL_MODES, 0)
    notes: dict[str, Any] = {}
    procs: list[ServeProcess] = []
    try:
        for k in range(kills):
            mode, _ = _kill_once(run, f"eos-kill-{k}", _kill_mode(k, run.rng), most_batches=3)
            hits[mode] += 1
            log(f"kill {k + 1}/{kills} at={mode} accounted={run.accounted()}")
        if zombie:
            produce(
                broker.bootstrap_servers, run.topics.events, run.sent[len(run.sent) - held_back :]
            )
            old = run.serve("eos-zombie", faults=["--pause-phase", "published"])
            procs.append(old)
            notes["zombie_paused"] = old.wait_log(r"fault: paused", 90)
            new = run.serve("eos-replacement")
            procs.append(new)
            # The replacement's init_transactions fences the old producer; it gets the
            # partitions once the old member's session has expired.
            notes["replacement_assigned"] = _wait_assigned(new, 90)
            old.signal(signal.SIGCONT)
            # Its open transaction was aborted by the replacement: the commit is refused.
            notes["zombie_refused"] = old.wait_log(r"fault: resumed[\s\S]*transaction aborted", 60)
            notes["zombie_exit"] = old.term()
            log(f"zombie resumed and refused={notes['zombie_refused']} accounted={run.accounted()}")
            final = new
        else:
            final = run.serve("eos-final")
            procs.append(final)
        run.collector.wait_accounted(run.sent, timeout=240)
        run.collector.drain(idle_s=1.0)
        notes["final_exit"] = final.term()
        run.collector.drain(idle_s=0.5)
        raw.drain(idle_s=0.5)
    finally:
        run.collector.stop()
        raw.stop()
        for p in procs:
            p.ensure_dead()
    notes["kills_at"] = hits
    notes["aborted_records_hidden"] = sum(
        len(raw.records(t)) - len(run.collector.records(t)) for t in run.topics.outputs
    )
    return run.result(
        "exactly-once kill -9",
        faults=kills + zombie,
        notes=notes,
    )
