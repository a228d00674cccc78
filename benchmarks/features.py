"""Behavioural features: our engine against plain pandas offline, and the online path per batch.

Offline: about a million simulated card transactions (``--events``), the features of a typical
card set computed by :class:`~stream_detector.features.FeatureEngine` in one call and by a
plain pandas/numpy implementation of the same features written here (grouped time-based
rolling windows; the delayed fraud counts with cumulative sums and binary searches). Printed:
time ratio, peak memory ratio (tracemalloc), and the largest absolute difference per feature;
then, on sampled events, our window statistics against exact rational arithmetic (the
pandas sums and the one-pass standard deviation are themselves rounded differently).

Online: the stream's last days in batches of ``--batch`` events after the earlier days were
loaded into the store, on the memory store and on a Redis store (a ``redis-server`` started
here on a free port, no persistence): microseconds per event, store round trips and their
latency, and Redis bytes per entity (``MEMORY USAGE``) and per event held (``INFO memory``).

Run: ``python benchmarks/features.py [--events 1000000] [--batch 500] [--exact-rows 20000]``.
"""

from __future__ import annotations

import argparse
import decimal
import shutil
import socket
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import orjson
import pandas as pd

from stream_detector.events import EventParser
from stream_detector.features import FeatureEngine, FeatureSpec, duration_ms
from stream_detector.simulate import TransactionSimulator
from stream_detector.state import MemoryStore, RedisStore, StateStore

DAY = 86_400_000
WINDOWS = ["1d", "7d", "30d"]
SPEC = FeatureSpec.parse(
    {
        "numeric": ["amount"],
        "calendar": ["hour", "weekend", "night"],
        "windows": [
            {
                "key": "customer_id",
                "windows": WINDOWS,
                "field": "amount",
                "stats": ["count", "sum", "mean", "std"],
                "relative": ["ratio"],
            },
            {"key": "terminal_id", "windows": ["1d", "7d"], "stats": ["count"]},
            {"key": "terminal_id", "windows": ["7d"], "delay": "7d", "labels": ["count", "rate"]},
        ],
    }
)


def simulate(n_events: int) -> dict[str, Any]:
    tx = TransactionSimulator.from_preset("book", random_state=0).take(n_events)
    order = np.lexsort((tx["event_id"], tx["timestamp"]))
    return {
        "event_id": tx["event_id"][order].astype(object),
        "timestamp": tx["timestamp"][order],
        "customer_id": tx["customer_id"][order].astype(str).astype(object),
        "terminal_id": tx["terminal_id"][order].astype(object),
        "amount": tx["amount"][order],
        "is_fraud": tx["is_fraud"][order],
    }


def labels_of(events: dict[str, Any]) -> dict[str, Any]:
    fraud = events["is_fraud"] == 1
    return {
        "event_id": events["event_id"][fraud],
        "label": np.ones(int(fraud.sum()), dtype=np.int64),
        "known_at": events["timestamp"][fraud],
    }


def ours(events: dict[str, Any]) -> np.ndarray:
    engine = FeatureEngine(SPEC, MemoryStore())
    return engine.transform(events, labels=labels_of(events), update=False)


def plain_pandas(events: dict[str, Any]) -> np.ndarray:
    """The same features with pandas and numpy, written as a user would."""
    frame = pd.DataFrame({k: v for k, v in events.items()})
    stamps = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    out = pd.DataFrame(index=frame.index)
    out["amount"] = frame["amount"]
    out["hour"] = stamps.dt.hour
    out["weekend"] = (stamps.dt.day_of_week >= 5).astype(float)
    out["night"] = ((stamps.dt.hour >= 22) | (stamps.dt.hour < 6)).astype(float)
    # undelayed windows: the others in [t - w, t) (rolling closed="left"), plus the event
    for key, stats in (("customer_id", True), ("terminal_id", False)):
        ordered = frame.sort_values([key, "timestamp"], kind="stable")
        indexed = ordered.set_index(pd.to_datetime(ordered["timestamp"], unit="ms"))
        grouped = indexed.groupby(key, sort=True)
        x = ordered["amount"].to_numpy()
        for w in WINDOWS if stats else ["1d", "7d"]:
            span = f"{duration_ms(w)}ms"
            left = grouped["amount"].rolling(span, closed="left")
            count = np.nan_to_num(left.count().to_numpy()) + 1
            if not stats:
                out.loc[ordered.index, f"{key}.count.{w}"] = count
                continue
            total = np.nan_to_num(left.sum().to_numpy()) + x
            squares = (
                indexed.assign(sq=indexed["amount"] ** 2)
                .groupby(key, sort=True)["sq"]
                .rolling(span, closed="left")
                .sum()
                .to_numpy()
            )
            squares = np.nan_to_num(squares) + x * x
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
            base = f"{key}.amount"
            out.loc[ordered.index, f"{base}.count.{w}"] = count
            out.loc[ordered.index, f"{base}.sum.{w}"] = total
            out.loc[ordered.index, f"{base}.mean.{w}"] = mean
            out.loc[ordered.index, f"{base}.std.{w}"] = std
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(mean != 0, x / mean, 0.0)
            out.loc[ordered.index, f"{base}.ratio.{w}"] = ratio
    # the delayed window [t - 14d, t - 7d): cumulative counts found by binary search
    ordered = frame.sort_values(["terminal_id", "timestamp"], kind="stable")
    code = pd.factorize(ordered["terminal_id"])[0].astype(np.int64)
    ts = ordered["timestamp"].to_numpy() - frame["timestamp"].min() + 30 * DAY
    key = code * (1 << 40) + ts
    fraud = np.concatenate(([0], np.cumsum(ordered["is_fraud"].to_numpy())))
    start = np.searchsorted(key, key - 14 * DAY, side="left")
    end = np.searchsorted(key, key - 7 * DAY, side="left")
    count = end - start
    frauds = fraud[end] - fraud[start]
    out.loc[ordered.index, "terminal_id.fraud_count.7d.delay7d"] = frauds
    out.loc[ordered.index, "terminal_id.fraud_rate.7d.delay7d"] = np.where(
        count > 0, frauds / np.maximum(count, 1), 0.0
    )
    return out[list(SPEC.names)].to_numpy(dtype=np.float64)


