"""The window kernels: plain loops that numba compiles, shared by every batch size.

The rows of one key field (an entity's history from the store plus the batch's events) are
laid out per entity, sorted by ``(timestamp, sequence)``. :func:`assemble` builds that layout,
:func:`lateness` finds the events too far behind their entity's latest, :func:`windows`
computes each event's window features. Sums run over a window's rows in that order, from
scratch for every event, so one call over a whole history and many calls over its batches give
the same bits; they run in double-double arithmetic (each addition's and product's rounding
error kept beside it), so the sum, mean, standard deviation, ratio and z-score of a window are
the exact values rounded to the nearest float once.

Slot columns (``cols``) index the output matrix, ``-1`` when a feature is not asked for, in
the order of :data:`SLOT_FIELDS`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["SLOT_FIELDS", "compiled"]

SLOT_FIELDS: tuple[str, ...] = (
    "count",
    "sum",
    "mean",
    "std",
    "min",
    "max",
    "ratio",
    "zscore",
    "distinct",
    "fraud_count",
    "fraud_rate",
)
"""The outputs of one window slot, in the order of a slot's column indices."""

NO_LABEL = np.iinfo(np.int64).max
"""``known`` of a row without a confirmed fraud."""


def _assemble(
    s_off: Any,
    s_ts: Any,
    s_seq: Any,
    s_eid: Any,
    s_known: Any,
    s_vals: Any,
    s_dvals: Any,
    b_ent: Any,
    b_ts: Any,
    b_seq: Any,
    b_eid: Any,
    b_known: Any,
    b_vals: Any,
    b_dvals: Any,
    ts: Any,
    seq: Any,
    known: Any,
    vals: Any,
    dvals: Any,
    seg_start: Any,
    seg_end: Any,
    latest: Any,
    qrow: Any,
    held: Any,
    held_top: Any,
) -> None:
    n_ent = s_off.shape[0] - 1
    nb = b_ent.shape[0]
    # batch rows by entity, in batch order
    counts = np.zeros(n_ent + 1, np.int64)
    for i in range(nb):
        counts[b_ent[i] + 1] += 1
    b_off = np.cumsum(counts)
    b_order = np.empty(nb, np.int64)
    fill = b_off[:-1].copy()
    for i in range(nb):
        b_order[fill[b_ent[i]]] = i
        fill[b_ent[i]] += 1
    nf = s_vals.shape[1]
    nd = s_dvals.shape[1]
    p = 0
    local = np.empty(0, np.int64)
    for e in range(n_ent):
        start = p
        latest[e] = np.iinfo(np.int64).min
        # the entity's held events; label rows mark their event afterwards
        for j in range(s_off[e], s_off[e + 1]):
            if s_seq[j] < 0:
                continue
            ts[p] = s_ts[j]
            seq[p] = s_seq[j]
            known[p] = s_known[j]
            for f in range(nf):
                vals[p, f] = s_vals[j, f]
            for f in range(nd):
                dvals[p, f] = s_dvals[j, f]
            if s_ts[j] > latest[e]:
                latest[e] = s_ts[j]
            p += 1
        n_state = p - start
        eids = np.empty(p - start + b_off[e + 1] - b_off[e], np.uint64)
        k = 0
        for j in range(s_off[e], s_off[e + 1]):
            if s_seq[j] >= 0:
                eids[k] = s_eid[j]
                k += 1
        for j in range(s_off[e], s_off[e + 1]):
            if s_seq[j] < 0:
                for m in range(k):
                    if eids[m] == s_eid[j] and s_known[j] < known[start + m]:
                        known[start + m] = s_known[j]
        # the batch's events: held ones (a replay) point at their row, new ones are added
        for x in range(b_off[e], b_off[e + 1]):
            i = b_order[x]
            found = -1
            for m in range(k):
                if eids[m] == b_eid[i]:
                    found = m
                    break
            if found >= 0:
                qrow[i] = start + found
                held[i] = found < n_state
                if held[i]:
                    # a replay: its entity's latest among the rows that arrived before it
                    top = np.iinfo(np.int64).min
                    for m in range(start, start + n_state):
                        if seq[m] < seq[start + found] and ts[m] > top:
                            top = ts[m]
                    held_top[i] = top
                continue
            eids[k] = b_eid[i]
            k += 1
            ts[p] = b_ts[i]
            seq[p] = b_seq[i]
            known[p] = b_known[i]
            for f in range(nf):
                vals[p, f] = b_vals[i, f]
            for f in range(nd):
                dvals[p, f] = b_dvals[i, f]
            qrow[i] = p
            p += 1
        # sort the segment by (timestamp, sequence): insertion sort, the rows come nearly sorted
        size = p - start
        if local.shape[0] < size:
            local = np.empty(2 * size, np.int64)
        for m in range(size):
            local[m] = start + m
        swapped = False
        for m in range(1, size):
            cur = local[m]
            q = m - 1
            while q >= 0 and (
                ts[local[q]] > ts[cur] or (ts[local[q]] == ts[cur] and seq[local[q]] > seq[cur])
            ):
                local[q + 1] = local[q]
                q -= 1
                swapped = True
            local[q + 1] = cur
        if swapped:
            where = np.empty(size, np.int64)
            t2 = ts[start:p].copy()
            s2 = seq[start:p].copy()
            k2 = known[start:p].copy()
            v2 = vals[start:p].copy()
            d2 = dvals[start:p].copy()
            for m in range(size):
                src = local[m] - start
                where[src] = start + m
                ts[start + m] = t2[src]
                seq[start + m] = s2[src]
                known[start + m] = k2[src]
                for f in range(nf):
                    vals[start + m, f] = v2[src, f]
                for f in range(nd):
                    dvals[start + m, f] = d2[src, f]
            for x in range(b_off[e], b_off[e + 1]):
                i = b_order[x]
                qrow[i] = where[qrow[i] - start]
        seg_start[e] = start
        seg_end[e] = p


