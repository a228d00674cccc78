"""Read a labelled data file and turn it into a checked feature matrix.

A data file is CSV (optionally gzip-compressed) or Parquet, one row per event, with numeric
feature columns and a 0/1 label column. With a feature spec (the ``features:`` section) it is a
raw history instead: the spec's key fields, timestamp and numeric fields, in any row order; the
features are computed by the feature engine over the rows sorted by ``(timestamp, event_id)``,
each label known from its event's own time (:func:`spec_features`), the very code ``score``
and ``serve`` run. Columns named ``event_id``, ``entity_id`` and
``timestamp`` identify events and are never features. Every problem a user can cause ends as a
:class:`~stream_detector.errors.DataError` naming the column and the fix; nothing is changed
silently: dropped constant columns and imputed values are logged and recorded in
:attr:`Dataset.notes` (``train`` copies them into the bundle's manifest).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow

from offline.config import ConstantPolicy, DataSettings, MissingPolicy
from stream_detector.errors import DataError
from stream_detector.features import IDENTIFIER_COLUMNS, FeatureEngine, FeatureSpec, LabelColumns
from stream_detector.history import history_columns, label_columns, read_table
from stream_detector.state import MemoryStore

__all__ = ["Dataset", "load_dataset", "read_table", "spec_features"]

log = logging.getLogger(__name__)

TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class Dataset:
    """A checked feature matrix with its labels, in time order when the data has timestamps.

    Attributes
    ----------
    X
        float64 matrix, one row per event, columns in :attr:`features` order, all finite.
    y
        int64 labels, 0 or 1.
    features
        Feature names.
    label
        Name of the label column.
    timestamps
        Event times in epoch milliseconds (sorted ascending), or None without a timestamp column.
    amount
        The amount column (finite, for amount-aware metrics), or None.
    notes
        What loading changed, e.g. ``{"dropped_constant_columns": [...]}``.
    """

    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    features: tuple[str, ...]
    label: str
    timestamps: npt.NDArray[np.int64] | None = None
    amount: npt.NDArray[np.float64] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.y.size)

    @property
    def positives(self) -> int:
        """Number of rows labelled 1."""
        return int(self.y.sum())

    @property
    def prior(self) -> float:
        """Positive-class rate."""
        return self.positives / self.n


def _release_reader_memory() -> None:
    """Hand memory the Parquet reader freed back to the system.

    pandas frames read from Parquet live in pyarrow's memory pool, which keeps freed memory
    for reuse: without this, a large file's memory stayed resident through training after its
    frame was gone (the figure is in the README's Performance section).
    """
    pyarrow.default_memory_pool().release_unused()


def _labels(frame: pd.DataFrame, label: str, source: str) -> npt.NDArray[np.int64]:
    if label not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:20]))
        raise DataError(f"label column {label!r} is not in {source}; its columns are: {shown}")
    col = frame[label]
    if col.isna().any():
        raise DataError(
            f"label column {label!r} has {int(col.isna().sum())} missing values; "
            "every row needs a label 0 or 1"
        )
    values = pd.unique(col)
    try:
        ok = set(np.asarray(values, dtype=np.float64).tolist()) <= {0.0, 1.0}
    except (TypeError, ValueError):
        ok = False
    if not ok:
        found = sorted(map(repr, values.tolist()))[:10]
        raise DataError(
            f"label column {label!r} must hold only 0 and 1; found values {', '.join(found)}"
        )
    return col.to_numpy(dtype=np.float64).astype(np.int64)


def _timestamps(frame: pd.DataFrame) -> npt.NDArray[np.int64] | None:
    if TIMESTAMP not in frame.columns:
        return None
    col = frame[TIMESTAMP]
    if col.isna().any():
        raise DataError(f"column 'timestamp' has {int(col.isna().sum())} missing values")
    try:
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            ms = col.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(ms)):
                raise ValueError("non-finite epoch milliseconds")
            return ms.astype(np.int64)
        parsed = pd.to_datetime(col, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(
            "column 'timestamp' must hold ISO 8601 times or epoch milliseconds; "
            f"got e.g. {col.iloc[0]!r}"
        ) from exc
    return np.asarray(parsed.dt.as_unit("ms").astype("int64"), dtype=np.int64)


def _feature_names(
    frame: pd.DataFrame, label: str, settings: DataSettings, required: Sequence[str] | None
) -> list[str]:
    wanted = list(required) if required is not None else settings.features
    if wanted is not None:
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DataError(f"feature columns missing from the data: {missing}")
        bad = [c for c in wanted if c in IDENTIFIER_COLUMNS or c == label]
        if bad:
            raise DataError(f"identifier and label columns cannot be features; got {bad}")
        candidates = list(wanted)
    else:
        skip = set(IDENTIFIER_COLUMNS) | {label} | set(settings.exclude)
        candidates = [str(c) for c in frame.columns if c not in skip]
    non_numeric = [
        c
        for c in candidates
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    if non_numeric:
        raise DataError(
            f"feature columns must be numeric; not numeric: {non_numeric} "
            "(drop them, or leave them out with data.exclude in the config)"
        )
    if not candidates:
        raise DataError(
            f"no feature columns: besides the label {label!r} and the identifiers "
            f"{sorted(IDENTIFIER_COLUMNS)} the data has no numeric column"
        )
    return candidates


def _fill_missing(
    X: npt.NDArray[np.float64],
    names: Sequence[str],
    policy: MissingPolicy,
    fill: npt.NDArray[np.float64] | None,
) -> dict[str, int]:
    bad = ~np.isfinite(X)
    counts = {names[int(j)]: int(bad[:, j].sum()) for j in np.flatnonzero(bad.any(axis=0))}
    if not counts:
        return {}
    shown = ", ".join(f"{k!r} ({v})" for k, v in counts.items())
    if policy == "refuse":
        raise DataError(
            f"feature columns have missing or infinite values: {shown}; fill them, or set "
            "data.missing: impute_median in the config"
        )
    for name in counts:
        j = names.index(name)
        col = X[:, j]
        if fill is not None:
            value = fill[j]
        else:
            finite = col[np.isfinite(col)]
            if finite.size == 0:
                raise DataError(f"feature column {name!r} has no finite value to impute from")
            value = float(np.median(finite))
        col[~np.isfinite(col)] = value
    log.warning("imputed missing values with column medians: %s", shown)
    return counts


def _drop_constant(
    X: npt.NDArray[np.float64], names: list[str], policy: ConstantPolicy
) -> tuple[npt.NDArray[np.float64], list[str], list[str]]:
    constant = [names[j] for j in range(X.shape[1]) if np.all(X[:, j] == X[0, j])]
    if not constant:
        return X, names, []
    if policy == "refuse":
        raise DataError(
            f"feature columns are constant: {constant}; remove them, or set "
            "data.constant_columns: drop in the config"
        )
    keep = [j for j, name in enumerate(names) if name not in constant]
    if not keep:
        raise DataError(f"no feature columns: every feature column is constant ({constant})")
    log.warning("dropped constant feature columns: %s", constant)
    return X[:, keep], [names[j] for j in keep], constant


def _finish(
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    names: list[str],
    *,
    label: str,
    cfg: DataSettings,
    fill: npt.NDArray[np.float64] | None,
    keep_columns: bool,
    timestamps: npt.NDArray[np.int64] | None,
    amount: npt.NDArray[np.float64] | None,
) -> Dataset:
    """The checks every loaded matrix goes through (missing values, then constant columns
    unless the columns are a bundle's, which must stay as they are), as a :class:`Dataset`."""
    notes: dict[str, Any] = {}
    imputed = _fill_missing(X, names, cfg.missing, fill)
    if imputed:
        notes["imputed_values"] = imputed
    if not keep_columns:
        X, names, dropped = _drop_constant(X, names, cfg.constant_columns)
        if dropped:
            notes["dropped_constant_columns"] = dropped
    return Dataset(
        X=np.ascontiguousarray(X),
        y=y,
        features=tuple(names),
        label=label,
        timestamps=timestamps,
        amount=amount,
        notes=notes,
    )


def spec_features(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    y: npt.NDArray[np.int64] | None,
    *,
    source: str = "data",
    engine: FeatureEngine | None = None,
    labels: LabelColumns | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The spec's features of a raw history: ``(X, order, timestamps)``.

    One pass of the feature engine over the rows sorted by ``(timestamp, event_id)`` with an
    empty in-memory store, each label (when ``y`` is given) known from its event's own time:
    a delayed window then counts only labels of events older than its delay, which is what
    ``serve`` sees when labels arrive within the delay. ``order[i]`` is the file row of
    ``X[i]``.

    ``engine`` continues a state instead (one a history was computed into, as ``score
    --history`` does), and ``labels`` (a label file's columns, each known when it says)
    replace the label column, as ``score --labels`` replays them. Events the state finds
    too late for their entity are left out of ``X`` and ``order``, as ``score`` skips them.

    Examples
    --------
    >>> frame = pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": [10.0, 30.0, 5.0],
    ...                       "timestamp": [2_000, 1_000, 1_500]})
    >>> spec = FeatureSpec(windows=[{"key": "customer_id", "windows": ["1h"],
    ...                              "field": "amount", "stats": ["count", "mean"]}])
    >>> X, order, ts = spec_features(frame, spec, None)
    >>> order.tolist(), X.tolist()
    ([1, 2, 0], [[1.0, 30.0], [1.0, 5.0], [2.0, 20.0]])
    """
    cols = history_columns(frame, spec, source=source)
    events = cols.events
    ts = events[spec.timestamp]
    if engine is None:
        engine = FeatureEngine(spec, MemoryStore())
    known = None
    if labels is not None:
        engine.add_labels(labels)
    elif y is not None and spec.has_labels:
        known = label_columns(events["event_id"], y[cols.order], ts)
    batch = engine.transform_batch(events, labels=known)
    if batch.too_late.any():
        keep = ~batch.too_late
        return np.ascontiguousarray(batch.values[keep]), cols.order[keep], ts[keep]
    return np.ascontiguousarray(batch.values, dtype=np.float64), cols.order, ts


def _load_with_spec(
    path: str | os.PathLike[str],
    label: str,
    cfg: DataSettings,
    spec: FeatureSpec,
    features: Sequence[str] | None,
    fill: npt.NDArray[np.float64] | None,
    engine: FeatureEngine | None = None,
    labels: LabelColumns | None = None,
) -> Dataset:
    frame = read_table(path)
    source = f"data file {Path(path)}"
    y = _labels(frame, label, source)
    bad = [f for f in spec.required_fields if f == label]
    if bad:
        raise DataError(f"the label column {label!r} cannot be read by the feature spec")
    X, order, ts = spec_features(frame, spec, y, source=source, engine=engine, labels=labels)
    y = y[order]
    amount = None
    if cfg.amount_column is not None and cfg.amount_column in frame.columns:
        col = frame[cfg.amount_column]
        if pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)[order]
            if np.all(np.isfinite(values)):
                amount = values
    del frame
    _release_reader_memory()
    names = list(spec.names)
    if features is not None:
        unknown = [f for f in features if f not in names]
        if unknown:
            raise DataError(f"the bundle's features {unknown} are not among the spec's {names}")
        X = np.ascontiguousarray(X[:, [names.index(f) for f in features]])
        names = list(features)
    return _finish(
        X,
        y,
        names,
        label=label,
        cfg=cfg,
        fill=fill,
        keep_columns=features is not None,
        timestamps=ts if spec.timestamp in spec.required_fields else None,
        amount=amount,
    )


def load_dataset(
    path: str | os.PathLike[str],
    label: str,
    settings: DataSettings | None = None,
    *,
    features: Sequence[str] | None = None,
    fill_values: npt.ArrayLike | None = None,
    spec: FeatureSpec | None = None,
    engine: FeatureEngine | None = None,
    labels: LabelColumns | None = None,
) -> Dataset:
    """Load and check a labelled data file.

    Parameters
    ----------
    path
        CSV or Parquet file.
    label
        Name of the 0/1 label column.
    settings
        Missing-value, constant-column and feature-selection policies.
    features
        Use exactly these feature columns in this order (evaluating a trained bundle); constant
        columns are then kept.
    fill_values
        With ``missing: impute_median``, fill with these per-feature values (the bundle's
        training medians) instead of this file's medians.
    spec
        Compute these features from the raw history (see :func:`spec_features`); ``features``
        then picks among the spec's names. Rows come out in ``(timestamp, event_id)`` order.
    engine, labels
        With ``spec``: continue this engine's state, and replay these labels instead of the
        label column's (see :func:`spec_features`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = p.write_text("event_id,amount,hour,is_fraud\\na,10,3,0\\nb,250,2,1\\nc,12,4,0\\n")
    >>> ds = load_dataset(p, "is_fraud")
    >>> ds.features, ds.y.tolist(), ds.positives
    (('amount', 'hour'), [0, 1, 0], 1)
    """
    cfg = settings or DataSettings()
    fill = None if fill_values is None else np.asarray(fill_values, dtype=np.float64)
    if spec is not None:
        return _load_with_spec(path, label, cfg, spec, features, fill, engine, labels)
    frame = read_table(path)
    source = f"data file {Path(path)}"
    y = _labels(frame, label, source)
    ts = _timestamps(frame)
    if ts is not None:
        order = np.argsort(ts, kind="mergesort")
        frame = frame.iloc[order].reset_index(drop=True)
        ts, y = ts[order], y[order]
    names = _feature_names(frame, label, cfg, features)
    # One copy of the selected columns: column by column is slower (README, Performance).
    X = np.ascontiguousarray(frame[names].to_numpy(dtype=np.float64, na_value=np.nan))
    amount = None
    if cfg.amount_column is not None and cfg.amount_column in frame.columns:
        col = frame[cfg.amount_column]
        if pd.api.types.is_numeric_dtype(col):
            values = np.array(col.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
            if np.all(np.isfinite(values)):
                amount = values
    del frame
    _release_reader_memory()
    return _finish(
        X,
        y,
        names,
        label=label,
        cfg=cfg,
        fill=fill,
        keep_columns=features is not None,
        timestamps=ts,
        amount=amount,
    )
