"""Folds and out-of-fold scores: time order respected, validation rows never resampled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.preprocessing import StandardScaler

from offline.config import TrainSettings, ValidationSettings
from offline.data import Dataset, load_dataset
from offline.models import ClassifierEstimator
from offline.validation import cross_val_scores, make_folds, split_method
from stream_detector.errors import ConfigError, DataError

DAY = 86_400_000


def dataset(n: int = 300, rate: float = 0.1, seed: int = 0, times: bool = False) -> Dataset:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    y[:3] = 1
    X = rng.normal(size=(n, 3)) + y[:, None]
    ts = np.sort(rng.integers(0, 60 * DAY, n)) if times else None
    return Dataset(X=X, y=y, features=("a", "b", "c"), label="y", timestamps=ts)


def test_time_splits_never_validate_on_the_past(
    write_csv: Callable[..., Path], make_data: Callable[..., pd.DataFrame]
) -> None:
    frame = make_data(500, seed=3)
    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 40 * 24 * 3600, len(frame)), unit="s"
    )
    frame["timestamp"] = stamps.strftime("%Y-%m-%dT%H:%M:%SZ")  # file order is not time order
    ds = load_dataset(write_csv(frame), "is_fraud")
    assert ds.timestamps is not None
    settings = ValidationSettings(n_splits=4)
    assert split_method(ds, settings) == "time"
    folds = make_folds(ds, settings, random_state=0)
    assert len(folds) == 4
    validated = np.concatenate([f.val for f in folds])
    assert len(np.unique(validated)) == len(validated)
    for fold in folds:
        assert ds.timestamps[fold.train].max() <= ds.timestamps[fold.val].min()
        assert len(np.intersect1d(fold.train, fold.val)) == 0
    # Expanding window: each fold trains on everything before its validation block.
    assert [len(f.train) for f in folds] == [100, 200, 300, 400]
    assert [len(f.val) for f in folds] == [100] * 4


def test_time_splits_leave_a_gap() -> None:
    ds = dataset(times=True)
    assert ds.timestamps is not None
    gapped = make_folds(ds, ValidationSettings(n_splits=3, gap_days=5), random_state=0)
    plain = make_folds(ds, ValidationSettings(n_splits=3), random_state=0)
    for fold, full in zip(gapped, plain, strict=True):
        np.testing.assert_array_equal(fold.val, full.val)
        assert ds.timestamps[fold.train].max() <= ds.timestamps[fold.val].min() - 5 * DAY
        left_out = np.setdiff1d(full.train, fold.train)
        assert left_out.size > 0
        assert (ds.timestamps[left_out] > ds.timestamps[fold.val].min() - 5 * DAY).all()


def test_gap_too_large() -> None:
    ds = dataset(times=True)
    with pytest.raises(
        DataError, match=r"gap_days=100\.0 leaves time fold 1 of 3 without training"
    ):
        make_folds(ds, ValidationSettings(n_splits=3, gap_days=100), random_state=0)


def test_time_method_needs_timestamps() -> None:
    with pytest.raises(ConfigError, match="needs a 'timestamp' column"):
        make_folds(dataset(), ValidationSettings(method="time"), random_state=0)


def test_stratified_folds_partition_the_rows() -> None:
    ds = dataset(times=True)
    settings = ValidationSettings(method="stratified", n_splits=5)
    folds = make_folds(ds, settings, random_state=0)
    np.testing.assert_array_equal(np.sort(np.concatenate([f.val for f in folds])), np.arange(ds.n))
    counts = [int(ds.y[f.val].sum()) for f in folds]
    assert max(counts) - min(counts) <= 1
    again = make_folds(ds, settings, random_state=0)
    assert all(np.array_equal(a.val, b.val) for a, b in zip(folds, again, strict=True))


def test_fewer_positives_than_folds() -> None:
    ds = dataset(n=200, rate=0.0)
    ds.y[:3] = 1
    with pytest.raises(DataError) as info:
        make_folds(ds, ValidationSettings(n_splits=5), random_state=0)
    assert str(info.value) == (
        "class 1 has 3 rows; 5-fold validation needs at least 5: set validation.n_splits to 3 "
        "or less (at least 2), or add data"
    )


def test_a_single_class_cannot_be_validated() -> None:
    ds = dataset()
    ds.y[:] = 0
    with pytest.raises(
        DataError, match=r"has only class 0 \(300 rows\); training needs rows of both"
    ):
        make_folds(ds, ValidationSettings(), random_state=0)


def test_fold_without_enough_positives_for_smote_names_the_fold() -> None:
    ds = dataset(n=300, rate=0.0, times=True)
    ds.y[:] = 0
    ds.y[[0, 1, 2, 150, 200, 250, 280, 290]] = 1  # the first training block has 3 positives
    settings = TrainSettings.load(overrides={"validation": {"n_splits": 3}})
    folds = make_folds(ds, settings.validation, random_state=0)
    with pytest.raises(DataError) as info:
        cross_val_scores(
            lambda: ClassifierEstimator(technique="smote", settings=settings, random_state=0),
            ds,
            folds,
        )
    assert str(info.value).startswith(
        "class 1 has 3 rows in training fold 1 of 3; smote with k_neighbors=5 needs at least 6"
    )


def test_resampling_never_touches_validation_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call to the sampler receives exactly one fold's training rows, nothing else."""
    ds = dataset(n=300)
    settings = TrainSettings.load(overrides={"validation": {"n_splits": 3}})
    folds = make_folds(ds, settings.validation, random_state=0)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = SMOTE.fit_resample

    def spy(self: SMOTE, X: Any, y: Any, **kwargs: Any) -> Any:
        seen.append((np.array(X), np.array(y)))
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(SMOTE, "fit_resample", spy)
    cv = cross_val_scores(
        lambda: ClassifierEstimator(technique="smote", settings=settings, random_state=0), ds, folds
    )
    assert len(seen) == len(folds)
    for (X_seen, y_seen), fold in zip(seen, folds, strict=True):
        # The sampler sees the scaled training rows of its fold, in order: no validation row.
        scaled = StandardScaler().fit(ds.X[fold.train]).transform(ds.X[fold.train])
        np.testing.assert_array_equal(X_seen, scaled)
        np.testing.assert_array_equal(y_seen, ds.y[fold.train])
    assert cv.mask.all()


