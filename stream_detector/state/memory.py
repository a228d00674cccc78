"""The in-process state store: the default, for one process, the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np

from stream_detector.state.base import Append, Appends, StateRead, StateStore, StoreCounters

__all__ = ["MemoryStore"]

_SWEEP_EVERY_S = 60.0


class MemoryStore(StateStore):
    """State in a dictionary of this process; lost when the process ends.

    Keys not written for ``ttl_ms`` (wall-clock) are dropped, as Redis expires them, by a
    sweep over all keys at most once a minute (so a key goes up to a minute after its TTL).

    Examples
    --------
    >>> store = MemoryStore()
    >>> store.read(["a"], reserve=2).first
    0
    >>> store.write([], puts={"a": b"x"}, ttl_ms=60_000)
    >>> read = store.read(["a", "b"], reserve=1)
    >>> read.values(), read.first
    ([b'x', None], 2)
    >>> store.counters.round_trips, store.size()
    (3, 1)
    """

    def __init__(self) -> None:
        self.counters = StoreCounters()
        self._values: dict[str, bytes | bytearray] = {}
        self._expires: dict[str, float] = {}
        self._sequence = 0
        self._next_sweep = time.monotonic() + _SWEEP_EVERY_S

    def read(self, keys: Sequence[str], *, reserve: int = 0) -> StateRead:
        with self.counters.timed():
            values = list(map(self._values.get, keys))
            lengths = np.fromiter(
                (-1 if v is None else len(v) for v in values), np.int64, len(values)
            )
            data = b"".join([v for v in values if v])
            first = self._sequence
            self._sequence += reserve
        return StateRead(lengths, data, first)

    def write(
        self,
        appends: Sequence[Append | Appends],
        *,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
        ttl_ms: int,
    ) -> None:
        with self.counters.timed():
            now = time.monotonic()
            until = now + ttl_ms / 1000
            for item in appends:
                if isinstance(item, Append):
                    self._append(item.key, item.rows, item.row_size, item.cutoff_ms, item.merge)
                    self._expires[item.key] = until
                    continue
                self._append_many(item)
                self._expires.update(zip(item.keys, repeat(until)))
            if puts:
                self._values.update(puts)
                self._expires.update(zip(puts, repeat(until)))
            for key in deletes:
                self._values.pop(key, None)
                self._expires.pop(key, None)
            if now >= self._next_sweep:
                self._sweep(now)

    def _append_many(self, item: Appends) -> None:
        values = self._values
        get = values.get
        rows, size = item.rows, item.row_size
        at = 0
        for key, count, cutoff, merge in zip(
            item.keys, item.counts, item.cutoffs_ms, item.merges, strict=True
        ):
            end = at + count * size
            current = get(key)
            if not merge and current is not None and current.__class__ is bytearray:
                current += rows[at:end]  # the usual case: events not held, nothing to drop
            else:
                self._append(key, rows[at:end], size, cutoff, merge)
            at = end

    def _append(self, key: str, rows: bytes, size: int, cutoff: int, merge: bool) -> None:
        values = self._values
        current = values.get(key)
        if current is None:
            current = values[key] = bytearray()
            fresh = rows
        else:
            if current.__class__ is not bytearray:  # set by a put
                current = values[key] = bytearray(current)
            assert isinstance(current, bytearray)
            if not merge:
                current += rows  # the writer found none of them held, nothing to drop
                return
            if len(rows) == size and current.find(rows[16:24]) < 0:
                fresh = rows  # one row of an event not held: the usual case
            else:
                fresh = _new_rows(current, rows, size)
        current += fresh
        if current and int.from_bytes(current[:8], "little", signed=True) < cutoff:
            drop = size
            while drop < len(current) and (
                int.from_bytes(current[drop : drop + 8], "little", signed=True) < cutoff
            ):
                drop += size
            del current[:drop]
        if not current:
            del values[key]
            self._expires.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY_S
        expired = [key for key, until in self._expires.items() if until <= now]
        for key in expired:
            del self._expires[key]
            self._values.pop(key, None)

    def size(self) -> int:
        return len(self._values)


def _new_rows(current: bytearray, rows: bytes, size: int) -> bytes:
    """The rows of ``rows`` that ``current`` does not hold (same kind and event hash)."""
    kept = []
    for at in range(0, len(rows), size):
        eid = rows[at + 16 : at + 24]
        label = rows[at + 15] >= 128
        start = current.find(eid)
        while start >= 0:
            if (start - 16) % size == 0 and (current[start - 1] >= 128) == label:
                break
            start = current.find(eid, start + 1)
        if start < 0:
            kept.append(rows[at : at + size])
    return rows if len(kept) * size == len(rows) else b"".join(kept)
