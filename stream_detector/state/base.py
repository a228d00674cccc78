"""The state store's contract.

A state store keeps, under string keys, the history the feature engine needs between
batches: for each entity (a value of a key field), one byte string of fixed-width rows, and
small values (the entities of an event, labels waiting for their event).

Every row starts with a 24-byte header: the event time (int64, little-endian, epoch ms), the
arrival sequence (int64; negative for a label row) and the event's 64-bit hash. A store
appends rows idempotently: a row whose kind (event or label) and event hash are already held
under the key is skipped, so a batch applied twice leaves the state as it was. After an
append, leading rows older than the given cutoff are dropped (expiry in event time), and the
key lives ``ttl_ms`` more (expiry in wall-clock time, for entities that go quiet).

A store does one round trip per :meth:`StateStore.read` and one per
:meth:`StateStore.write`, whatever the number of keys, and either answers in full or raises
:class:`~stream_detector.errors.StateStoreError`: never partial state.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "HEADER_BYTES",
    "Append",
    "Appends",
    "StateRead",
    "StateStore",
    "StoreCounters",
    "each_append",
    "merge_rows",
]

HEADER_BYTES = 24
"""Bytes of a row's header: timestamp, sequence, event hash."""


class Append(NamedTuple):
    """Rows to append under one key.

    Parameters
    ----------
    key
        The entity's key (the store adds its own prefix).
    rows
        Concatenated rows of ``row_size`` bytes each.
    row_size
        Bytes per row, header included.
    cutoff_ms
        After the append, leading rows with a timestamp below this are dropped.
    merge
        ``False`` when the writer read the key in this batch, found none of the rows held and
        nothing older than the cutoff: a store may then append without reading the key back
        (rows are then appended as they are and nothing is dropped).
    """

    key: str
    rows: bytes
    row_size: int
    cutoff_ms: int
    merge: bool = True


class Appends(NamedTuple):
    """Rows to append under many keys at once, all of one row size: what the engine writes
    per batch (one :class:`Append` per key would cost an object per entity).

    Parameters
    ----------
    keys
        The entities' keys.
    rows
        Their rows, concatenated key after key.
    row_size
        Bytes per row, header included.
    counts
        Rows of each key.
    cutoffs_ms, merges
        Per key, as :class:`Append`'s ``cutoff_ms`` and ``merge``.

    Examples
    --------
    >>> batch = Appends(["a", "b"], b"x" * 72, 24, [1, 2], [0, 0], [True, False])
    >>> [(a.key, len(a.rows), a.merge) for a in each_append([batch])]
    [('a', 24, True), ('b', 48, False)]
    """

    keys: Sequence[str]
    rows: bytes
    row_size: int
    counts: Sequence[int]
    cutoffs_ms: Sequence[int]
    merges: Sequence[bool]


def each_append(appends: Sequence[Append | Appends]) -> Iterator[Append]:
    """Every key's :class:`Append`, the columnar batches unrolled (for the simple paths)."""
    for item in appends:
        if isinstance(item, Append):
            yield item
            continue
        at, size = 0, item.row_size
        for key, count, cutoff, merge in zip(
            item.keys, item.counts, item.cutoffs_ms, item.merges, strict=True
        ):
            yield Append(key, item.rows[at : at + count * size], size, cutoff, merge)
            at += count * size


@dataclass(frozen=True)
class StateRead:
    """The answer to a read: every key's value, concatenated, and the sequences reserved.

    Attributes
    ----------
    lengths
        Bytes of each key's value, in the order of the keys; -1 when the key is absent.
    data
        The values present, concatenated in the order of the keys.
    first
        The first of the arrival sequence numbers reserved.

    Examples
    --------
    >>> read = StateRead(np.array([2, -1, 1]), b"abc", 7)
    >>> read.values(), read.offsets().tolist()
    ([b'ab', None, b'c'], [0, 2, 2, 3])
    """

    lengths: npt.NDArray[np.int64]
    data: bytes
    first: int = 0

    def offsets(self) -> npt.NDArray[np.int64]:
        """Where each key's value starts in :attr:`data`, and the end."""
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(np.maximum(self.lengths, 0), out=offsets[1:])
        return offsets

    def values(self) -> list[bytes | None]:
        """Each key's value, ``None`` when absent."""
        at = self.offsets().tolist()
        return [
            None if n < 0 else self.data[at[i] : at[i + 1]]
            for i, n in enumerate(self.lengths.tolist())
        ]


@dataclass
class StoreCounters:
    """What a store did so far: round trips, their total latency, errors.

    Examples
    --------
    >>> counters = StoreCounters()
    >>> with counters.timed():
    ...     pass
    >>> counters.round_trips
    1
    """

    round_trips: int = 0
    seconds: float = 0.0
    errors: int = 0

    def timed(self) -> _Timer:
        """A context manager counting one round trip and its latency."""
        return _Timer(self)


class _Timer:
    def __init__(self, counters: StoreCounters) -> None:
        self.counters = counters
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.counters.round_trips += 1
        self.counters.seconds += time.perf_counter() - self.start
        if kind is not None:
            self.counters.errors += 1


class StateStore(abc.ABC):
    """Holds the feature engine's per-entity rows and small values; see the module docstring."""

    counters: StoreCounters

    @abc.abstractmethod
    def read(self, keys: Sequence[str], *, reserve: int = 0) -> StateRead:
        """The values of ``keys`` and the first of ``reserve`` new arrival sequence numbers
        (increasing, never handed out twice), in one round trip."""

    @abc.abstractmethod
    def write(
        self,
        appends: Sequence[Append | Appends],
        *,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
        ttl_ms: int,
    ) -> None:
        """Append rows (idempotently, then expire old rows), set and delete small values,
        all keys living ``ttl_ms`` more, in one round trip."""

    @abc.abstractmethod
    def size(self) -> int:
        """Keys held (entities, event index entries, pending labels)."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections; the state stays where it is."""


def merge_rows(current: bytes, rows: bytes, row_size: int, cutoff_ms: int) -> bytes:
    """``current`` with the rows of ``rows`` that it does not hold, older rows dropped.

    The reference for every store: a row is held when a row of the same kind (event or
    label: the sign of the sequence) has the same event hash.

    Examples
    --------
    >>> import struct
    >>> row = lambda ts, seq, eid: struct.pack("<qqQ", ts, seq, eid)
    >>> merged = merge_rows(row(5, 1, 9), row(5, 2, 9) + row(7, 3, 8), 24, 0)
    >>> [struct.unpack_from("<qqQ", merged, at) for at in range(0, len(merged), 24)]
    [(5, 1, 9), (7, 3, 8)]
    >>> len(merge_rows(merged, b"", 24, 6))
    24
    """
    parts = [current]
    for at in range(0, len(rows), row_size):
        row = rows[at : at + row_size]
        eid = row[16:24]
        label = row[15] >= 128
        start = 0
        held = False
        while True:
            found = current.find(eid, start)
            if found < 0:
                break
            if (found - 16) % row_size == 0 and (current[found - 1] >= 128) == label:
                held = True
                break
            start = found + 1
        if not held:
            parts.append(row)
    merged = b"".join(parts)
    drop = 0
    while drop < len(merged) and int.from_bytes(merged[drop : drop + 8], "little", signed=True) < (
        cutoff_ms
    ):
        drop += row_size
    return merged[drop:]
