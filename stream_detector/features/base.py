"""The feature step's contract.

A feature step turns events into a float64 matrix with one row per event and one column per
feature, in the order the model bundle records. Training (``offline``), ``score`` and
``serve`` all build their matrices through the same step, so a model sees the same numbers
offline and online. Steps are replaceable: a later step can add per-entity windowed
aggregates without touching the callers.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["IDENTIFIER_COLUMNS", "FeatureStep"]

IDENTIFIER_COLUMNS: frozenset[str] = frozenset({"event_id", "entity_id", "timestamp"})
"""Columns that identify an event and are never features."""


class FeatureStep(abc.ABC):
    """Maps events to a feature matrix; ``names`` are the matrix's columns, in order."""

    names: tuple[str, ...]

    @abc.abstractmethod
    def from_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        """One row per event from already validated records (mappings of field to value)."""

    @abc.abstractmethod
    def from_columns(self, columns: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        """One row per event from columns (a pandas DataFrame works as the mapping)."""