def _lateness(
    gid: Any,
    held: Any,
    held_top: Any,
    ts: Any,
    running: Any,
    lateness: int,
    too_late: Any,
) -> None:
    # in arrival order: an event is too late when, for one of its keys, the latest event held
    # or arrived before it (too-late ones excepted) is more than `lateness` ahead of it
    n_groups = gid.shape[1]
    for i in range(gid.shape[0]):
        late = False
        for g in range(n_groups):
            top = held_top[i, g] if held[i, g] else running[gid[i, g]]
            if top > ts[i] and top - ts[i] > lateness:
                late = True
        too_late[i] = late
        if not late:
            for g in range(n_groups):
                if not held[i, g] and ts[i] > running[gid[i, g]]:
                    running[gid[i, g]] = ts[i]


def _two_product(a: float, b: float) -> tuple[float, float]:
    """``a * b`` and its rounding error, exactly (Dekker's product with Veltkamp's split)."""
    p = a * b
    c = 134217729.0 * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = 134217729.0 * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _fast_two_sum(a: float, b: float) -> tuple[float, float]:
    """``a + b`` and its rounding error, exactly, for ``|a| >= |b|``."""
    total = a + b
    return total, b - (total - a)


def _divide(hi: float, lo: float, d_hi: float, d_lo: float = 0.0) -> tuple[float, float]:
    """``(hi + lo) / (d_hi + d_lo)`` in double-double arithmetic."""
    q = hi / d_hi
    prod, prod_err = _two_product(q, d_hi)
    rest = (((hi - prod) - prod_err) + lo - q * d_lo) / d_hi
    return _fast_two_sum(q, rest)


def _add(hi: float, lo: float, x: float) -> tuple[float, float]:
    """``hi + x``, its rounding error added to ``lo`` (a step of Neumaier's summation)."""
    step = hi + x
    if abs(hi) >= abs(x):
        lo += (hi - step) + x
    else:
        lo += (x - step) + hi
    return step, lo


