"""Alerts delivered per second by ``stream-detector notify``, beside a bare consume-and-post loop.

Starts the embedded broker and a webhook receiver in its own process
(``python -m stream_detector.notify.receiver``, verifying every signature), preloads N alerts
(JSON shaped like ``serve``'s, with three reasons) into a topic of P partitions, then measures,
one after another and ``--repeat`` times in turn:

(a) a bare kafka-python loop: consume in a group, POST each alert in turn (signed, one kept-alive
    connection, ``http.client``), commit after each poll: what any notifier must do at least;
(b) ``stream-detector notify`` with ``notify.concurrency: 1``: the same work, one request at a
    time, plus retries, dead-lettering, metrics and the settled-prefix commit;
(c) ``stream-detector notify`` with its default concurrency (4 requests in flight).

Every rate is taken from the first alert delivered to the last (the group join left out):
rate = (N - first seen) / (time of the last - time of the first). ``notify`` runs as a child
process, its progress read from the receiver's log (nothing is asked of it while it
works). The receiver counts what arrived, so each run also
checks that every alert arrived (lost 0) and counts duplicates. CPU microseconds per alert are
those of the measured process alone (steadier than rates on a shared machine; the ratio of the
lowest of each is printed too). The best of the repeats is kept.

    python benchmarks/notify.py [--alerts 20000] [--partitions 2] [--repeat 3] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from _harness import cpu_seconds, fmt_rate, load_average, wait_until

from stream_detector.devbroker import EmbeddedBroker, free_port
from stream_detector.notify import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

SECRET = "benchmark-secret-0123456789"


@dataclass
class Run:
    rate: float
    cpu_us: float
    delivered: int
    duplicates: int


def alert(i: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"tx-{i}",
            "entity_id": f"c-{i % 5000}",
            "timestamp": 1_767_225_600_000 + i,
            "score": 0.9731,
            "threshold": 0.35,
            "threshold_mode": "fixed",
            "flagged": True,
            "model_version": "20261204T120000Z-0ce64f02",
            "source": {"topic": "events", "partition": i % 4, "offset": i},
            "reasons": [
                {"feature": "amount", "value": 912.5, "contribution": 0.41},
                {"feature": "distance_km", "value": 1840.0, "contribution": 0.22},
                {"feature": "hour", "value": 3.0, "contribution": 0.05},
            ],
        }
    )


class Receiver:
    """The receiver process and its request count (read from its log lines)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"receiver-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream_detector.notify.receiver",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env={**os.environ, "STREAM_DETECTOR_NOTIFY__SECRET": SECRET},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        wait_until(lambda: b"listening" in self.log_path.read_bytes(), timeout=30, what="receiver")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def keys(self) -> list[str]:
        keys = []
        for line in self.log_path.read_text().splitlines():
            if " status=200 " in line and "idempotency_key=" in line:
                keys.append(line.split("idempotency_key=", 1)[1].split(" ", 1)[0])
        return keys

    def count(self) -> int:
        """Requests answered 200 so far (read from the log: nothing asked of ``notify``)."""
        return self.log_path.read_bytes().count(b" status=200 ")

    def reset(self) -> None:
        self._log.truncate(0)
        self._log.seek(0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._log.close()


def check_every_alert(receiver: Receiver, n: int) -> tuple[int, int]:
    keys = receiver.keys()
    lost = n - len(set(keys))
    if lost:
        raise SystemExit(f"{lost} alerts never reached the receiver")
    return len(keys), len(keys) - n


def bare_loop(broker: EmbeddedBroker, topic: str, receiver: Receiver, n: int, batch: int) -> Run:
    """(a): consume, POST each alert in turn on one kept-alive connection, commit per poll."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as notify does
    done = 0
    first_at = first_done = None
    cpu0 = cpu_seconds()
    while done < n:
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                event_id = orjson.loads(record.value)["event_id"]
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(record.value, SECRET),
                    IDEMPOTENCY_HEADER: event_id,
                }
                conn.request("POST", "/alerts", body=record.value, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"the receiver answered {response.status}")
                done += 1
                if first_at is None:
                    first_at, first_done, cpu0 = time.monotonic(), done, cpu_seconds()
        consumer.commit()
    elapsed = time.monotonic() - (first_at or 0.0)
    cpu = cpu_seconds() - cpu0
    conn.close()
    consumer.close()
    counted = n - (first_done or 0)
    delivered, duplicates = check_every_alert(receiver, n)
    return Run(counted / elapsed, cpu / counted * 1e6, delivered, duplicates)


def notify_process(
    broker: EmbeddedBroker,
    topics: dict[str, str],
    receiver: Receiver,
    n: int,
    *,
    batch: int,
    concurrency: int,
    log_dir: Path,
) -> Run:
    """(b), (c): ``stream-detector notify`` as a child process; progress from the receiver."""
    port = free_port()
    env = {
        **os.environ,
        "STREAM_DETECTOR_TOPICS__ALERTS": topics["alerts"],
        "STREAM_DETECTOR_NOTIFY__SECRET": SECRET,
        "STREAM_DETECTOR_NOTIFY__DEAD_LETTER": topics["dlq"],
        "STREAM_DETECTOR_NOTIFY__BATCH_SIZE": str(batch),
        "STREAM_DETECTOR_NOTIFY__CONCURRENCY": str(concurrency),
    }
    argv = [
        sys.executable,
        "-m",
        "stream_detector",
        "notify",
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--webhook-url",
        receiver.url,
        "--group-id",
        f"notify-{uuid.uuid4().hex[:8]}",
        "--metrics-port",
        str(port),
    ]
    with (log_dir / f"notify-{port}.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

        def delivered() -> int:
            if proc.poll() is not None:
                tail = Path(log.name).read_text(errors="replace").splitlines()[-15:]
                raise SystemExit(f"notify exited {proc.returncode}:\n" + "\n".join(tail))
            return receiver.count()

        wait_until(lambda: delivered() > 0, timeout=120, what="the first delivery", interval=0.02)
        first_at, first_done, cpu0 = time.monotonic(), delivered(), cpu_seconds(proc.pid)
        wait_until(lambda: delivered() >= n, timeout=600, what="every delivery", interval=0.02)
        elapsed = time.monotonic() - first_at
        cpu = cpu_seconds(proc.pid) - cpu0
        proc.terminate()
        if proc.wait(60) != 0:
            raise SystemExit(f"notify exited {proc.returncode}")
    counted = n - first_done
    got, duplicates = check_every_alert(receiver, n)
    return Run(counted / elapsed, cpu / counted * 1e6, got, duplicates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    n = args.alerts
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        log_dir = Path(tmp)
        topics = {"alerts": f"alerts-{uuid.uuid4().hex[:8]}", "dlq": "alerts.notify.dlq"}
        broker.create_topics({topics["alerts"]: args.partitions, topics["dlq"]: 1})
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
        for i in range(n):
            producer.send(topics["alerts"], key=f"tx-{i}".encode(), value=alert(i))
        producer.flush(60)
        producer.close()
        receiver = Receiver(log_dir)
        print(
            f"notify benchmark: {n} alerts of {len(alert(0))} bytes, {args.partitions} partitions, "
            f"batch {args.batch_size}, {args.repeat} repeats, load {load_average()}"
        )
        runs: dict[str, list[Run]] = {"(a)": [], "(b)": [], "(c)": []}
        try:
            for _ in range(args.repeat):
                receiver.reset()
                runs["(a)"].append(
                    bare_loop(broker, topics["alerts"], receiver, n, args.batch_size)
                )
                for label, concurrency in (("(b)", 1), ("(c)", 4)):
                    receiver.reset()
                    runs[label].append(
                        notify_process(
                            broker,
                            topics,
                            receiver,
                            n,
                            batch=args.batch_size,
                            concurrency=concurrency,
                            log_dir=log_dir,
                        )
                    )
        finally:
            receiver.stop()
        names = {
            "(a)": "bare consume -> POST loop, commit per poll",
            "(b)": "stream-detector notify, concurrency 1",
            "(c)": "stream-detector notify, concurrency 4",
        }
        best = {}
        for label, measured in runs.items():
            best[label] = max(measured, key=lambda r: r.rate)
            rates = [r.rate for r in measured]
            print(
                f"{label} {names[label]}: {fmt_rate(best[label].rate)} alerts/s "
                f"(spread {fmt_rate(min(rates))}-{fmt_rate(max(rates))}), "
                f"{best[label].cpu_us:.0f} us CPU per alert, "
                f"lost 0, duplicates {max(r.duplicates for r in measured)}"
            )
        for label in ("(b)", "(c)"):
            print(f"ratio {label}/(a): {best[label].rate / best['(a)'].rate:.2f}")
        for label in ("(b)", "(c)"):
            cpu = min(r.cpu_us for r in runs[label]) / min(r.cpu_us for r in runs["(a)"])
            print(f"CPU per alert {label}/(a): {cpu:.2f}")


if __name__ == "__main__":
    main()
