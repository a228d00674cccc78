"""The in-process state store: the default, for one process, the demo and the tests."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from stream_detector.state.base import Append, StateRead, StateStore, StoreCounters

__all__ = ["MemoryStore"]

_SWEEP_EVERY = 10_000


class MemoryStore(StateStore):
    """State in a dictionary of this process; lost when the process ends.

    Keys not written for ``ttl_ms`` (wall-clock) are swept from time to time, as Redis
    expires them.

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
        self._values: dict[str, bytearray] = {}
        self._expires: OrderedDict[str, float] = OrderedDict()
        self._sequence = 0
        self._writes = 0

    def read(self, keys: Sequence[str], *, reserve: int = 0) -> StateRead:
        with self.counters.timed():
            get = self._values.get
            values = [get(key) for key in keys]
            lengths = np.fromiter(
                (-1 if v is None else len(v) for v in values), np.int64, len(values)
            )
            data = b"".join([v for v in values if v])
            first = self._sequence
            self._sequence += reserve
        return StateRead(lengths, data, first)

    def write(
        self,
        appends: Sequence[Append],
        *,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
        ttl_ms: int,
    ) -> None:
        with self.counters.timed():
            values = self._values
            expires = self._expires
            until = time.monotonic() + ttl_ms / 1000
            for key, rows, size, cutoff, merge in appends:
                current = values.get(key)
                if current is not None and not merge:
                    current += rows
                    expires[key] = until
                    expires.move_to_end(key)
                    continue
                if current is None:
                    current = values[key] = bytearray()
                    fresh = rows
                elif len(rows) == size and current.find(rows[16:24]) < 0:
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
                if current:
                    expires[key] = until
                    expires.move_to_end(key)
                else:
                    del values[key]
                    expires.pop(key, None)
            for key, value in (puts or {}).items():
                values[key] = bytearray(value)
                expires[key] = until
                expires.move_to_end(key)
            for key in deletes:
                values.pop(key, None)
                expires.pop(key, None)
            self._writes += len(appends) + len(puts or ())
            if self._writes >= _SWEEP_EVERY:
                self._sweep()

    def _sweep(self) -> None:
        # keys are in the order of their last write, so of their expiry: stop at the first alive
        self._writes = 0
        now = time.monotonic()
        expired = []
        for key, until in self._expires.items():
            if until > now:
                break
            expired.append(key)
        for key in expired:
            del self._values[key]
            del self._expires[key]

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
