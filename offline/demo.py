"""``stream-detector demo``: the whole product, end to end, on the embedded broker.

1. start the embedded Kafka-compatible broker on a free port and create the topics;
2. simulate a labelled history of card transactions (ending yesterday) and train a model bundle on
   it, with the behavioural features for card transactions
   (:data:`~stream_detector.simulate.CARD_FEATURES`, the set ``configs/train.yaml`` ships;
   ``--raw-fields``: the transactions' numeric fields as they are);
3. start ``stream-detector serve`` as a separate process against the broker, its feature state
   backfilled from the history;
4. stream the next days' transactions live, each stamped with the wall clock when it is sent
   (so ``serve``'s event lag measures delivery; the calendar features then follow the send
   time), their labels about two seconds later and a few malformed messages mixed in,
   printing each alert as it arrives with the behavioural features that raised its score;
5. print a summary (events, alerts, precision and recall against the simulator's ground truth,
   dead letters, the event lag, the service's own counters) and stop everything it started.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from stream_detector.cli import main
from stream_detector.command import Command
from stream_detector.devbroker import EmbeddedBroker, free_port
from stream_detector.errors import BrokerError, StreamDetectorError
from stream_detector.simulate import CARD_FEATURES, LABEL_COLUMN, TransactionSimulator
from stream_detector.simulate.output import write_csv

__all__ = ["DEMO", "DemoCommand"]

TOPICS = {"events": 4, "labels": 1, "decisions": 4, "alerts": 4, "events.dlq": 1}
_LABEL_DELAY_S = 2.0
"""A live label follows its event by this long (wall clock)."""
_MALFORMED = (
    b"this is not json",
    b'{"amount": "12.50", "hour_of_day": 3}',
    b'{"amount": NaN}',
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _say(text: str) -> None:
    print(text, flush=True)


class _Outputs(threading.Thread):
    """Reads decisions, alerts and dead letters back, printing alerts as they arrive."""

    def __init__(self, bootstrap: str, labels: dict[str, int]) -> None:
        super().__init__(name="demo-outputs", daemon=True)
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self.labels = labels
        self.decided: set[str] = set()
        self.alerted: dict[str, dict[str, Any]] = {}
        self.dead: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka.structs import TopicPartition

        tps = [
            TopicPartition(topic, p)
            for topic in ("decisions", "alerts", "events.dlq")
            for p in range(TOPICS[topic])
        ]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning()
        while not self.stop.is_set():
            for tp, records in self.consumer.poll(timeout_ms=200).items():
                for r in records:
                    if tp.topic == "decisions":
                        self.decided.add(orjson.loads(r.value)["event_id"])
                    elif tp.topic == "alerts":
                        self._alert(orjson.loads(r.value))
                    else:
                        headers = dict(r.headers or [])
                        self.dead.append(headers.get("error.type", b"?").decode())
        self.consumer.close()

    def _alert(self, alert: dict[str, Any]) -> None:
        if alert["event_id"] in self.alerted:
            return
        self.alerted[alert["event_id"]] = alert
        truth = {1: "fraud", 0: "legit"}.get(self.labels.get(alert["event_id"], -1), "?")
        reasons = ", ".join(
            f"{r['feature']}={r['value']:g} ({r['contribution']:+.3f})" for r in alert["reasons"]
        )
        _say(
            f"ALERT {alert['event_id']:<16} score={alert['score']:.3f} "
            f"[truth: {truth:<5}] because {reasons or '-'}"
        )


@contextlib.contextmanager
def _serve(
    bootstrap: str, model: Path, metrics_port: int, log: Path, history: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "STREAM_DETECTOR_CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAM_DETECTOR_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
    }
    cmd = [
        sys.executable,
        "-m",
        "stream_detector",
        "serve",
        "--model",
        str(model),
        "--bootstrap-servers",
        bootstrap,
        "--metrics-port",
        str(metrics_port),
        "--group-id",
        "demo",
        "--backfill",
        str(history),
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise BrokerError(f"serve exited with code {proc.returncode}: {' '.join(tail)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise BrokerError(f"serve did not become ready within {timeout:g}s (see {log})")


def _scrape(port: int) -> tuple[dict[str, float], dict[float, float]]:
    """The service's totals, and its event-lag histogram (upper bound -> cumulative count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    totals: dict[str, float] = {}
    lag: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("stream_detector_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if base in (
                "stream_detector_events_total",
                "stream_detector_alerts_total",
                "stream_detector_events_invalid_total",
            ):
                totals[base] = totals.get(base, 0.0) + float(value)
            elif base == "stream_detector_event_lag_seconds_bucket":
                bound = name.partition('le="')[2].partition('"')[0]
                lag[float(bound)] = float(value)
    return totals, lag


