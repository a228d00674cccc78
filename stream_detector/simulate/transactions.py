"""Simulated transactions as columns: one numpy array per field, one row per transaction.

A :class:`Transactions` holds what :class:`~stream_detector.simulate.TransactionSimulator`
generates, sorted by time. Its columns:

==================  ========  ==========================================================
column              dtype     meaning
==================  ========  ==========================================================
``event_id``        str       ``"tx-<day>-<n>"``, unique and stable for a seed
``entity_id``       str       the card holder, ``"c-<customer>"``
``timestamp``       int64     epoch milliseconds (UTC), ascending
``customer_id``     str       the card holder, ``"c-<customer>"`` (a key of the behavioural
                              features; equal to ``entity_id``)
``terminal_id``     str       ``"t-<terminal>"``, the other key
``amount``          float64   the amount, two decimals
``hour_of_day``     float64   hours since midnight, in [0, 24)
``day_of_week``     int64     0 = Monday ... 6 = Sunday
``customer_x/_y``   float64   the customer's location on the 100 x 100 grid
``terminal_x/_y``   float64   the terminal's location
``distance``        float64   customer to terminal, in grid units (3 decimals, truncated)
``is_fraud``        int64     the label: 1 for fraud, 0 otherwise
``fraud_scenario``  int64     0 none, 1 large amount, 2 compromised terminal,
                              3 compromised customer
==================  ========  ==========================================================

Events (the ``events`` topic, JSON Lines) carry the identifiers, the raw fields the
behavioural features are computed from (``customer_id``, ``terminal_id``, ``amount``,
``timestamp``) and the numeric features, never the label; labels travel separately, after a
delay (:meth:`Transactions.iter_labels`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.errors import DataError

__all__ = [
    "ALL_COLUMNS",
    "CARD_FEATURES",
    "DEFAULT_FEATURES",
    "EVENT_COLUMNS",
    "FEATURE_COLUMNS",
    "LABEL_COLUMN",
    "TRAINING_COLUMNS",
    "Transactions",
]

FEATURE_COLUMNS: tuple[str, ...] = (
    "amount",
    "hour_of_day",
    "day_of_week",
    "customer_x",
    "customer_y",
    "terminal_x",
    "terminal_y",
    "distance",
)
"""Every numeric feature an event carries."""

DEFAULT_FEATURES: tuple[str, ...] = (
    "amount",
    "customer_x",
    "customer_y",
    "terminal_x",
    "terminal_y",
)
"""The features a model trained on simulated data uses unless told otherwise.

