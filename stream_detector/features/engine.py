"""The feature engine: one code path from events (and labels) to the feature matrix.

:class:`FeatureEngine` computes a :class:`~stream_detector.features.spec.FeatureSpec`'s
features for a batch of events, reading the entities' history from a
:class:`~stream_detector.state.StateStore` and, with ``update=True``, adding the batch to it.
Offline (``compare``, ``train``, ``evaluate``) the whole history is one batch, sorted by
``(timestamp, event_id)``, on an empty :class:`~stream_detector.state.MemoryStore`; ``score``
and ``serve`` call it per batch in arrival order. Both give the same numbers.

Per batch: one store round trip to read (every entity of the batch, and labels that came
before their events), the window kernels (:mod:`stream_detector.features.kernels`), one round
trip to write. An event already held (a batch replayed after a crash) is not added twice and
gets the features it got the first time, as long as it is within ``lateness`` of its entity's
latest event: the state keeps each entity's rows back to its latest event minus the horizon
(the longest window plus delay, plus the lateness).
"""

from __future__ import annotations

import datetime
import struct
import time
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream_detector.errors import DataError
from stream_detector.features.base import FeatureStep
from stream_detector.features.kernels import NO_LABEL, SLOT_FIELDS, compiled
from stream_detector.features.spec import FeatureSpec, duration_ms
from stream_detector.state.base import Append, Appends, StateStore

__all__ = ["BatchStats", "EventColumns", "FeatureBatch", "FeatureEngine", "LabelColumns"]

EventColumns = Mapping[str, Any]
"""A batch's columns: ``event_id`` (str), the key fields (str; other values are turned into
str), the timestamp (int64 epoch ms), numeric fields (float64). A DataFrame works."""

LabelColumns = Mapping[str, Any]
"""Labels: ``event_id`` (str), ``label`` (0/1) and ``known_at`` (int64 epoch ms, when the
label became known). Only confirmed frauds (label 1) change features."""

_MIN = np.iinfo(np.int64).min
_INDEX = struct.Struct("<q")
_QUARTER_MS = 900_000
_CHANGING = np.iinfo(np.int64).min  # a quarter of an hour in which the offset changes
_PENDING = np.dtype([("ts", "<i8"), ("seq", "<i8"), ("eid", "<u8")])  # ts: when known


@dataclass(frozen=True)
class BatchStats:
    """What one batch cost: for metrics.

    Attributes
    ----------
    events
        Events in the batch.
    too_late
        Events refused as older than their entity's latest by more than the lateness.
    seconds
        Feature time of the batch, store round trips included.
    round_trips
        Store round trips of the batch.
    store_seconds
        Their total latency.
    entities
        Keys the store holds after the batch (entities, event index, pending labels).
    """

    events: int
    too_late: int
    seconds: float
    round_trips: int
    store_seconds: float
    entities: int


@dataclass(frozen=True)
class FeatureBatch:
    """A batch's features: ``values`` (float64, one row per event, NaN rows for the events
    refused), ``too_late`` (bool per event: dead-letter them with reason ``too_late``) and
    ``stats``."""

    values: npt.NDArray[np.float64]
    too_late: npt.NDArray[np.bool_]
    stats: BatchStats


