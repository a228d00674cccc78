"""GradientBoostingScorer against HistGradientBoostingClassifier.predict_proba."""

from __future__ import annotations

from collections.abc import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import roc_auc_score

from stream_detector.errors import BundleError, ConfigError
from stream_detector.scoring import GradientBoostingScorer, Scorer

ATOL = 1e-9  # well inside the 1e-6 the contract promises


def test_shuttle_every_row_matches_scikit_learn(
    shuttle: tuple[np.ndarray, np.ndarray], shuttle_hgb: HistGradientBoostingClassifier
) -> None:
    X, y = shuttle
    scorer = GradientBoostingScorer.from_sklearn(shuttle_hgb)
    scores = scorer.score_samples(X)
    np.testing.assert_allclose(scores, shuttle_hgb.predict_proba(X)[:, 1], rtol=0, atol=ATOL)
    assert roc_auc_score(y[1::2], scores[1::2]) > 0.99  # held-out rows


@pytest.mark.parametrize("size", [1, 3, 24, 25, 700])
def test_shuttle_batches_of_any_size_match(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_hgb: HistGradientBoostingClassifier,
    size: int,
) -> None:
    X, _ = shuttle
    scorer = GradientBoostingScorer.from_sklearn(shuttle_hgb)
    rows = X[np.random.default_rng(size).choice(len(X), size=size, replace=False)]
    expected = shuttle_hgb.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(scorer.score_samples(rows), expected, rtol=0, atol=ATOL)


def _data(seed: int, n: int = 1500, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).round(1)  # ties: rows exactly on bin thresholds
    signal = X[:, 0] + X[:, 1] * X[:, -1] + rng.normal(scale=0.7, size=n)
    y = (signal > 1.2).astype(int)
    X[rng.uniform(size=X.shape) < 0.08] = np.nan
    X[rng.uniform(size=n) < 0.1, 0] = np.nan  # NaN that tells: positives of its own
    y[np.isnan(X[:, 0])] = rng.uniform(size=int(np.isnan(X[:, 0]).sum())) < 0.5
    return X, y


@pytest.mark.parametrize(
    "params",
    [
        {"max_iter": 30},
        {"max_iter": 20, "max_leaf_nodes": 100, "min_samples_leaf": 3},  # > 64 leaves
        {"max_iter": 40, "max_depth": 2, "learning_rate": 0.3},
        {"max_iter": 100, "early_stopping": True, "validation_fraction": 0.2},
        {"max_iter": 15, "l2_regularization": 1.0, "class_weight": "balanced"},
    ],
)
def test_random_models_with_missing_values_match_scikit_learn(params: dict[str, object]) -> None:
    X, y = _data(len(params))
    model = HistGradientBoostingClassifier(random_state=0, **params).fit(X, y)
    scorer = GradientBoostingScorer.from_sklearn(model)
    rows = np.vstack([X, _data(77)[0]])
    rows[::13, 1] = np.inf
    rows[::19, 2] = -np.inf
    expected = model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(scorer.score_samples(rows), expected, rtol=0, atol=ATOL)
    for i in range(0, len(rows), 41):
        np.testing.assert_allclose(
            scorer.score_samples(rows[i : i + 1]), expected[i : i + 1], atol=ATOL
        )


def test_a_split_on_missing_values_alone_is_reproduced() -> None:
    X = np.zeros((400, 1))
    X[::2, 0] = np.nan
    y = np.isnan(X[:, 0]).astype(int)
    model = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, y)
    scorer = GradientBoostingScorer.from_sklearn(model)
    assert np.inf in scorer.trees.threshold  # "all values left, NaN right"
    rows = np.array([[np.nan], [0.0], [np.inf], [-np.inf], [5.0]])
    np.testing.assert_allclose(
        scorer.score_samples(rows), model.predict_proba(rows)[:, 1], atol=ATOL
    )
    assert scorer.score_samples(rows)[0] > 0.5 > scorer.score_samples(rows)[2]


@pytest.fixture(scope="module")
def model() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(*_data(5, d=3))


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.just(3)),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_any_rows_match_scikit_learn(
    model: HistGradientBoostingClassifier, rows: np.ndarray
) -> None:
    scorer = GradientBoostingScorer.from_sklearn(model)
    np.testing.assert_allclose(
        scorer.score_samples(rows), model.predict_proba(rows)[:, 1], atol=ATOL
    )


