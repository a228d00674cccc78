"""Write simulated transactions to files: CSV for training, JSON Lines for events and labels."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from stream_detector.errors import ConfigError, DataError
from stream_detector.simulate.transactions import TRAINING_COLUMNS, Transactions

__all__ = ["FileFormat", "infer_format", "write_csv", "write_jsonl"]

FileFormat = Literal["csv", "jsonl"]

_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
}


def infer_format(path: str | os.PathLike[str]) -> FileFormat:
    """The file format a path's suffix names; ``"-"`` (standard output) is JSON Lines.

    Examples
    --------
    >>> infer_format("history.csv"), infer_format("events.jsonl"), infer_format("-")
    ('csv', 'jsonl', 'jsonl')
    >>> infer_format("events.txt")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: cannot tell the format of 'events.txt' from its suffix; expected one of ['.csv', '.json', '.jsonl', '.ndjson'] or --format csv|jsonl
    """
    if str(path) == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(
            f"cannot tell the format of {str(path)!r} from its suffix; expected one of "
            f"{sorted(_SUFFIXES)} or --format csv|jsonl"
        )
    return _SUFFIXES[suffix]


@contextlib.contextmanager
def _opened(
    target: str | os.PathLike[str] | IO[Any], mode: Literal["w", "wb"]
) -> Iterator[IO[Any]]:
    if not isinstance(target, str | os.PathLike):
        yield target
        return
    try:
        handle = open(target, mode, newline="") if mode == "w" else open(target, mode)  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"cannot write {os.fspath(target)}: {exc.strerror or exc}") from exc
    with handle:
        yield handle


def write_csv(
    transactions: Transactions,
    target: str | os.PathLike[str] | IO[str],
    *,
    columns: Sequence[str] = TRAINING_COLUMNS,
) -> int:
    """Write transactions as CSV with a header row; return the number of rows.

    Parameters
    ----------
    transactions
        What to write.
    target
        A path, or a text file opened with ``newline=""``.
    columns
        Columns to write, in order; the default is a training file (identifiers, the default
        features, the label ``is_fraud``).

    Examples
    --------
    >>> import io
    >>> from stream_detector.simulate import TransactionSimulator
    >>> tx = TransactionSimulator.from_preset("demo", random_state=7).generate(n_days=1)
    >>> out = io.StringIO()
    >>> write_csv(tx.head(2), out, columns=["event_id", "entity_id", "amount", "is_fraud"])
    2
    >>> print(out.getvalue(), end="")
    event_id,entity_id,amount,is_fraud
    tx-0-0,c-171,21.8,0
    tx-0-1,c-221,20.42,0
    """
    rows = transactions.rows(columns)
    with _opened(target, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    return len(transactions)


def write_jsonl(
    records: Iterable[Mapping[str, Any]], target: str | os.PathLike[str] | IO[bytes] | IO[str]
) -> int:
    """Write one JSON object per line (events or label messages); return the number written.

    ``target`` is a path, or a binary or text file (``sys.stdout`` works).

    Examples
    --------
    >>> import io
    >>> out = io.BytesIO()
    >>> write_jsonl([{"event_id": "tx-0-0", "amount": 12.5}], out)
    1
    >>> out.getvalue()
    b'{"event_id":"tx-0-0","amount":12.5}\\n'
    """
    count = 0
    with _opened(target, "wb") as handle:
        text = isinstance(handle, io.TextIOBase)
        for record in records:
            line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
            handle.write(line.decode() if text else line)
            count += 1
    return count