``amount`` finds scenario 1 and much of scenario 3 (amounts multiplied by 5). A location
identifies its terminal or card, so a tree model learns which terminals (scenario 2) and
cards (scenario 3) were compromised during training, and many stay compromised for weeks
after. ``hour_of_day``, ``day_of_week`` and ``distance`` carry no signal in this simulation
and are left out: they only dilute an anomaly detector. Per-card and per-terminal windowed
aggregates are what make scenarios 2 and 3 learnable in general; they belong to a later
feature step.
"""

CARD_FEATURES: dict[str, Any] = {
    "timestamp": "timestamp",
    "time_zone": "UTC",
    "numeric": ["amount"],
    "calendar": ["hour", "night", "weekend"],
    "night_hours": [22, 6],
    "lateness": "1d",
    "windows": [
        {
            "key": "customer_id",
            "windows": ["1d", "7d", "30d"],
            "field": "amount",
            "stats": ["count", "mean"],
        },
        {
            "key": "customer_id",
            "windows": ["30d"],
            "field": "amount",
            "relative": ["ratio", "zscore"],
        },
        {"key": "customer_id", "windows": ["1d"], "distinct": "terminal_id"},
        {
            "key": "terminal_id",
            "windows": ["1d", "7d", "30d"],
            "delay": "7d",
            "stats": ["count"],
            "labels": ["rate"],
        },
    ],
}
"""The behavioural feature set for card transactions, the ``features:`` section shipped in
``configs/train.yaml`` (the handbook's features: per card, the count and mean amount over 1, 7
and 30 days, and this amount against the 30-day mean; per terminal, the count and the fraud
rate over 1, 7 and 30 days ending 7 days earlier, as labels arrive late; terminals per card in
a day; the hour, night and weekend)."""

LABEL_COLUMN = "is_fraud"
"""The 0/1 label column."""

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "entity_id",
    "timestamp",
    "customer_id",
    "terminal_id",
    *FEATURE_COLUMNS,
)
"""The fields of one event message, in order."""

TRAINING_COLUMNS: tuple[str, ...] = (
    "event_id",
    "entity_id",
    "timestamp",
    "customer_id",
    "terminal_id",
    *DEFAULT_FEATURES,
    LABEL_COLUMN,
)
"""The columns of a training file (the CSV default): the identifiers, the keys of the
behavioural features (``customer_id``, ``terminal_id``), the default features and the label.
The numeric columns are exactly :data:`DEFAULT_FEATURES`; a training config without a
``features:`` section names the keys in ``data.exclude`` to use those as they are."""

ALL_COLUMNS: tuple[str, ...] = (*EVENT_COLUMNS, LABEL_COLUMN, "fraud_scenario")
"""Every column, the simulator's bookkeeping included. For analysis: ``fraud_scenario`` gives
the label away, so it may not be a feature."""

_STRING_COLUMNS = frozenset({"event_id", "entity_id", "customer_id", "terminal_id"})
_INTEGER_COLUMNS = frozenset({"timestamp", "day_of_week", LABEL_COLUMN, "fraud_scenario"})


def _dtype(name: str) -> type:
    if name in _STRING_COLUMNS:
        return np.str_
    return np.int64 if name in _INTEGER_COLUMNS else np.float64


class Transactions:
    """Columns of simulated transactions, all of one length, sorted by ``timestamp``.

    Parameters
    ----------
    columns
        Column name -> one-dimensional array; exactly the names in :data:`ALL_COLUMNS`.

    Examples
    --------
    >>> from stream_detector.simulate import TransactionSimulator
    >>> tx = TransactionSimulator.from_preset("demo", random_state=7).generate(n_days=2)
    >>> tx
    Transactions(n=1968, frauds=3)
    >>> tx["event_id"][:3].tolist(), tx["timestamp"][:3].tolist()
    (['tx-0-0', 'tx-0-1', 'tx-0-2'], [1522541285600, 1522541325846, 1522542102995])
    >>> next(tx.iter_events())["amount"], next(tx.iter_labels(delay_ms=1000))
    (21.8, {'event_id': 'tx-0-0', 'label': 0, 'timestamp': 1522541286600})
    """

    def __init__(self, columns: Mapping[str, npt.ArrayLike]) -> None:
        missing = [name for name in ALL_COLUMNS if name not in columns]
        extra = sorted(set(columns) - set(ALL_COLUMNS))
        if missing or extra:
            raise DataError(
                f"transactions need exactly the columns {list(ALL_COLUMNS)}; "
                f"missing {missing}, unexpected {extra}"
            )
        arrays = {name: np.asarray(columns[name]) for name in ALL_COLUMNS}
        lengths = {name: a.shape for name, a in arrays.items()}
        if len({shape for shape in lengths.values()}) != 1 or arrays["amount"].ndim != 1:
            raise DataError(
                f"transaction columns must be one-dimensional and of equal length; "
                f"got shapes {lengths}"
            )
        self._columns = arrays

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> array, in :data:`ALL_COLUMNS` order (a pandas DataFrame accepts it)."""
        return dict(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return int(self._columns["timestamp"].shape[0])

    def __repr__(self) -> str:
        return f"Transactions(n={len(self)}, frauds={self.n_frauds})"

    @property
    def n_frauds(self) -> int:
        """Number of fraudulent transactions."""
        return int(self._columns[LABEL_COLUMN].sum())

    @property
    def fraud_rate(self) -> float:
        """Share of fraudulent transactions (0.0 when empty)."""
        return self.n_frauds / len(self) if len(self) else 0.0

    def scenario_counts(self) -> dict[int, int]:
        """Number of transactions per fraud scenario (0 = legitimate, 1, 2, 3)."""
        counts = np.bincount(self._columns["fraud_scenario"], minlength=4)
        return {scenario: int(counts[scenario]) for scenario in range(4)}

    def head(self, n: int) -> Transactions:
        """The first ``n`` transactions (all of them if there are fewer)."""
        return Transactions({name: a[:n] for name, a in self._columns.items()})

    def take(self, indices: npt.ArrayLike) -> Transactions:
        """The transactions at ``indices`` (integer positions or a boolean mask), in that order."""
        idx = np.asarray(indices)
        return Transactions({name: a[idx] for name, a in self._columns.items()})

    @classmethod
    def concatenate(cls, parts: Sequence[Transactions]) -> Transactions:
        """Join transactions end to end (give them in time order to keep ``timestamp`` sorted)."""
        if not parts:
            return cls.empty()
        return cls({name: np.concatenate([p[name] for p in parts]) for name in ALL_COLUMNS})

    @classmethod
    def empty(cls) -> Transactions:
        """No transactions, with the right dtypes."""
        return cls({name: np.empty(0, dtype=_dtype(name)) for name in ALL_COLUMNS})

    def rows(self, columns: Sequence[str] = ALL_COLUMNS) -> Iterator[tuple[Any, ...]]:
        """Yield one tuple of plain Python values per transaction, in ``columns`` order."""
        unknown = [name for name in columns if name not in self._columns]
        if unknown:
            raise DataError(f"unknown transaction columns {unknown}; known: {list(ALL_COLUMNS)}")
        return zip(*(self._columns[name].tolist() for name in columns), strict=True)

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Yield one event per transaction: a flat dict of :data:`EVENT_COLUMNS`, no label."""
        for row in self.rows(EVENT_COLUMNS):
            yield dict(zip(EVENT_COLUMNS, row, strict=True))

    def iter_labels(self, delay_ms: int = 0) -> Iterator[dict[str, Any]]:
        """Yield one label message per transaction, stamped ``delay_ms`` after its event.

        Each is ``{"event_id": str, "label": 0 | 1, "timestamp": epoch ms}`` (the ``labels``
        topic's format), in event order.
        """
        if delay_ms < 0:
            raise DataError(f"the label delay must be >= 0 ms; got {delay_ms}")
        for event_id, label, ts in self.rows(("event_id", LABEL_COLUMN, "timestamp")):
            yield {"event_id": event_id, "label": label, "timestamp": ts + delay_ms}
