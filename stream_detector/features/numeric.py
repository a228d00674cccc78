"""Select the bundle's numeric fields, in the bundle's order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.errors import DataError
from stream_detector.features.base import IDENTIFIER_COLUMNS, FeatureStep

__all__ = ["NumericFeatures"]


class NumericFeatures(FeatureStep):
    """Numeric fields taken as they are.

    Parameters
    ----------
    features
        Ordered feature names; identifiers (``event_id``, ``entity_id``, ``timestamp``) and
        duplicates are refused.

    Examples
    --------
    >>> step = NumericFeatures(["amount", "hour"])
    >>> step.from_records([{"amount": 12.5, "hour": 3, "event_id": "a"}])
    array([[12.5,  3. ]])
    >>> step.from_columns({"hour": [1, 2], "amount": [10.0, 20.0]})
    array([[10.,  1.],
           [20.,  2.]])
    """

    def __init__(self, features: Sequence[str]) -> None:
        names = tuple(features)
        if not names:
            raise DataError("at least one feature is required; got none")
        clash = sorted(IDENTIFIER_COLUMNS.intersection(names))
        if clash:
            raise DataError(f"identifier columns cannot be features; got {clash}")
        if len(set(names)) != len(names):
            raise DataError(f"feature names must be unique; got {list(names)}")
        self.names = names

    def from_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        names = self.names
        out = np.empty((len(records), len(names)), dtype=np.float64)
        for i, record in enumerate(records):
            out[i] = [record[name] for name in names]
        return out

    def from_columns(self, columns: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise DataError(f"feature columns missing from the data: {missing}")
        try:
            return np.column_stack(
                [np.asarray(columns[name], dtype=np.float64) for name in self.names]
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"feature columns must be numeric: {exc}") from exc