def test_validation_labels_do_not_influence_their_scores() -> None:
    """Flip the labels of one fold's validation rows: that fold's scores stay identical."""
    ds = dataset(n=300)
    settings = TrainSettings.load(overrides={"validation": {"n_splits": 3}})
    folds = make_folds(ds, settings.validation, random_state=0)
    make = lambda: ClassifierEstimator(technique="smote", settings=settings, random_state=0)  # noqa: E731
    before = cross_val_scores(make, ds, folds).scores
    flipped = ds.y.copy()
    flipped[folds[0].val] = 1 - flipped[folds[0].val]
    changed = Dataset(X=ds.X, y=flipped, features=ds.features, label="y")
    after = cross_val_scores(make, changed, folds).scores
    np.testing.assert_array_equal(before[folds[0].val], after[folds[0].val])
    assert not np.array_equal(before[folds[1].val], after[folds[1].val])


def test_out_of_fold_scores_cover_only_validated_rows() -> None:
    ds = dataset(times=True)
    settings = TrainSettings.load(overrides={"validation": {"n_splits": 2}})
    folds = make_folds(ds, settings.validation, random_state=0)
    cv = cross_val_scores(lambda: ClassifierEstimator(settings=settings, random_state=0), ds, folds)
    assert not cv.mask[folds[0].train].any()  # the first block is never validated
    assert np.isnan(cv.scores[~cv.mask]).all()
    assert np.isfinite(cv.scores[cv.mask]).all()
    assert len(cv.fit_seconds) == 2