class _Group:
    """The windows of one key field: row layout and kernel slots."""

    def __init__(self, spec: FeatureSpec, key: str, prefix: str) -> None:
        entries = [w for w in spec.windows if w.key == key]
        self.key = key
        self.prefix = f"{prefix}e|{key}|"
        self.fields = tuple(dict.fromkeys(w.field for w in entries if w.field))
        self.distinct = tuple(dict.fromkeys(w.distinct for w in entries if w.distinct))
        self.dtype = np.dtype(
            [
                ("ts", "<i8"),
                ("seq", "<i8"),
                ("eid", "<u8"),
                ("known", "<i8"),
                ("vals", "<f8", (max(len(self.fields), 1),)),
                ("dvals", "<u8", (max(len(self.distinct), 1),)),
            ]
        )
        self.row_size = self.dtype.itemsize
        position = {name: i for i, name in enumerate(spec.names)}
        lengths: list[int] = []
        delays: list[int] = []
        fields: list[int] = []
        distincts: list[int] = []
        cols: list[list[int]] = []
        spans: list[int] = []
        sp_cols: list[int] = []
        for entry in entries:
            wanted: dict[str | None, dict[str, int]] = {}
            for w, what, name in entry.columns():
                wanted.setdefault(w, {})[what] = position[name]
            for w in entry.windows:
                if w not in wanted:  # an entry with only since_previous: no window slot
                    continue
                lengths.append(duration_ms(w))
                delays.append(entry.delay_ms)
                fields.append(self.fields.index(entry.field) if entry.field else -1)
                distincts.append(self.distinct.index(entry.distinct) if entry.distinct else -1)
                cols.append([wanted[w].get(f, -1) for f in SLOT_FIELDS])
            if entry.since_previous:
                spans.append(entry.span_ms)
                sp_cols.append(wanted[None]["since_previous"])
        # windows of the same length and delay share one pass over the rows when their field,
        # distinct field and outputs do not clash (same sums in the same order: same bits)
        slots: list[int] = []
        for k in range(len(lengths)):
            for m in slots:
                if (
                    (lengths[m], delays[m]) == (lengths[k], delays[k])
                    and _compatible(fields[m], fields[k])
                    and _compatible(distincts[m], distincts[k])
                    and all(a < 0 or b < 0 for a, b in zip(cols[m], cols[k], strict=True))
                ):
                    fields[m] = max(fields[m], fields[k])
                    distincts[m] = max(distincts[m], distincts[k])
                    cols[m] = [max(a, b) for a, b in zip(cols[m], cols[k], strict=True)]
                    break
            else:
                slots.append(k)
        lengths, delays = [lengths[k] for k in slots], [delays[k] for k in slots]
        fields, distincts = [fields[k] for k in slots], [distincts[k] for k in slots]
        cols = [cols[k] for k in slots]
        self.w_len = np.array(lengths, np.int64)
        self.w_delay = np.array(delays, np.int64)
        self.w_field = np.array(fields, np.int64)
        self.w_distinct = np.array(distincts, np.int64)
        self.cols = np.array(cols, np.int64).reshape(len(cols), len(SLOT_FIELDS))
        self.sp_span = np.array(spans, np.int64)
        self.sp_col = np.array(sp_cols, np.int64)