def exact(events: dict[str, Any], got: np.ndarray, n_rows: int) -> None:
    """Our customer window statistics against exact rational arithmetic, on sampled rows.

    For each sampled event and window, the amounts in the window (the customer's others in
    ``[t - w, t)`` and the event itself) are summed as exact fractions of their binary values;
    the mean, variance and ratio are exact rationals, the standard deviation and z-score are
    taken to 400 digits (enough to hold a tie between two floats exactly); each is then rounded
    to the nearest float64. Printed per feature: how many rows differ from that correctly
    rounded value, and by how many units in the last place.
    """
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(got), size=min(n_rows, len(got)), replace=False))
    customer = events["customer_id"]
    order = np.lexsort((events["timestamp"], customer))
    cust_sorted = customer[order]
    ts_sorted = events["timestamp"][order]
    names = list(SPEC.names)
    digits = decimal.Context(prec=400)

    def to_decimal(value: Fraction) -> Decimal:
        return digits.divide(Decimal(value.numerator), Decimal(value.denominator))

    wrong: dict[str, list[float]] = {}
    for i in rows:
        first = np.searchsorted(cust_sorted, customer[i], side="left")
        last = np.searchsorted(cust_sorted, customer[i], side="right")
        times = ts_sorted[first:last]
        t = events["timestamp"][i]
        x = Fraction(float(events["amount"][i]))
        for w in WINDOWS:
            lo = first + np.searchsorted(times, t - duration_ms(w), side="left")
            hi = first + np.searchsorted(times, t, side="left")
            values = [Fraction(float(v)) for v in events["amount"][order[lo:hi]]] + [x]
            n = len(values)
            total = sum(values, Fraction(0))
            mean = total / n
            var = sum((v - mean) ** 2 for v in values) / n
            std = digits.sqrt(to_decimal(var))
            dev = digits.subtract(to_decimal(x), to_decimal(mean))
            truth = {
                "count": float(n),
                "sum": float(total),
                "mean": float(mean),
                "std": float(std),
                "ratio": float(x / mean) if mean != 0 else 0.0,
                "zscore": float(digits.divide(dev, std)) if std > 0 else 0.0,
            }
            for stat, value in truth.items():
                name = f"customer_id.amount.{stat}.{w}"
                if name not in names:
                    continue
                ours_value = got[i, names.index(name)]
                wrong.setdefault(name, [])
                if ours_value != value:
                    wrong[name].append(abs(ours_value - value) / np.spacing(abs(value)))
    print(f"  exact arithmetic on {len(rows):,} sampled events: rows not correctly rounded")
    for name, ulps in wrong.items():
        worst = f", at most {max(ulps):.0f} ulp" if ulps else ""
        print(f"    {name:40s} {len(ulps)}{worst}")


def measure(function: Callable[[], np.ndarray]) -> tuple[float, int, np.ndarray]:
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak, result


def offline(n_events: int, n_exact: int = 20_000) -> dict[str, Any]:
    events = simulate(n_events)
    FeatureEngine(SPEC, MemoryStore()).transform({k: v[:10] for k, v in events.items()})
    our_s, our_peak, got = measure(lambda: ours(events))
    pd_s, pd_peak, expected = measure(lambda: plain_pandas(events))
    diff = np.abs(got - expected)
    worst = int(np.argmax(diff.max(axis=0)))
    days = (events["timestamp"][-1] - events["timestamp"][0]) / DAY
    print(f"offline: {len(got):,} events over {days:.0f} days, {len(SPEC.names)} features")
    print(f"  ours {our_s:.2f} s, peak {our_peak / 2**20:.0f} MiB")
    print(f"  pandas {pd_s:.2f} s, peak {pd_peak / 2**20:.0f} MiB")
    print(
        f"  time ratio ours/pandas {our_s / pd_s:.2f}, peak memory ratio {our_peak / pd_peak:.2f}"
    )
    print(f"  max |difference| {diff.max():.3g} ({SPEC.names[worst]}); per feature:")
    for name, value in zip(SPEC.names, diff.max(axis=0), strict=True):
        print(f"    {name:40s} {value:.3g}")
    exact(events, got, n_exact)
    return events