def _deviation(x: float, mean: float, mean_lo: float) -> tuple[float, float]:
    """``x - (mean + mean_lo)`` in double-double arithmetic (Knuth's two-sum for ``x - mean``)."""
    dev = x - mean
    back = dev - x
    return dev, ((x - (dev - back)) + (-mean - back)) - mean_lo


def _add_square(hi: float, lo: float, x: float, mean: float, mean_lo: float) -> tuple[float, float]:
    """``(hi, lo) + (x - (mean + mean_lo))^2`` in double-double arithmetic."""
    dev, dev_lo = _deviation(x, mean, mean_lo)
    sq, sq_err = _two_product(dev, dev)
    hi, lo = _add(hi, lo, sq)
    return hi, lo + (sq_err + 2.0 * dev * dev_lo)


def _windows(
    b_ent: Any,
    qrow: Any,
    too_late: Any,
    ts: Any,
    seq: Any,
    known: Any,
    vals: Any,
    dvals: Any,
    valid: Any,
    seg_start: Any,
    seg_end: Any,
    w_len: Any,
    w_delay: Any,
    w_field: Any,
    w_distinct: Any,
    cols: Any,
    sp_span: Any,
    sp_col: Any,
    out: Any,
) -> None:
    n_slots = w_len.shape[0]
    scratch = np.empty(64, np.uint64)
    for i in range(b_ent.shape[0]):
        if too_late[i]:
            continue
        r = qrow[i]
        e = b_ent[i]
        lo = seg_start[e]
        hi = seg_end[e]
        t = ts[r]
        s = seq[r]
        for k in range(n_slots):
            d = w_delay[k]
            fi = w_field[k]
            di = w_distinct[k]
            # the window's rows: [j0, j1), by binary searches for its start and end
            j0, top, start = lo, hi, t - d - w_len[k]
            while j0 < top:
                mid = (j0 + top) >> 1
                if ts[mid] < start:
                    j0 = mid + 1
                else:
                    top = mid
            j1, top = j0, hi
            while j1 < top:
                mid = (j1 + top) >> 1
                if ts[mid] < t - d:
                    j1 = mid + 1
                else:
                    top = mid
            if j1 - j0 + 1 > scratch.shape[0] and di >= 0:
                scratch = np.empty(2 * (j1 - j0 + 1), np.uint64)
            count = 0
            total = 0.0
            carry = 0.0  # the sum's rounding errors (Neumaier): total + carry is the sum
            low = np.inf
            high = -np.inf
            frauds = 0
            n_distinct = 0
            for j in range(j0, j1):
                if valid[j] and seq[j] < s:
                    count += 1
                    if known[j] <= t:
                        frauds += 1
                    if fi >= 0:
                        x = vals[j, fi]
                        total, carry = _add(total, carry, x)
                        low = min(low, x)
                        high = max(high, x)
                    if di >= 0:
                        scratch[n_distinct] = dvals[j, di]
                        n_distinct += 1
            if d == 0:
                count += 1
                if fi >= 0:
                    x = vals[r, fi]
                    total, carry = _add(total, carry, x)
                    low = min(low, x)
                    high = max(high, x)
                if di >= 0:
                    scratch[n_distinct] = dvals[r, di]
                    n_distinct += 1
            # The statistics in double-double arithmetic (a value and its rounding error),
            # rounded once at the end: the sum, mean, variance, standard deviation, ratio and
            # z-score are the exact ones' nearest floats (the variance but for a term of the
            # second order in the mean's own rounding), whatever the batch or row order.
            mean = 0.0
            mean_lo = 0.0
            if count > 0:
                mean, mean_lo = _divide(total, carry, float(count))
            total += carry
            c_std = cols[k, 3]
            c_z = cols[k, 7]
            std = 0.0
            std_lo = 0.0
            if (c_std >= 0 or c_z >= 0) and count > 0:
                sq_hi = 0.0
                sq_lo = 0.0
                for j in range(j0, j1):
                    if valid[j] and seq[j] < s:
                        sq_hi, sq_lo = _add_square(sq_hi, sq_lo, vals[j, fi], mean, mean_lo)
                if d == 0:
                    sq_hi, sq_lo = _add_square(sq_hi, sq_lo, vals[r, fi], mean, mean_lo)
                var, var_lo = _divide(sq_hi, sq_lo, float(count))
                if var > 0.0:
                    std = np.sqrt(var)
                    prod, prod_err = _two_product(std, std)
                    std_lo = (((var - prod) - prod_err) + var_lo) / (2.0 * std)
                    std, std_lo = _fast_two_sum(std, std_lo)
            c = cols[k, 0]
            if c >= 0:
                out[i, c] = count
            c = cols[k, 1]
            if c >= 0:
                out[i, c] = total
            c = cols[k, 2]
            if c >= 0:
                out[i, c] = mean
            if c_std >= 0:
                out[i, c_std] = std
            c = cols[k, 4]
            if c >= 0:
                out[i, c] = low if count > 0 else 0.0
            c = cols[k, 5]
            if c >= 0:
                out[i, c] = high if count > 0 else 0.0
            c = cols[k, 6]
            if c >= 0:
                out[i, c] = _divide(vals[r, fi], 0.0, mean, mean_lo)[0] if mean != 0.0 else 0.0
            if c_z >= 0:
                dev, dev_lo = _deviation(vals[r, fi], mean, mean_lo)
                out[i, c_z] = _divide(dev, dev_lo, std, std_lo)[0] if std > 0.0 else 0.0
            c = cols[k, 8]
            if c >= 0:  # sort (insertion sort: few rows, no allocation) and count
                if n_distinct > 32:
                    scratch[:n_distinct].sort()
                for m in range(1, n_distinct if n_distinct <= 32 else 0):
                    cur = scratch[m]
                    q = m - 1
                    while q >= 0 and scratch[q] > cur:
                        scratch[q + 1] = scratch[q]
                        q -= 1
                    scratch[q + 1] = cur
                unique = 0
                for m in range(n_distinct):
                    if m == 0 or scratch[m] != scratch[m - 1]:
                        unique += 1
                out[i, c] = unique
            c = cols[k, 9]
            if c >= 0:
                out[i, c] = frauds
            c = cols[k, 10]
            if c >= 0:
                out[i, c] = frauds / count if count > 0 else 0.0
        for k in range(sp_span.shape[0]):
            gap = -1.0
            j, top = lo, hi
            while j < top:
                mid = (j + top) >> 1
                if ts[mid] < t:
                    j = mid + 1
                else:
                    top = mid
            j -= 1
            while j >= lo and ts[j] >= t - sp_span[k]:
                if valid[j] and seq[j] < s:
                    gap = (t - ts[j]) / 1000.0
                    break
                j -= 1
            out[i, sp_col[k]] = gap


@functools.cache
def compiled(name: str) -> Callable[..., None]:
    """The kernel ``name`` (``assemble``, ``lateness``, ``windows``), compiled once per process."""
    import numba  # imported here: loading numba costs time the commands without windows skip

    _compile_helpers(numba)
    function: Any = {"assemble": _assemble, "lateness": _lateness, "windows": _windows}[name]
    return _jit(numba, function)


@functools.cache
def _compile_helpers(numba: Any) -> None:
    """Put compiled versions of the kernels' helpers in their names' place in this module:
    numba resolves a kernel's calls through these globals when it compiles the kernel."""
    # in the order they call each other: a helper's callees are compiled before it
    for helper in ("_two_product", "_fast_two_sum", "_divide", "_add", "_deviation", "_add_square"):
        globals()[helper] = _jit(numba, globals()[helper])


def _jit(numba: Any, function: Any) -> Any:
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, cache=False)(function)