def _lag_bound(buckets: dict[float, float], q: float) -> str:
    """The upper bound of the histogram bucket holding quantile ``q``, as ``<= X s``.

    >>> _lag_bound({0.01: 40.0, 0.025: 95.0, 0.1: 100.0, float("inf"): 100.0}, 0.5)
    '<= 0.025 s'
    >>> _lag_bound({0.01: 40.0, 0.025: 95.0, 0.1: 100.0, float("inf"): 100.0}, 0.99)
    '<= 0.1 s'
    >>> _lag_bound({1.0: 0.0, float("inf"): 0.0}, 0.5)
    '-'
    """
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return "-"
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return f"<= {bound:g} s" if bound != float("inf") else "above every bucket"
    return "-"


class DemoCommand(Command):
    name = "demo"
    help = "run the whole product on an embedded broker: simulate, train, serve, alert, summarise"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--workdir",
            default="demo-output",
            metavar="DIR",
            help="where the history, model and logs go (default demo-output)",
        )
        parser.add_argument(
            "--events",
            type=int,
            default=3000,
            metavar="N",
            help="live events to stream (default 3000)",
        )
        parser.add_argument(
            "--rate",
            type=float,
            default=600.0,
            metavar="N",
            help="live events per second (default 600)",
        )
        parser.add_argument(
            "--history-days",
            type=int,
            default=35,
            metavar="N",
            help="days of labelled history to train on (default 35)",
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--technique",
            default="auto",
            help="training technique (default auto: compare the techniques, train the winner)",
        )
        parser.add_argument(
            "--raw-fields",
            action="store_true",
            help="train on the transactions' numeric fields as they are, not the behavioural "
            "features",
        )

    def run(self, args: argparse.Namespace) -> int:
        if args.events < 1 or args.rate <= 0 or args.history_days < 2:
            raise StreamDetectorError("--events must be >= 1, --rate > 0, --history-days >= 2")
        started = time.monotonic()
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        model = work / "model"
        if model.exists():
            for f in model.iterdir():
                f.unlink()
            model.rmdir()

        # The history ends yesterday; the live events, stamped when sent, follow it in event time.
        start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.history_days)
        sim = TransactionSimulator.from_preset(
            "demo", random_state=args.seed, start_date=start.isoformat()
        )
        history = sim.generate(start_day=0, n_days=args.history_days)
        history_csv = work / "history.csv"
        write_csv(history, history_csv)
        config = work / "train.yaml"
        keys = ["customer_id", "terminal_id"]
        section = {"data": {"exclude": keys}} if args.raw_fields else {"features": CARD_FEATURES}
        config.write_text(yaml.safe_dump(section, sort_keys=False), encoding="utf-8")
        _say(
            f"[1/5] simulated {len(history):,} past transactions, {history.n_frauds} frauds "
            f"({history.fraud_rate:.2%}) -> {history_csv}"
        )

        code = main(
            [
                "train",
                "--data",
                str(history_csv),
                "--label",
                LABEL_COLUMN,
                "--out",
                str(model),
                "--technique",
                args.technique,
                "--config",
                str(config),
            ]
        )
        if code != 0:
            raise StreamDetectorError(f"training failed with exit code {code}")
        manifest = orjson.loads((model / "manifest.json").read_bytes())
        _say(
            f"[2/5] trained {manifest['technique']} {manifest['scorer']} model "
            f"{manifest['model_version']}: threshold {manifest['threshold']:.3f} "
            f"({manifest['threshold_policy']}), validation PR-AUC {manifest['metrics'].get('pr_auc', 0):.3f}"
        )

        live = sim.generate(start_day=args.history_days, n_days=max(1, args.events // 800 + 1))
        live = live.head(min(args.events, len(live)))
        labels = dict(zip(live["event_id"].tolist(), live[LABEL_COLUMN].tolist(), strict=True))

        with EmbeddedBroker() as broker:
            broker.create_topics(TOPICS)
            bootstrap = broker.bootstrap_servers
            _say(f"[3/5] embedded broker at {bootstrap}; topics {', '.join(TOPICS)}")
            metrics_port = free_port()
            log = work / "serve.log"
            with _serve(bootstrap, model, metrics_port, log, history_csv) as proc:
                _wait_ready(metrics_port, proc, log)
                _say(
                    f"[4/5] serve is ready; metrics at http://127.0.0.1:{metrics_port}/metrics; "
                    f"streaming {len(live):,} events at {args.rate:g}/s"
                )
                outputs = _Outputs(bootstrap, labels)
                outputs.start()
                n_bad = self._stream(bootstrap, live, args.rate)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and (
                    len(outputs.decided) < len(live) or len(outputs.dead) < n_bad
                ):
                    time.sleep(0.2)
                totals, lag = _scrape(metrics_port)
                outputs.stop.set()
                outputs.join(timeout=5)
            rc = proc.returncode
        self._summary(
            live, outputs, n_bad, totals, lag, metrics_port, rc, time.monotonic() - started
        )
        missing = len(live) - len(outputs.decided)
        return 0 if missing == 0 and len(outputs.dead) == n_bad and rc == 0 else 1

    @staticmethod
    def _stream(bootstrap: str, live: Any, rate: float) -> int:
        """Send the events stamped with the wall clock, each label ``_LABEL_DELAY_S`` later."""
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        n_bad = 0
        t0 = time.monotonic()
        pending: collections.deque[tuple[float, str, int]] = collections.deque()

        def send_label(event_id: str, label: int) -> None:
            message = {"event_id": event_id, "label": label, "timestamp": _now_ms()}
            producer.send("labels", key=event_id.encode(), value=orjson.dumps(message))

        truth = live[LABEL_COLUMN].tolist()
        for i, event in enumerate(live.iter_events()):
            event["timestamp"] = _now_ms()
            # One partition's order per card: the card's windows see its events in time order.
            key = event["customer_id"].encode()
            producer.send("events", key=key, value=orjson.dumps(event))
            pending.append((time.monotonic() + _LABEL_DELAY_S, event["event_id"], truth[i]))
            while pending and pending[0][0] <= time.monotonic():
                send_label(*pending.popleft()[1:])
            if i % 600 == 300:
                producer.send(
                    "events", key=f"bad-{n_bad}".encode(), value=_MALFORMED[n_bad % len(_MALFORMED)]
                )
                n_bad += 1
            ahead = (i + 1) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        while pending:
            wait = pending[0][0] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            send_label(*pending.popleft()[1:])
        producer.flush()
        producer.close()
        return n_bad

    @staticmethod
    def _summary(
        live: Any,
        outputs: _Outputs,
        n_bad: int,
        totals: dict[str, float],
        lag: dict[float, float],
        port: int,
        rc: int | None,
        seconds: float,
    ) -> None:
        truth = {
            e: y
            for e, y in zip(live["event_id"].tolist(), live[LABEL_COLUMN].tolist(), strict=True)
        }
        frauds = {e for e, y in truth.items() if y == 1}
        alerted = set(outputs.alerted)
        tp = len(alerted & frauds)
        precision = tp / len(alerted) if alerted else 0.0
        recall = tp / len(frauds) if frauds else 0.0
        _say("[5/5] summary")
        _say(f"  events streamed      {len(live):,} valid + {n_bad} malformed")
        _say(f"  decisions received   {len(outputs.decided):,}")
        _say(
            f"  alerts               {len(alerted)} ({tp} true frauds, {len(alerted) - tp} false alarms)"
        )
        _say(f"  frauds in the stream {len(frauds)}")
        _say(f"  precision / recall   {precision:.3f} / {recall:.3f}")
        _say(
            f"  dead letters         {len(outputs.dead)} ({', '.join(sorted(set(outputs.dead))) or '-'})"
        )
        _say(
            f"  event lag            median {_lag_bound(lag, 0.5)}, p99 {_lag_bound(lag, 0.99)} "
            "(sending to deciding, serve's histogram)"
        )
        _say(
            f"  service counters     events_total={totals.get('stream_detector_events_total', 0):g} "
            f"alerts_total={totals.get('stream_detector_alerts_total', 0):g} "
            f"events_invalid_total={totals.get('stream_detector_events_invalid_total', 0):g}"
        )
        _say(f"  metrics were served  http://127.0.0.1:{port}/metrics")
        _say(
            f"  serve exit code      {rc}; demo took {seconds:.1f}s; everything started is stopped"
        )


DEMO = DemoCommand()
