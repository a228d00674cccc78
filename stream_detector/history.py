"""Raw history and label files as the feature engine's columns.

``compare``, ``train``, ``evaluate``, ``score --history`` and ``backfill`` read a raw history
file (CSV or Parquet, one row per event, any row order) holding the fields a
:class:`~stream_detector.features.FeatureSpec` needs: its key fields, the timestamp, the numeric
fields and, for training, the label. :func:`history_columns` checks them and returns the
events sorted by ``(timestamp, event_id)``, the order the engine computes history in. A label
file is JSON Lines in the ``labels`` topic's format, each label stamped with the time it
became known (:func:`read_labels`). Every problem a user can cause is a
:class:`~stream_detector.errors.DataError` naming the column or line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import pyarrow
from pydantic import ValidationError

from stream_detector.errors import DataError
from stream_detector.events import LabelMessage, parse_timestamp
from stream_detector.features import FeatureSpec

__all__ = ["HistoryColumns", "history_columns", "label_columns", "read_labels", "read_table"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".tsv", ".txt", ".csv.bz2", ".csv.zip", ".csv.xz")


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame; raise DataError if it cannot be read.

    Examples
    --------
    >>> read_table("no/such/file.csv")
    Traceback (most recent call last):
    ...
    stream_detector.errors.DataError: data file no/such/file.csv does not exist
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {p} does not exist")
    if not p.is_file():
        raise DataError(f"data file {p} is not a regular file")
    name = p.name.lower()
    try:
        if name.endswith(_PARQUET):
            frame = pd.read_parquet(p)
            # pandas frames read from Parquet live in pyarrow's pool, which keeps freed memory.
            pyarrow.default_memory_pool().release_unused()
        elif name.endswith(_CSV):
            frame = pd.read_csv(p, sep="\t" if name.endswith(".tsv") else ",", low_memory=False)
        else:
            raise DataError(
                f"data file {p} must be CSV ({', '.join(_CSV)}) or Parquet ({', '.join(_PARQUET)}); "
                f"got suffix {p.suffix or '(none)'!r}"
            )
    except DataError:
        raise
    except PermissionError as exc:
        raise DataError(f"data file {p} cannot be read: permission denied") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file {p} is empty") from exc
    except (
        OSError,
        ValueError,
        UnicodeDecodeError,
        pd.errors.ParserError,
        pyarrow.ArrowException,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"data file {p} cannot be read: {first}") from exc
    if frame.empty:
        raise DataError(f"data file {p} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


@dataclass(frozen=True)
class HistoryColumns:
    """A history's events in engine order, and where each came from.

    Attributes
    ----------
    events
        The engine's columns (``event_id``, the timestamp, keys, numeric fields), sorted by
        ``(timestamp, event_id)``.
    order
        ``order[i]`` is the file row of event ``i``.
    """

    events: dict[str, Any]
    order: npt.NDArray[np.int64]

    @property
    def n(self) -> int:
        """Number of events."""
        return int(self.order.size)

    def part(self, start: int, stop: int) -> dict[str, Any]:
        """The columns of events ``start`` to ``stop`` (a batch)."""
        return {name: values[start:stop] for name, values in self.events.items()}


def _timestamps(col: pd.Series, name: str, source: str) -> npt.NDArray[np.int64]:
    if col.isna().any():
        raise DataError(
            f"{source}: column {name!r} has {int(col.isna().sum())} missing values; the "
            "feature spec's time windows need every event's time"
        )
    try:
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            ms = col.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(ms)):
                raise ValueError("non-finite epoch milliseconds")
            return ms.astype(np.int64)
        parsed = pd.to_datetime(col, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(
            f"{source}: column {name!r} must hold ISO 8601 times or epoch milliseconds; "
            f"got e.g. {col.iloc[0]!r}"
        ) from exc
    return np.asarray(parsed.dt.as_unit("ms").astype("int64"), dtype=np.int64)


def _keys(col: pd.Series, name: str, source: str) -> npt.NDArray[np.str_]:
    if col.isna().any():
        raise DataError(
            f"{source}: key column {name!r} has {int(col.isna().sum())} missing values; "
            "every event needs its keys"
        )
    if pd.api.types.is_float_dtype(col):
        values = col.to_numpy()
        if not np.all(values == np.round(values)):
            raise DataError(f"{source}: key column {name!r} must hold strings or integers")
        col = col.astype(np.int64)
    return np.asarray(col.astype(str).to_numpy(), dtype=np.str_)


def history_columns(
    frame: pd.DataFrame, spec: FeatureSpec, *, source: str = "data"
) -> HistoryColumns:
    """The engine's columns of a raw history frame, sorted by ``(timestamp, event_id)``.

    Rows without an ``event_id`` column are named ``row-<n>`` after their file row.

    Examples
    --------
    >>> frame = pd.DataFrame({"event_id": ["b", "a", "c"], "customer_id": ["x", "x", 7],
    ...                       "amount": [2.0, 1.0, 3.0], "timestamp": [5, 5, 1]})
    >>> spec = FeatureSpec(windows=[{"key": "customer_id", "windows": ["1d"],
    ...                              "field": "amount", "stats": ["mean"]}])
    >>> cols = history_columns(frame, spec)
    >>> cols.order.tolist(), cols.events["event_id"].tolist()
    ([2, 1, 0], ['c', 'a', 'b'])
    >>> history_columns(frame.drop(columns="amount"), spec)
    Traceback (most recent call last):
    ...
    stream_detector.errors.DataError: data: the feature spec reads field 'amount', which is not a column; the columns are: event_id, customer_id, timestamp
    """
    missing = [f for f in spec.required_fields if f not in frame.columns]
    if missing:
        shown = ", ".join(list(frame.columns)[:30])
        raise DataError(
            f"{source}: the feature spec reads field {missing[0]!r}, which is not a column; "
            f"the columns are: {shown}"
        )
    n = len(frame)
    if "event_id" in frame.columns:
        ids = frame["event_id"]
        if ids.isna().any():
            raise DataError(
                f"{source}: column 'event_id' has {int(ids.isna().sum())} missing values"
            )
        event_id = np.asarray(ids.astype(str).to_numpy(), dtype=np.str_)
    else:
        event_id = np.strings.add("row-", np.arange(n).astype(str))
    needs_time = spec.timestamp in spec.required_fields
    if needs_time or spec.timestamp in frame.columns:
        ts = _timestamps(frame[spec.timestamp], spec.timestamp, source)
    else:
        ts = np.zeros(n, dtype=np.int64)
    order = np.lexsort((event_id, ts)).astype(np.int64)
    keys = {k: _keys(frame[k], k, source)[order] for k in _key_fields(spec)}
    numeric: dict[str, npt.NDArray[np.float64]] = {}
    for name in _numeric_fields(spec):
        col = frame[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise DataError(
                f"{source}: the feature spec reads {name!r} as a number; the column is not "
                f"numeric (e.g. {col.iloc[0]!r})"
            )
        numeric[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)[order]
    events: dict[str, Any] = {"event_id": event_id[order], spec.timestamp: ts[order]}
    events.update(keys)
    events.update(numeric)
    return HistoryColumns(events=events, order=order)


def _key_fields(spec: FeatureSpec) -> list[str]:
    """Fields read as strings: window keys and ``distinct`` fields."""
    out = list(spec.keys)
    out += [w.distinct for w in spec.windows if w.distinct and w.distinct not in out]
    return out


def _numeric_fields(spec: FeatureSpec) -> list[str]:
    """Fields read as numbers: the spec's numeric fields and the windows' fields."""
    return list(dict.fromkeys([*spec.numeric, *(w.field for w in spec.windows if w.field)]))


def key_fields(spec: FeatureSpec) -> tuple[str, ...]:
    """The event fields read as strings (keys, ``distinct`` fields)."""
    return tuple(_key_fields(spec))


def numeric_fields(spec: FeatureSpec) -> tuple[str, ...]:
    """The event fields read as numbers."""
    return tuple(_numeric_fields(spec))


def label_columns(
    event_id: Iterable[str], label: npt.ArrayLike, known_at: npt.ArrayLike
) -> dict[str, Any]:
    """Labels as the engine's columns: ``event_id``, ``label``, ``known_at``.

    >>> label_columns(["a"], [1], [5])["known_at"].tolist()
    [5]
    """
    return {
        "event_id": np.asarray(list(event_id), dtype=np.str_),
        "label": np.asarray(label, dtype=np.int64),
        "known_at": np.asarray(known_at, dtype=np.int64),
    }


def read_labels(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a label file: JSON Lines ``{"event_id", "label", "timestamp"}``, the timestamp
    (ISO 8601 or epoch ms) being when the label became known; in file order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.jsonl"
    >>> _ = p.write_text('{"event_id": "a", "label": 1, "timestamp": 9}\\n{"event_id": "b"}\\n')
    >>> read_labels(p)
    Traceback (most recent call last):
    ...
    stream_detector.errors.DataError: label file ...labels.jsonl line 2: missing field 'label'
    """
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read label file {p}: {exc.strerror or exc}") from exc
    ids: list[str] = []
    labels: list[int] = []
    known: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = LabelMessage.model_validate_json(line)
            stamp = parse_timestamp(message.timestamp)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in err["loc"])
            text = f"missing field {where!r}" if err["type"] == "missing" else err["msg"]
            raise DataError(f"label file {p} line {number}: {text}") from None
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise DataError(f"label file {p} line {number}: {exc}") from None
        if stamp is None:
            raise DataError(
                f"label file {p} line {number}: no timestamp; each label needs the time it "
                "became known"
            )
        ids.append(message.event_id)
        labels.append(message.label)
        known.append(stamp)
    return label_columns(ids, labels, known)
