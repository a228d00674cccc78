"""Honest validation: folds, and out-of-fold scores that no model saw while fitting.

Without timestamps the folds are stratified K-fold (shuffled with the seed). With a
``timestamp`` column they are time-ordered, as fraud teams validate: the rows, sorted by time,
are cut into ``n_splits + 1`` consecutive blocks; fold ``i`` trains on blocks ``0..i-1`` and
validates on block ``i``, so a model never learns from the future of the rows it is judged on.
``gap_days`` leaves out the training rows that fall in the days just before the validation
period, whose labels would not have arrived yet in production. The first block is never
validated; its rows have no out-of-fold score (``mask`` is False there).

Every technique runs inside :meth:`~offline.models.FraudEstimator.fit` on the training rows of a
fold only, so validation rows are never resampled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedKFold

from offline.config import ValidationSettings
from offline.data import Dataset
from offline.models import FraudEstimator
from stream_detector.errors import ConfigError, DataError

__all__ = [
    "CrossValResult",
    "Fold",
    "cross_val_scores",
    "make_folds",
    "split_method",
    "validated_rows",
]

_DAY_MS = 86_400_000

Index = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Fold:
    """Row indices (into the dataset, which is in time order when it has timestamps)."""

    train: Index
    val: Index


def split_method(ds: Dataset, settings: ValidationSettings) -> Literal["stratified", "time"]:
    """The split method in force: ``auto`` is ``time`` when the data has timestamps."""
    if settings.method == "auto":
        return "time" if ds.timestamps is not None else "stratified"
    return settings.method


def make_folds(
    ds: Dataset, settings: ValidationSettings, *, random_state: int | None
) -> list[Fold]:
    """Split ``ds`` into validation folds (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(X=np.zeros((12, 1)), y=np.array([0, 1] * 6), features=("a",), label="y",
    ...              timestamps=np.arange(12) * 1000)
    >>> [(f.train.tolist(), f.val.tolist()) for f in make_folds(ds, ValidationSettings(n_splits=2),
    ...                                                          random_state=0)]
    [([0, 1, 2, 3], [4, 5, 6, 7]), ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11])]
    """
    k = settings.n_splits
    method = split_method(ds, settings)
    n_pos = ds.positives
    n_min = min(n_pos, ds.n - n_pos)
    if n_min == 0:
        raise DataError(
            f"label {ds.label!r} has only class {int(ds.y[0])} ({ds.n} rows); training needs "
            "rows of both classes 0 and 1"
        )
    if method == "stratified":
        if n_min < k:
            minority = 1 if n_pos <= ds.n - n_pos else 0
            raise DataError(
                f"class {minority} has {n_min} rows; {k}-fold validation needs at least {k}: "
                f"set validation.n_splits to {max(2, n_min)} or less (at least 2), or add data"
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
        return [Fold(tr, va) for tr, va in splitter.split(ds.X, ds.y)]
    if ds.timestamps is None:
        raise ConfigError("validation.method 'time' needs a 'timestamp' column; the data has none")
    ts = ds.timestamps
    blocks = np.array_split(np.arange(ds.n), k + 1)
    gap = round(settings.gap_days * _DAY_MS)
    folds = []
    for i in range(1, k + 1):
        val = blocks[i]
        start = ts[val[0]]
        train = np.arange(val[0])
        train = train[ts[train] <= start - gap] if gap else train
        if train.size == 0:
            raise DataError(
                f"validation.gap_days={settings.gap_days} leaves time fold {i} of {k} without "
                "training rows; lower the gap or use fewer folds"
            )
        folds.append(Fold(train.astype(np.intp), val.astype(np.intp)))
    return folds


def validated_rows(n: int, folds: list[Fold]) -> npt.NDArray[np.bool_]:
    """Which of ``n`` rows some fold validates (time-ordered folds leave the earliest out).

    >>> validated_rows(5, [Fold(np.array([0, 1]), np.array([2])), Fold(np.array([0]), np.array([4]))])
    array([False, False,  True, False,  True])
    """
    mask = np.zeros(n, dtype=bool)
    for fold in folds:
        mask[fold.val] = True
    return mask


@dataclass(frozen=True)
class CrossValResult:
    """Out-of-fold scores (NaN where a row was never validated) and fit times."""

    scores: npt.NDArray[np.float64]
    mask: npt.NDArray[np.bool_]
    fit_seconds: tuple[float, ...]

    @property
    def mean_fit_seconds(self) -> float:
        """Mean seconds to fit one fold's model."""
        return float(np.mean(self.fit_seconds))


def cross_val_scores(
    make_estimator: Callable[[], FraudEstimator],
    ds: Dataset,
    folds: list[Fold],
    *,
    on_fold: Callable[[int, int], None] | None = None,
) -> CrossValResult:
    """Fit a fresh estimator per fold on its training rows; score its validation rows.

    ``on_fold(done, total)`` is called after each fold (progress display).
    """
    scores = np.full(ds.n, np.nan)
    seconds = []
    for i, fold in enumerate(folds, start=1):
        est = make_estimator()
        est.check_labels(ds.y[fold.train], where=f"training fold {i} of {len(folds)}")
        start = time.perf_counter()
        est.fit(ds.X[fold.train], ds.y[fold.train])
        seconds.append(time.perf_counter() - start)
        scores[fold.val] = est.score_samples(ds.X[fold.val])
        if on_fold is not None:
            on_fold(i, len(folds))
    mask = validated_rows(ds.n, folds)
    y_val = ds.y[mask]
    if y_val.sum() == 0 or y_val.sum() == y_val.size:
        raise DataError(
            f"the validation folds hold only class {int(y_val[0])}; metrics need both classes "
            "(use fewer folds, or more data)"
        )
    return CrossValResult(scores=scores, mask=mask, fit_seconds=tuple(seconds))