class RedisProcess:
    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="redis-bench-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             self.directory, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        shutil.rmtree(self.directory, ignore_errors=True)


def parsing(events: dict[str, Any], batch: int, n_batches: int) -> float:
    """Microseconds per event of the service's own parsing of the same events: the baseline
    measured in the same run (``serve`` spends about 35 us per event in all)."""
    parser = EventParser(["amount"])
    n = len(events["event_id"])
    start = n - batch * n_batches
    messages = [
        orjson.dumps(
            {
                "event_id": events["event_id"][i],
                "entity_id": events["customer_id"][i],
                "timestamp": int(events["timestamp"][i]),
                "terminal_id": events["terminal_id"][i],
                "amount": float(events["amount"][i]),
            }
        )
        for i in range(start, n)
    ]
    best = np.inf
    for _ in range(3):
        began = time.perf_counter()
        for b in range(n_batches):
            parser.parse_many(messages[b * batch : (b + 1) * batch])
        best = min(best, time.perf_counter() - began)
    per_event = best / (batch * n_batches) * 1e6
    print(f"  baseline, the service parsing the same events: {per_event:.1f} us/event")
    return per_event


def online(events: dict[str, Any], store: StateStore, batch: int, n_batches: int) -> float:
    """Microseconds per event of the online path, after loading the history before it."""
    n = len(events["event_id"])
    live = n - batch * n_batches * 2
    engine = FeatureEngine(SPEC, store)
    for start in range(0, live, 20_000):
        part = {k: v[start : min(start + 20_000, live)] for k, v in events.items()}
        engine.transform(part, labels=labels_of(part))
    best = np.inf
    trips = waited = 0.0
    for attempt in range(2):  # the first pass warms up; the second, on new events, counts
        offset = live + attempt * batch * n_batches
        before = store.counters.round_trips, store.counters.seconds
        start_s = time.perf_counter()
        for b in range(n_batches):
            at = offset + b * batch
            engine.transform({k: v[at : at + batch] for k, v in events.items()})
        elapsed = time.perf_counter() - start_s
        best = min(best, elapsed)
        trips = (store.counters.round_trips - before[0]) / n_batches
        waited = (store.counters.seconds - before[1]) / (batch * n_batches)
    per_event = best / (batch * n_batches) * 1e6
    print(
        f"  {type(store).__name__}: {per_event:.1f} us/event ({1e6 / per_event:,.0f} events/s),"
        f" {trips:.0f} round trips per batch, store {waited * 1e6:.1f} us/event"
    )
    return per_event


def redis_memory(store: RedisStore, client: Any) -> None:
    info = client.info("memory")["used_memory"] - client.info("memory")["used_memory_startup"]
    prefix = store.key_prefix.encode()
    sizes: dict[str, list[int]] = {"customer_id": [], "terminal_id": [], "index": []}
    rows: dict[str, list[int]] = {"customer_id": [], "terminal_id": []}
    for key in client.scan_iter(match=prefix + b"*", count=1000):
        text = key.decode()
        if "|e|customer_id|" in text or "|e|terminal_id|" in text:
            field = "customer_id" if "|e|customer_id|" in text else "terminal_id"
            if len(sizes[field]) < 2000:
                sizes[field].append(client.memory_usage(key, samples=0))
                rows[field].append(client.strlen(key))
        elif "|i|" in text and len(sizes["index"]) < 2000:
            sizes["index"].append(client.memory_usage(key, samples=0))
    keys = client.dbsize()
    print(f"  Redis: {keys:,} keys, {info / 2**20:.1f} MiB used ({info / keys:.0f} bytes per key)")
    for field, values in sizes.items():
        if values:
            print(f"    {field}: {np.mean(values):.0f} bytes per key (MEMORY USAGE)", end="")
            if field in rows:
                print(f", {np.mean(rows[field]):.0f} bytes of rows", end="")
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--online-events", type=int, default=300_000)
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument(
        "--exact-rows", type=int, default=20_000, help="events checked in exact arithmetic"
    )
    args = parser.parse_args()
    if not args.skip_offline:
        offline(args.events, args.exact_rows)
    events = simulate(args.online_events)
    print(f"online: batches of {args.batch} after {len(events['event_id']):,} events loaded")
    parse = parsing(events, args.batch, args.batches)
    memory = online(events, MemoryStore(), args.batch, args.batches)
    print(f"  memory store / parsing: {memory / parse:.2f}")
    server = RedisProcess()
    try:
        import redis

        store = RedisStore(server.url, key_prefix="bench|")
        remote = online(events, store, args.batch, args.batches)
        print(f"  Redis store / parsing: {remote / parse:.2f}")
        print(f"  Redis/memory time ratio {remote / memory:.2f}")
        client = redis.Redis.from_url(server.url)
        redis_memory(store, client)
        client.close()
        store.close()
    finally:
        server.close()


if __name__ == "__main__":
    main()
