"""The fault harness in full: every scenario of the reliability issue, at full size.

Runs the real service against the embedded broker under each fault, hands everything found on
the output topics to the checker (``stream_detector.testing.faults``), and prints one line per scenario and
the figures: kills survived, events checked, bad inputs tried, the start-up cost of duplicate
suppression, and memory under a 10x burst. ``make test`` runs smaller variants of the same
scenarios (``tests/faults/``).

    python benchmarks/faults.py [--broker tansu|apache] [--only kill,hostile,...] [--kills 24]
                                [--eos-kills 24] [--seed 0]

``--broker apache`` runs every scenario on Apache Kafka (Java 17+; see ``stream-detector
broker --kind apache``) and adds ``exactly_once``: ``processing_guarantee: exactly_once``
under ``--eos-kills`` kills and a fenced zombie, read back with ``read_committed``, and runs
the replicas scenario a second time with ``consumer.assignor: cooperative-sticky``.

Exit code 1 if any scenario loses an event, doubles an alert or misroutes a message.
Timings are wall clock on a shared machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stream_detector.cli import main as cli_main
from stream_detector.devbroker import DevBroker, make_broker
from stream_detector.testing.faults.attacks import ATTACKS
from stream_detector.testing.faults.harness import (
    FaultTopics,
    StreamProducer,
    make_stream,
    serve_env,
    write_fault_bundle,
)
from stream_detector.testing.faults.hostile import Hostile, HostileService, hostile_messages
from stream_detector.testing.faults.scenarios import (
    ScenarioResult,
    run_exactly_once_scenario,
    run_kill_scenario,
    run_outage_scenario,
    run_replica_scenario,
    run_sigterm_scenario,
    run_slow_scenario,
)
from stream_detector.testing.serve import ServeProcess

SCENARIOS = (
    "kill",
    "exactly_once",
    "replicas",
    "sigterm",
    "outage",
    "slow",
    "hostile",
    "bundle",
    "dedupe",
    "burst",
)


def say(line: str) -> None:
    print(line, flush=True)


def hostile(broker: DevBroker, bundle: Path, examples: int) -> ScenarioResult:
    """Scenario 6: hypothesis-generated hostile messages, then one of 10 MB."""
    from stream_detector.testing.faults.checker import Report

    started = time.monotonic()
    service = HostileService(broker, bundle).start()
    total = Report()
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        batch=st.lists(hostile_messages(max_message_bytes=service.max_message_bytes), max_size=25)
    )
    def feed(batch: list[Hostile]) -> None:
        report = service.feed(batch)
        _add(total, report)
        if not report.ok(exactly_once_decisions=True) or not service.alive:
            failures.append(report.details())

    try:
        feed()
        huge = (
            b'{"amount": 1, "hour_of_day": 2, "distance": 3, "pad": "' + b"x" * (10 << 20) + b'"}'
        )
        report = service.feed([Hostile(huge, "too_large")], timeout=120)
        _add(total, report)
        if not report.ok(exactly_once_decisions=True):
            failures.append(report.details())
    finally:
        service.stop()
    total.misrouted += failures
    return ScenarioResult(
        "hostile input",
        total,
        faults=service.bad_fed + 1,
        seconds=time.monotonic() - started,
        notes={
            "examples": examples,
            "bad_inputs": service.bad_fed + 1,
            "service_alive": service.error is None,
        },
    )


def _add(total: object, report: object) -> None:
    for name in ("sent", "valid", "invalid", "decisions", "alerts", "dead_letters"):
        setattr(total, name, getattr(total, name) + getattr(report, name))
    for name in ("lost", "lost_dead_letters", "lost_alerts", "misrouted"):
        getattr(total, name).extend(getattr(report, name))
    for name in ("duplicated_decisions", "duplicated_alerts", "duplicated_dead_letters"):
        getattr(total, name).update(getattr(report, name))


def bundle_attacks(bundle: Path, workdir: Path) -> list[str]:
    """Scenario 7: every attack through ``serve``; returns the problems found."""
    import contextlib
    import io

    problems = []
    for name, (attack, message) in ATTACKS.items():
        target = workdir / f"attack-{uuid.uuid4().hex[:6]}"
        shutil.copytree(bundle, target)
        marker = workdir / f"ran-{uuid.uuid4().hex[:6]}"
        attack(target, marker)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli_main(
                [
                    "serve",
                    "--model",
                    str(target),
                    "--bootstrap-servers",
                    "127.0.0.1:1",
                    "--metrics-port",
                    "0",
                ]
            )
        lines = err.getvalue().strip().splitlines()
        ok = code == 2 and len(lines) == 1 and message in lines[0] and not marker.exists()
        say(
            f"  bundle attack {name!r}: {'refused' if ok else 'NOT REFUSED'}: {lines[-1] if lines else ''}"
        )
        if not ok:
            problems.append(name)
    return problems


def dedupe_cost(broker: DevBroker) -> list[tuple[int, int, int, float]]:
    """Seconds to read back alert ids, by alerts on the topic and records read per partition."""
    from kafka import KafkaConsumer, KafkaProducer

    from stream_detector.kafka.dedupe import read_back_alert_ids

    rows = []
    for n_alerts in (0, 10_000, 100_000, 400_000):
        topic = f"alerts-{uuid.uuid4().hex[:8]}"
        broker.create_topics({topic: 4})
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, linger_ms=20, batch_size=1 << 20
        )
        value = b'{"event_id": "x", "score": 0.97, "flagged": true, "reasons": []}'
        for i in range(n_alerts):
            producer.send(topic, key=f"ev-{i}".encode(), value=value)
        producer.flush()
        producer.close()
        for per_partition in (10_000, 100_000):
            reader = KafkaConsumer(
                bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False
            )
            result = read_back_alert_ids(
                reader, topic, records_per_partition=per_partition, timeout_s=120
            )
            reader.close()
            rows.append((n_alerts, per_partition, result.records, result.seconds))
    return rows


def burst(
    broker: DevBroker, bundle: Path, workdir: Path, *, rate: float, seconds: float
) -> dict[str, float]:
    """Peak RSS of ``serve`` at a steady rate, then at 10x that rate (a backlog builds)."""
    topics = FaultTopics.fresh(events=4).create(broker)
    env = serve_env(
        topics,
        consumer__batch_size=500,
        consumer__session_timeout_ms=6000,
        consumer__heartbeat_interval_ms=1000,
    )
    proc = ServeProcess(
        bundle,
        broker.bootstrap_servers,
        f"burst-{uuid.uuid4().hex[:6]}",
        env,
        workdir / "burst.log",
    ).start()
    assert proc.wait_log(r"partitions assigned", 60), proc.log()[-2000:]
    samples: list[tuple[float, float, float]] = []
    stop = threading.Event()

    def processed() -> float:
        url = f"http://127.0.0.1:{proc.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("stream_detector_events_total "):
                    return float(line.split()[1])
        return 0.0

    def sample() -> None:
        while not stop.is_set():
            try:
                rss = _rss_mb(proc.pid)
                samples.append((time.monotonic(), rss, processed()))
            except OSError:
                return
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out: dict[str, float] = {}
    try:
        for label, r in (("steady", rate), ("burst", 10 * rate)):
            sent = make_stream(
                int(r * seconds), prefix=f"{label}-{uuid.uuid4().hex[:4]}", seed=7, bad_every=0
            )
            base = processed()
            begin = time.monotonic()
            StreamProducer(broker.bootstrap_servers, topics.events, sent, rate=r).start().join(600)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and processed() - base < len(sent):
                time.sleep(0.2)
            window = [s for s in samples if s[0] >= begin]
            out[f"{label}_rate_per_s"] = r
            out[f"{label}_events"] = len(sent)
            out[f"{label}_seconds_to_drain"] = time.monotonic() - begin
            out[f"{label}_rss_peak_mb"] = max(s[1] for s in window)
            out[f"{label}_max_backlog"] = max(
                min(len(sent), (s[0] - begin) * r) - (s[2] - base) for s in window
            )
    finally:
        stop.set()
        sampler.join(5)
        proc.term()
        proc.ensure_dead()
    return out


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--broker", choices=("tansu", "apache"), default="tansu")
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--eos-kills", type=int, default=24, help="kills of exactly_once")
    parser.add_argument("--hostile-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("stream_detector").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    say(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    workdir = Path(tempfile.mkdtemp(prefix="faults-"))
    bundle = write_fault_bundle(workdir / "bundle")
    results: list[ScenarioResult] = []
    problems: list[str] = []

    def log(line: str) -> None:
        say(f"  {line}")

    strict = {"SIGTERM", "slow processing", "hostile input", "exactly-once kill -9"}
    say(f"broker: {args.broker}")

    def run(name: str, scenario: Callable[[], ScenarioResult]) -> None:
        if name not in only:
            return
        try:
            result = scenario()
        except Exception as exc:  # noqa: BLE001 - reported, then the next scenario runs
            problems.append(f"{name}: {exc!r}")
            say(f"FAIL {name}: {exc!r}")
            return
        results.append(result)
        ok = result.report.ok(exactly_once_decisions=result.name in strict)
        say(("PASS " if ok else "FAIL ") + result.line())
        if not ok:
            problems.append(result.report.details())

    with make_broker(args.broker) as broker:
        run(
            "kill",
            lambda: run_kill_scenario(
                broker,
                bundle,
                workdir,
                n_events=20_000,
                kills=args.kills,
                rate=1000.0,
                seed=args.seed,
                log=log,
            ),
        )
        if args.broker == "apache":  # Tansu shows aborted records to read_committed readers
            run(
                "exactly_once",
                lambda: run_exactly_once_scenario(
                    broker,
                    bundle,
                    workdir,
                    n_events=8_000,
                    kills=args.eos_kills,
                    seed=args.seed,
                    log=log,
                ),
            )
        run(
            "replicas",
            lambda: run_replica_scenario(
                broker, bundle, workdir, n_events=12_000, rate=600.0, seed=args.seed, log=log
            ),
        )
        if args.broker == "apache":  # Tansu never completes a cooperative second round
            run(
                "replicas",
                lambda: run_replica_scenario(
                    broker,
                    bundle,
                    workdir,
                    n_events=12_000,
                    rate=600.0,
                    seed=args.seed,
                    assignor="cooperative-sticky",
                    log=log,
                ),
            )
        run(
            "sigterm",
            lambda: run_sigterm_scenario(
                broker,
                bundle,
                workdir,
                n_events=8_000,
                stops=5,
                rate=400.0,
                seed=args.seed,
                log=log,
            ),
        )
        run(
            "slow",
            lambda: run_slow_scenario(
                broker,
                bundle,
                n_events=1_500,
                ms_per_row=10.0,
                max_poll_interval_ms=2_000,
                batch_size=300,
                seed=args.seed,
                log=log,
            ),
        )
        run("hostile", lambda: hostile(broker, bundle, args.hostile_examples))
        if "bundle" in only:
            problems += [f"bundle attack not refused: {n}" for n in bundle_attacks(bundle, workdir)]
        if "dedupe" in only:
            say("dedupe read-back at start-up (4 alerts partitions):")
            say(
                f"  {'alerts on topic':>15} {'read/partition':>14} {'records read':>12} {'seconds':>8}"
            )
            for n, per, records, seconds in dedupe_cost(broker):
                say(f"  {n:>15,} {per:>14,} {records:>12,} {seconds:>8.3f}")
        if "burst" in only:
            figures = burst(broker, bundle, workdir, rate=500.0, seconds=20.0)
            say("memory under a 10x burst (serve, RSS):")
            for k, v in figures.items():
                say(f"  {k} = {v:,.1f}")
            ratio = figures["burst_rss_peak_mb"] / figures["steady_rss_peak_mb"]
            say(f"  burst/steady peak RSS ratio = {ratio:.2f}")
    run(
        "outage",
        lambda: run_outage_scenario(
            bundle,
            workdir,
            n_events=6_000,
            rate=800.0,
            outage_s=5.0,
            # An Apache Kafka broker takes longer to come back than Tansu.
            give_up_after_s=15.0 if args.broker == "tansu" else 120.0,
            seed=args.seed,
            kind=args.broker,
            log=log,
        ),
    )
    say("")
    kills = sum(r.faults for r in results if r.name == "kill -9")
    events = sum(r.report.sent for r in results)
    bad = sum(r.notes.get("bad_inputs", 0) for r in results)
    say("")
    say(
        f"kills survived: {kills}; events checked: {events:,}; bad inputs tried: {bad:,}; "
        f"lost: {sum(r.report.n_lost for r in results)}; "
        f"duplicated alerts: {sum(len(r.report.duplicated_alerts) for r in results)}; "
        "alerts resent after a broker loss: "
        f"{sum(len(r.report.alerts_resent_after_broker_loss) for r in results)}"
    )
    for p in problems:
        say(f"PROBLEM: {p}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
