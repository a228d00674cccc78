"""Techniques: the samplers, the prior they imply, and the checks on class counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from imblearn.combine import SMOTETomek
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

from offline.config import TECHNIQUES, ResamplingSettings, TrainSettings
from offline.models import ClassifierEstimator
from offline.resampling import (
    check_resampling,
    logit,
    make_sampler,
    prior_offset,
)
from stream_detector.errors import ConfigError, DataError


def data(n: int = 600, rate: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    X = rng.normal(size=(n, 3)) + y[:, None] * 1.2
    return X, y


@pytest.mark.parametrize(
    ("technique", "cls"),
    [
        ("random_over", RandomOverSampler),
        ("random_under", RandomUnderSampler),
        ("smote", SMOTE),
        ("borderline_smote", BorderlineSMOTE),
        ("adasyn", ADASYN),
        ("smote_tomek", SMOTETomek),
    ],
)
def test_make_sampler(technique: Any, cls: type[Any]) -> None:
    sampler: Any = make_sampler(
        technique, ResamplingSettings(sampling_strategy=0.5, k_neighbors=3), random_state=4
    )
    assert type(sampler) is cls
    assert sampler.random_state == 4
    params = sampler.get_params()
    if technique == "smote_tomek":
        assert params["smote"].k_neighbors == 3
        assert params["smote"].sampling_strategy == 0.5
    else:
        assert params["sampling_strategy"] == 0.5
    if technique in ("smote", "borderline_smote"):
        assert params["k_neighbors"] == 3
    if technique == "adasyn":
        assert params["n_neighbors"] == 3


def test_no_sampler_for_none_and_class_weight() -> None:
    assert make_sampler("none", ResamplingSettings(), random_state=0) is None
    assert make_sampler("class_weight", ResamplingSettings(), random_state=0) is None


@pytest.mark.parametrize("technique", TECHNIQUES)
@pytest.mark.parametrize("strategy", ["auto", 0.25])
def test_effective_prior_matches_the_resampled_data(technique: Any, strategy: object) -> None:
    """Oracle: resample the same training rows with the same sampler and count."""
    X, y = data()
    settings = TrainSettings.load(overrides={"resampling": {"sampling_strategy": strategy}})
    det = ClassifierEstimator(technique=technique, settings=settings, random_state=0).fit(X, y)
    if technique == "none":
        assert det.fitted_prior_ == y.mean()
        assert det.logit_offset_ == 0.0
        return
    if technique == "class_weight":
        assert det.fitted_prior_ == 0.5
    else:
        sampler: Any = make_sampler(technique, settings.resampling, random_state=0)
        Xs = det.pipeline_.named_steps["scale"].transform(X)
        _, y_res = sampler.fit_resample(Xs, y)
        actual = y_res.mean()
        planned = 0.5 if strategy == "auto" else 0.2
        if technique in ("adasyn", "smote_tomek"):  # rounding per row / Tomek links removed
            assert det.fitted_prior_ == pytest.approx(planned, abs=0.002)  # planned counts
            assert abs(actual - planned) < 0.03
        else:
            assert det.fitted_prior_ == pytest.approx(actual, abs=1e-12)
            assert actual == pytest.approx(planned, abs=0.002)
    assert det.logit_offset_ == pytest.approx(logit(y.mean()) - logit(det.fitted_prior_))


def test_class_weight_dict_prior() -> None:
    X, y = data()
    settings = TrainSettings.load(overrides={"resampling": {"class_weight": {0: 1.0, 1: 4.0}}})
    det = ClassifierEstimator(technique="class_weight", settings=settings, random_state=0).fit(X, y)
    n1, n0 = y.sum(), (1 - y).sum()
    assert det.fitted_prior_ == pytest.approx(4 * n1 / (4 * n1 + n0))
    assert det.pipeline_.named_steps["model"].class_weight == {0: 1.0, 1: 4.0}


def test_prior_offset() -> None:
    assert prior_offset(0.1, 0.5) == pytest.approx(math.log(0.1 / 0.9))
    assert prior_offset(0.3, 0.3) == 0.0


def test_too_few_minority_rows_for_neighbours() -> None:
    y = [0] * 40 + [1] * 5
    with pytest.raises(DataError) as info:
        check_resampling("borderline_smote", ResamplingSettings(k_neighbors=5), y, where="fold 2")
    assert str(info.value) == (
        "class 1 has 5 rows in fold 2; borderline_smote with k_neighbors=5 needs at least 6: "
        "lower resampling.k_neighbors (to 4 at most), use fewer validation folds, or choose "
        "class_weight or random_over"
    )
    check_resampling("borderline_smote", ResamplingSettings(k_neighbors=4), y)
    check_resampling("random_over", ResamplingSettings(), y)


def test_a_single_class_is_refused() -> None:
    with pytest.raises(DataError, match="fold 1 has no rows of class 1; training needs both"):
        check_resampling("none", ResamplingSettings(), [0, 0, 0], where="fold 1")


def test_sampling_strategy_below_the_data_ratio() -> None:
    y = [0] * 80 + [1] * 20  # ratio 0.25
    with pytest.raises(ConfigError) as info:
        check_resampling("random_over", ResamplingSettings(sampling_strategy=0.1), y)
    assert str(info.value) == (
        "resampling.sampling_strategy=0.1 is below the minority/majority ratio of the training "
        "data (0.2500); random_over needs a larger ratio, or 'auto'"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.0, "must be 'auto' or a ratio in (0, 1]"),
        (1.5, "must be 'auto' or a ratio in (0, 1]"),
        ("half", "sampling_strategy"),
    ],
)
def test_sampling_strategy_validated(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"resampling\.sampling_strategy") as info:
        TrainSettings.load(overrides={"resampling": {"sampling_strategy": value}})
    assert message in str(info.value)


def test_class_weight_validated() -> None:
    with pytest.raises(ConfigError, match="positive weights for 0 and 1"):
        TrainSettings.load(overrides={"resampling": {"class_weight": {0: 1.0, 1: -2.0}}})


@pytest.mark.parametrize("technique", ["random_over", "smote", "adasyn", "smote_tomek"])
def test_over_samplers_add_at_most_max_new_rows(technique: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=2000) > 1.6).astype(np.int64)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    settings = TrainSettings.load(overrides={"resampling": {"max_new_rows": 300}})
    est = ClassifierEstimator(technique=technique, settings=settings, random_state=0).fit(X, y)
    sampler = est.pipeline_.named_steps["resample"]
    if technique == "smote_tomek":
        sampler = sampler.smote_
    planned = sum(sampler.sampling_strategy_.values())
    assert planned == 300
    # The prior correction follows the ratio actually used.
    assert est.fitted_prior_ == pytest.approx((n_pos + 300) / (n_neg + n_pos + 300))
    uncapped = TrainSettings.load(overrides={"resampling": {"max_new_rows": None}})
    full = ClassifierEstimator(technique=technique, settings=uncapped, random_state=0).fit(X, y)
    assert full.fitted_prior_ == pytest.approx(0.5, abs=0.01)
