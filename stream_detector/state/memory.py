"""The in-process state store: the default, for one process, the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from stream_detector.state.base import Append, StateStore, StoreCounters, merge_rows

__all__ = ["MemoryStore"]

_SWEEP_EVERY = 10_000


class MemoryStore(StateStore):
    """State in a dictionary of this process; lost when the process ends.

    Keys not written for ``ttl_ms`` (wall-clock) are swept from time to time, as Redis
    expires them.

    Examples
    --------
    >>> store = MemoryStore()
    >>> store.read(["a"], reserve=2)
    ([None], 0)
    >>> store.write([], puts={"a": b"x"}, ttl_ms=60_000)
    >>> store.read(["a", "b"], reserve=1)
    ([b'x', None], 2)
    >>> store.counters.round_trips, store.size()
    (3, 1)
    """

    def __init__(self) -> None:
        self.counters = StoreCounters()
        self._values: dict[str, bytes] = {}
        self._expires: dict[str, float] = {}
        self._sequence = 0
        self._writes = 0

    def read(self, keys: Sequence[str], *, reserve: int = 0) -> tuple[list[bytes | None], int]:
        with self.counters.timed():
            get = self._values.get
            values = [get(key) for key in keys]
            first = self._sequence
            self._sequence += reserve
        return values, first

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
            for item in appends:
                merged = merge_rows(
                    values.get(item.key, b""), item.rows, item.row_size, item.cutoff_ms
                )
                if merged:
                    values[item.key] = merged
                    expires[item.key] = until
                else:
                    values.pop(item.key, None)
                    expires.pop(item.key, None)
            for key, value in (puts or {}).items():
                values[key] = value
                expires[key] = until
            for key in deletes:
                values.pop(key, None)
                expires.pop(key, None)
            self._writes += len(appends) + len(puts or ())
            if self._writes >= _SWEEP_EVERY:
                self._sweep()

    def _sweep(self) -> None:
        self._writes = 0
        now = time.monotonic()
        for key in [key for key, until in self._expires.items() if until <= now]:
            del self._values[key]
            del self._expires[key]

    def size(self) -> int:
        return len(self._values)