class FeatureEngine(FeatureStep):
    """Computes a spec's features, batch after batch, keeping per-entity state in a store.

    Parameters
    ----------
    spec
        The declared features.
    store
        Where the entities' history lives between batches (a fresh
        :class:`~stream_detector.state.MemoryStore` for offline work).

    Examples
    --------
    >>> from stream_detector.state import MemoryStore
    >>> spec = FeatureSpec.parse({"windows": [
    ...     {"key": "card", "windows": ["1h"], "field": "amount", "stats": ["count", "mean"]}]})
    >>> engine = FeatureEngine(spec, MemoryStore())
    >>> engine.names
    ('card.amount.count.1h', 'card.amount.mean.1h')
    >>> engine.transform({"event_id": ["a", "b"], "card": ["c1", "c1"],
    ...                   "timestamp": [0, 60_000], "amount": [10.0, 30.0]})
    array([[ 1., 10.],
           [ 2., 20.]])
    >>> engine.transform({"event_id": ["c"], "card": ["c1"], "timestamp": [3_630_000],
    ...                   "amount": [2.0]})  # "a" is out of the hour now
    array([[ 2., 16.]])
    """

    def __init__(self, spec: FeatureSpec, store: StateStore) -> None:
        self.spec = spec
        self.store = store
        self.names = spec.names
        self._prefix = f"{spec.digest}|"
        self._groups = [_Group(spec, key, self._prefix) for key in spec.keys]
        self._by_key = {group.key: group for group in self._groups}
        self._zone = None if spec.time_zone == "UTC" else zoneinfo.ZoneInfo(spec.time_zone)
        self._quarter_offsets: dict[int, int] = {}
        self.last_stats: BatchStats | None = None

    # -- the FeatureStep interface ---------------------------------------------------------

    def from_columns(self, columns: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        return self.transform(columns)

    def from_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        fields = ["event_id", *self.spec.required_fields]
        return self.transform({f: [record[f] for record in records] for f in fields})

    # -- batches ---------------------------------------------------------------------------

    def transform(
        self, events: EventColumns, *, labels: LabelColumns | None = None, update: bool = True
    ) -> npt.NDArray[np.float64]:
        """The features of a batch, in its order; see :meth:`transform_batch`."""
        return self.transform_batch(events, labels=labels, update=update).values

    def transform_batch(
        self, events: EventColumns, *, labels: LabelColumns | None = None, update: bool = True
    ) -> FeatureBatch:
        """Features of a batch in arrival order, the events too late, what it cost.

        Parameters
        ----------
        events
            The batch's columns (:data:`EventColumns`).
        labels
            Labels to apply first (:data:`LabelColumns`); offline, the label column with
            ``known_at`` the event's own timestamp.
        update
            Add the batch's events to the store (idempotent by ``event_id``).
        """
        start = time.perf_counter()
        counters = self.store.counters
        trips, waited = counters.round_trips, counters.seconds
        spec = self.spec
        n = _length(events)
        out = np.empty((n, len(self.names)), dtype=np.float64)
        for j, name in enumerate(spec.numeric):
            out[:, j] = _floats(events, name)
        ts = _timestamps(events, spec.timestamp) if (spec.calendar or spec.windows) else None
        if spec.calendar:
            assert ts is not None
            self._calendar(ts, out, len(spec.numeric))
        too_late = np.zeros(n, dtype=bool)
        if self._groups and n:
            assert ts is not None
            self._windows(events, ts, labels, update, out, too_late)
        stats = BatchStats(
            events=n,
            too_late=int(too_late.sum()),
            seconds=time.perf_counter() - start,
            round_trips=counters.round_trips - trips,
            store_seconds=counters.seconds - waited,
            entities=self.store.size(),
        )
        self.last_stats = stats
        return FeatureBatch(out, too_late, stats)

    def add_labels(self, labels: LabelColumns) -> None:
        """Record labels (``event_id``, ``label``, ``known_at``) for later windows.

        A confirmed fraud marks its event in every entity's history; a label whose event is
        not held yet waits for it (as long as the horizon). Labels 0 change nothing.
        """
        if not self.spec.has_labels:
            return
        ids, known = _positive_labels(labels)
        if not len(ids):
            return
        index_keys = [f"{self._prefix}i|{i}" for i in ids]
        found = self.store.read(index_keys).values()
        eids = _hash(ids)
        appends: list[Append] = []
        waiting = [i for i, entry in enumerate(found) if entry is None]
        if waiting:  # labels before their events: one list the batches read
            rows = np.zeros(len(waiting), dtype=_PENDING)
            rows["ts"], rows["eid"] = known[waiting], eids[waiting]
            cutoff = int(known.max()) - self.spec.horizon_ms
            appends.append(Append(f"{self._prefix}p", rows.tobytes(), _PENDING.itemsize, cutoff))
        for i, entry in enumerate(found):
            if entry is None:
                continue
            (event_ts,) = _INDEX.unpack_from(entry)
            for key in entry[8:].decode().split("\x1f"):
                group = self._by_key[key[len(self._prefix) + 2 :].split("|", 1)[0]]
                row = np.zeros(1, dtype=group.dtype)
                row["ts"], row["seq"], row["eid"], row["known"] = event_ts, -1, eids[i], known[i]
                appends.append(Append(key, row.tobytes(), group.row_size, _MIN))
        self.store.write(appends, ttl_ms=self.spec.horizon_ms)

    # -- steps -----------------------------------------------------------------------------

    def _calendar(self, ts: npt.NDArray[np.int64], out: npt.NDArray[np.float64], at: int) -> None:
        local = ts + self._offsets(ts)
        hour = (local // 3_600_000 % 24).astype(np.float64)
        day = ((local // 86_400_000 + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday
        start, end = self.spec.night_hours
        night = (hour >= start) | (hour < end) if start > end else (hour >= start) & (hour < end)
        values = {"hour": hour, "day_of_week": day, "weekend": day >= 5, "night": night}
        for j, name in enumerate(self.spec.calendar):
            out[:, at + j] = values[name]

    def _offsets(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The time zone's offset from UTC at each time, in ms: looked up once per quarter of
        an hour (offsets change on quarter hours) and remembered."""
        if self._zone is None:
            return np.zeros(len(ts), dtype=np.int64)
        quarters, inverse = np.unique(ts // _QUARTER_MS, return_inverse=True)
        known = self._quarter_offsets
        if len(known) > 100_000:
            known.clear()
        offsets = np.empty(len(quarters), dtype=np.int64)
        for i, quarter in enumerate(quarters.tolist()):
            offset = known.get(quarter)
            if offset is None:
                offset = known[quarter] = self._offset_of(quarter)
            offsets[i] = offset
        result = offsets[inverse.reshape(-1)]
        changing = np.flatnonzero(result == _CHANGING)
        for i in changing.tolist():  # a change within the quarter: event by event
            result[i] = _offset_ms(int(ts[i]) // 1000, self._zone)
        return result

    def _offset_of(self, quarter: int) -> int:
        assert self._zone is not None
        first = quarter * _QUARTER_MS // 1000
        offset = _offset_ms(first, self._zone)
        if _offset_ms(first + _QUARTER_MS // 1000 - 1, self._zone) != offset:
            return _CHANGING
        return offset

    def _windows(
        self,
        events: EventColumns,
        ts: npt.NDArray[np.int64],
        labels: LabelColumns | None,
        update: bool,
        out: npt.NDArray[np.float64],
        too_late: npt.NDArray[np.bool_],
    ) -> None:
        spec = self.spec
        n = len(ts)
        ids = _strings(events, "event_id")
        eid = _hash(ids)
        b_known = np.full(n, NO_LABEL, dtype=np.int64)
        if labels is not None:
            self._batch_labels(ids, labels, b_known)
        codes, entity_keys = [], []
        keys: list[str] = []
        for group in self._groups:
            code, uniques = pd.factorize(_strings(events, group.key))
            prefix = group.prefix
            names = [prefix + u for u in uniques.tolist()]
            codes.append(code.astype(np.int64))
            entity_keys.append(names)
            keys += names
        pending_keys = [f"{self._prefix}p"] if spec.has_labels else []
        read = self.store.read(keys + pending_keys, reserve=n)
        offsets = read.offsets()
        if pending_keys and read.lengths[-1] > 0:
            waiting = np.frombuffer(read.data[offsets[-2] :], dtype=_PENDING)
            waiting = waiting[np.unique(waiting["eid"], return_index=True)[1]]
            where = pd.Index(waiting["eid"]).get_indexer(eid)
            found = where >= 0
            b_known[found] = np.minimum(b_known[found], waiting["ts"][where[found]])
        first_seq = read.first
        b_seq = first_seq + np.arange(n, dtype=np.int64)
        layouts = []
        at = 0
        for group, code, names in zip(self._groups, codes, entity_keys, strict=True):
            lengths = read.lengths[at : at + len(names)]
            data = memoryview(read.data)[offsets[at] : offsets[at + len(names)]]
            at += len(names)
            layouts.append(
                self._assemble(group, lengths, data, code, ts, b_seq, eid, b_known, events)
            )
        gid = np.empty((n, len(layouts)), dtype=np.int64)
        held = np.empty((n, len(layouts)), dtype=bool)
        held_top = np.empty((n, len(layouts)), dtype=np.int64)
        offset = 0
        for g, (layout, code) in enumerate(zip(layouts, codes, strict=True)):
            gid[:, g] = code + offset
            held[:, g] = layout["held"]
            held_top[:, g] = layout["held_top"]
            offset += len(layout["latest"])
        running = np.concatenate([layout["latest"] for layout in layouts])
        late = np.zeros(n, dtype=bool)
        compiled("lateness")(gid, held, held_top, ts, running, spec.lateness_ms, late)
        for layout in layouts:
            layout["valid"] = np.ones(len(layout["ts"]), dtype=bool)
            layout["valid"][layout["qrow"][late & ~layout["held"]]] = False
        too_late |= late
        for group, layout, code in zip(self._groups, layouts, codes, strict=True):
            compiled("windows")(
                code,
                layout["qrow"],
                too_late,
                layout["ts"],
                layout["seq"],
                layout["known"],
                layout["vals"],
                layout["dvals"],
                layout["valid"],
                layout["seg_start"],
                layout["seg_end"],
                group.w_len,
                group.w_delay,
                group.w_field,
                group.w_distinct,
                group.cols,
                group.sp_span,
                group.sp_col,
                out,
            )
        out[too_late] = np.nan
        if update:
            self._write(layouts, codes, entity_keys, ids, ts, b_seq, eid, b_known, too_late)

    def _assemble(
        self,
        group: _Group,
        lengths: npt.NDArray[np.int64],
        data: bytes | memoryview,
        code: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        b_seq: npt.NDArray[np.int64],
        eid: npt.NDArray[np.uint64],
        b_known: npt.NDArray[np.int64],
        events: EventColumns,
    ) -> dict[str, Any]:
        size = group.row_size
        counts = np.maximum(lengths, 0) // size
        state = np.frombuffer(data, dtype=group.dtype)
        n_keys = len(lengths)
        s_off = np.zeros(n_keys + 1, dtype=np.int64)
        np.cumsum(counts, out=s_off[1:])
        n = len(ts)
        b_vals = np.zeros((n, group.dtype["vals"].shape[0]), dtype=np.float64)
        for j, name in enumerate(group.fields):
            b_vals[:, j] = _floats(events, name)
        b_dvals = np.zeros((n, group.dtype["dvals"].shape[0]), dtype=np.uint64)
        for j, name in enumerate(group.distinct):
            b_dvals[:, j] = _hash(_strings(events, name))
        group_cols = (b_vals, b_dvals)
        m = len(state) + n
        layout: dict[str, Any] = {
            "ts": np.empty(m, np.int64),
            "seq": np.empty(m, np.int64),
            "known": np.empty(m, np.int64),
            "vals": np.empty((m, b_vals.shape[1]), np.float64),
            "dvals": np.empty((m, b_dvals.shape[1]), np.uint64),
            "seg_start": np.empty(n_keys, np.int64),
            "seg_end": np.empty(n_keys, np.int64),
            "latest": np.empty(n_keys, np.int64),
            "qrow": np.empty(n, np.int64),
            "held": np.zeros(n, dtype=bool),
            "held_top": np.zeros(n, dtype=np.int64),
            "b_vals": b_vals,
            "b_dvals": b_dvals,
        }
        compiled("assemble")(
            s_off,
            state["ts"],  # strided views of the rows read: no copies
            state["seq"],
            state["eid"],
            state["known"],
            state["vals"],
            state["dvals"],
            code,
            ts,
            b_seq,
            eid,
            b_known,
            *group_cols,
            layout["ts"],
            layout["seq"],
            layout["known"],
            layout["vals"],
            layout["dvals"],
            layout["seg_start"],
            layout["seg_end"],
            layout["latest"],
            layout["qrow"],
            layout["held"],
            layout["held_top"],
        )
        return layout

    def _write(
        self,
        layouts: list[dict[str, Any]],
        codes: list[npt.NDArray[np.int64]],
        entity_keys: list[list[str]],
        ids: npt.NDArray[np.object_],
        ts: npt.NDArray[np.int64],
        b_seq: npt.NDArray[np.int64],
        eid: npt.NDArray[np.uint64],
        b_known: npt.NDArray[np.int64],
        too_late: npt.NDArray[np.bool_],
    ) -> None:
        spec = self.spec
        appends: list[Appends] = []
        index_parts: list[list[str]] = []
        new_any = np.zeros(len(ts), dtype=bool)
        for group, layout, code, names in zip(
            self._groups, layouts, codes, entity_keys, strict=True
        ):
            new = ~layout["held"] & ~too_late
            # a second copy of an event in the batch points at the first copy's row
            new &= layout["seq"][layout["qrow"]] == b_seq
            new_any |= new
            chosen = np.flatnonzero(new)
            if spec.has_labels:
                index_parts.append(list(map(names.__getitem__, code.tolist())))
            if not len(chosen):
                continue
            order = chosen[np.argsort(code[chosen], kind="stable")]
            rows = np.zeros(len(order), dtype=group.dtype)
            rows["ts"] = ts[order]
            rows["seq"] = b_seq[order]
            rows["eid"] = eid[order]
            rows["known"] = b_known[order]
            rows["vals"] = layout["b_vals"][order]
            rows["dvals"] = layout["b_dvals"][order]
            data = rows.tobytes()
            entity = code[order]
            bounds = np.flatnonzero(np.diff(entity)) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [len(order)]))
            top = np.maximum(
                np.maximum.reduceat(ts[order], starts), layout["latest"][entity[starts]]
            )
            cutoff = top - spec.horizon_ms
            # trim lazily: an entity's rows are rewritten only when its oldest is an eighth
            # of the horizon past the cutoff; until then older rows cost memory, not results
            held_entities = entity[starts]
            oldest = layout["ts"][layout["seg_start"][held_entities]]
            merge = (oldest < cutoff - spec.horizon_ms // 8).tolist()
            appends.append(
                Appends(
                    [names[e] for e in held_entities.tolist()],
                    data,
                    group.row_size,
                    (ends - starts).tolist(),
                    cutoff.tolist(),
                    merge,
                )
            )
        puts: dict[str, bytes] = {}
        if spec.has_labels:
            indexed = np.flatnonzero(new_any)
            index = f"{self._prefix}i|"
            stamps = np.ascontiguousarray(ts[indexed], dtype="<i8").tobytes()
            entities = ["\x1f".join(parts) for parts in zip(*index_parts, strict=True)]
            picked = indexed.tolist()
            puts = dict(
                zip(
                    [index + ids[i] for i in picked],
                    [
                        stamps[8 * k : 8 * k + 8] + entities[i].encode()
                        for k, i in enumerate(picked)
                    ],
                    strict=True,
                )
            )
        if appends or puts:
            self.store.write(appends, puts=puts, ttl_ms=spec.horizon_ms)

    def _batch_labels(
        self, ids: npt.NDArray[np.object_], labels: LabelColumns, b_known: npt.NDArray[np.int64]
    ) -> None:
        label_ids, known = _positive_labels(labels)
        where = pd.Index(ids).get_indexer(label_ids)
        inside = where >= 0
        np.minimum.at(b_known, where[inside], known[inside])
        if (~inside).any():
            self.add_labels(
                {
                    "event_id": label_ids[~inside],
                    "label": np.ones(int((~inside).sum()), dtype=np.int64),
                    "known_at": known[~inside],
                }
            )


def _offset_ms(second: int, zone: zoneinfo.ZoneInfo) -> int:
    """The zone's offset from UTC at an epoch second, in ms."""
    offset = datetime.datetime.fromtimestamp(second, tz=zone).utcoffset()
    assert offset is not None
    return (offset.days * 86_400 + offset.seconds) * 1000 + offset.microseconds // 1000


def _compatible(a: int, b: int) -> bool:
    """Two slots' field (or distinct field) indices can share a pass: equal, or one unused."""
    return a == b or a < 0 or b < 0


def _length(events: EventColumns) -> int:
    try:
        return len(events["event_id"])
    except KeyError:
        raise DataError("events need an 'event_id' column") from None


def _column(events: EventColumns, name: str) -> Any:
    try:
        return events[name]
    except KeyError:
        raise DataError(f"events lack the field {name!r} the features need") from None


def _floats(events: EventColumns, name: str) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(_column(events, name), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"field {name!r} must be numeric: {exc}") from exc


def _timestamps(events: EventColumns, name: str) -> npt.NDArray[np.int64]:
    values = np.asarray(_column(events, name))
    if values.dtype.kind not in "iu":
        raise DataError(f"field {name!r} must hold epoch milliseconds (int64); got {values.dtype}")
    return values.astype(np.int64, copy=False)


def _strings(events: EventColumns, name: str) -> npt.NDArray[np.object_]:
    values = np.asarray(_column(events, name), dtype=object)
    if len(values) and not isinstance(values[0], str):
        values = values.astype(str).astype(object)
    return values


def _hash(values: npt.NDArray[np.object_]) -> npt.NDArray[np.uint64]:
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


def _positive_labels(
    labels: LabelColumns,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int64]]:
    ids = _strings(labels, "event_id")
    label = np.asarray(_column(labels, "label"), dtype=np.int64)
    known = np.asarray(_column(labels, "known_at"), dtype=np.int64)
    positive = label == 1
    return ids[positive], known[positive]