def test_logit_offset_shifts_the_log_odds(model: HistGradientBoostingClassifier) -> None:
    X, _ = _data(5, d=3)
    scorer = GradientBoostingScorer.from_sklearn(model, logit_offset=-2.5)
    expected = expit(model.decision_function(X) - 2.5)
    np.testing.assert_allclose(scorer.score_samples(X), expected, rtol=0, atol=ATOL)


def test_string_labels_score_the_second_class() -> None:
    X, y = _data(6, d=3)
    labels = np.where(y == 1, "fraud", "ok")  # classes_ == ["fraud", "ok"]
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, labels)
    scorer = GradientBoostingScorer.from_sklearn(model)
    np.testing.assert_allclose(scorer.score_samples(X), model.predict_proba(X)[:, 1], atol=ATOL)


def test_payload_round_trip(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_hgb: HistGradientBoostingClassifier,
    roundtrip: Callable[[Scorer], Scorer],
) -> None:
    X, _ = shuttle
    scorer = GradientBoostingScorer.from_sklearn(shuttle_hgb, logit_offset=-1.25)
    spec, _ = scorer.to_payload()
    assert spec["kind"] == "gbdt"
    assert spec["logit_offset"] == -1.25
    assert spec["baseline"] == float(shuttle_hgb._baseline_prediction.ravel()[0])
    np.testing.assert_array_equal(
        roundtrip(scorer).score_samples(X[:3000]), scorer.score_samples(X[:3000])
    )


@pytest.mark.parametrize(
    ("spec_change", "array_change", "message"),
    [
        ({"baseline": None}, {}, "'baseline' must be a finite number; got None"),
        ({"logit_offset": "0"}, {}, "'logit_offset' must be a finite number; got '0'"),
        ({}, {"threshold": np.nan}, "split thresholds must be finite or +inf; got nan"),
        ({}, {"threshold": -np.inf}, "split thresholds must be finite or +inf; got -inf"),
        ({}, {"value": np.nan}, "leaf values must be finite"),
        ({}, {"children_left": 10**6}, "must point forward to a node of the same tree"),
    ],
)
def test_bad_payloads_are_bundle_errors(
    model: HistGradientBoostingClassifier,
    spec_change: dict[str, object],
    array_change: dict[str, float],
    message: str,
) -> None:
    spec, arrays = GradientBoostingScorer.from_sklearn(model).to_payload()
    for name, value in array_change.items():
        target = arrays[name]
        where = np.flatnonzero(arrays["children_left"] >= 0)
        index = where[0] if name != "value" else np.flatnonzero(arrays["children_left"] < 0)[0]
        target[index] = value
    with pytest.raises(BundleError) as info:
        GradientBoostingScorer.from_payload({**spec, **spec_change}, arrays)
    assert message in str(info.value)


def test_categorical_features_are_refused() -> None:
    X, y = _data(8, d=3)
    X[:, 2] = np.nan_to_num(np.abs(X[:, 2]).round())
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[2]).fit(X, y)
    with pytest.raises(ConfigError, match="categorical features; expected numeric features only"):
        GradientBoostingScorer.from_sklearn(model)
    frame = pd.DataFrame({"a": X[:, 0], "b": pd.Categorical(X[:, 2].astype(int))})
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame, y)
    with pytest.raises(ConfigError, match="categorical features"):
        GradientBoostingScorer.from_sklearn(model)


def test_only_fitted_binary_classifiers_compile() -> None:
    X, y = _data(9, d=3)
    three = HistGradientBoostingClassifier(max_iter=3).fit(X, y + (X[:, 1] > 1))
    with pytest.raises(ConfigError, match="expected a binary classifier; got 3 classes"):
        GradientBoostingScorer.from_sklearn(three)
    regressor = HistGradientBoostingRegressor(max_iter=3).fit(X, y)
    with pytest.raises(ConfigError, match="got HistGradientBoostingRegressor"):
        GradientBoostingScorer.from_sklearn(regressor)
    with pytest.raises(ConfigError, match="expected a fitted HistGradientBoostingClassifier"):
        GradientBoostingScorer.from_sklearn(HistGradientBoostingClassifier())
