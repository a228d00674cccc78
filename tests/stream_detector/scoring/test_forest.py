"""IsolationForestScorer against scikit-learn's ``-score_samples``, on shuttle and random data."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.metrics import roc_auc_score

from stream_detector.errors import BundleError, ConfigError
from stream_detector.scoring import IsolationForestScorer, Scorer, average_path_length

ATOL = 1e-9  # well inside the 1e-6 the contract promises


def sklearn_scores(forest: IsolationForest, rows: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # float32 overflow of huge values, as in our tests
        warnings.simplefilter("ignore", RuntimeWarning)
        return -forest.score_samples(rows)


def test_shuttle_every_row_matches_scikit_learn(
    shuttle: tuple[np.ndarray, np.ndarray], shuttle_iforest: IsolationForest
) -> None:
    X, y = shuttle
    scorer = IsolationForestScorer.from_sklearn(shuttle_iforest)
    scores = scorer.score_samples(X)
    np.testing.assert_allclose(scores, sklearn_scores(shuttle_iforest, X), rtol=0, atol=ATOL)
    assert roc_auc_score(y, scores) > 0.85  # anomalies of the shuttle data score higher


@pytest.mark.parametrize("size", [1, 2, 23, 500])
def test_shuttle_batches_of_any_size_match(
    shuttle: tuple[np.ndarray, np.ndarray], shuttle_iforest: IsolationForest, size: int
) -> None:
    X, _ = shuttle
    scorer = IsolationForestScorer.from_sklearn(shuttle_iforest)
    rows = X[np.random.default_rng(size).choice(len(X), size=size, replace=False)]
    np.testing.assert_allclose(
        scorer.score_samples(rows), sklearn_scores(shuttle_iforest, rows), rtol=0, atol=ATOL
    )


def _random_rows(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_t(df=3, size=(n, d)) * rng.uniform(0.1, 100.0, size=d)
    return X.round(2)  # repeated values put rows exactly on thresholds


@pytest.mark.parametrize(
    ("d", "params"),
    [
        (1, {}),
        (3, {"max_samples": 32}),
        (6, {"max_features": 0.5}),
        (6, {"max_features": 2, "bootstrap": True}),
        (4, {"max_samples": 0.3, "n_estimators": 7}),
        (5, {"contamination": 0.05, "max_samples": 1000}),
    ],
)
def test_random_forests_match_scikit_learn(d: int, params: dict[str, object]) -> None:
    X = _random_rows(d, 1200, d)
    forest = IsolationForest(random_state=d, **params).fit(X)
    scorer = IsolationForestScorer.from_sklearn(forest)
    rows = np.vstack([X[:300], _random_rows(99, 300, d)])
    rows[::17, 0] = np.nan  # NaN follows each split's missing_go_to_left
    rows[5::23, -1] = np.inf
    rows[7::29, -1] = -np.inf
    rows[11::31, 0] = 1e300  # overflows float32, as in scikit-learn
    expected = sklearn_scores(forest, rows)
    np.testing.assert_allclose(scorer.score_samples(rows), expected, rtol=0, atol=ATOL)
    for i in range(0, len(rows), 37):
        np.testing.assert_allclose(
            scorer.score_samples(rows[i : i + 1]), expected[i : i + 1], atol=ATOL
        )


@pytest.fixture(scope="module")
def small_forest() -> IsolationForest:
    return IsolationForest(n_estimators=10, max_samples=64, random_state=0).fit(
        _random_rows(7, 500, 3)
    )


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.just(3)),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_any_rows_match_scikit_learn(small_forest: IsolationForest, rows: np.ndarray) -> None:
    scorer = IsolationForestScorer.from_sklearn(small_forest)
    expected = sklearn_scores(small_forest, rows)
    np.testing.assert_allclose(scorer.score_samples(rows), expected, rtol=0, atol=ATOL)


def test_average_path_length_matches_scikit_learn() -> None:
    n = np.arange(0, 5000)
    np.testing.assert_allclose(average_path_length(n), _average_path_length(n), rtol=1e-15)


def test_a_forest_of_one_sample_scores_one_half() -> None:
    forest = IsolationForest(n_estimators=3, max_samples=1, random_state=0).fit([[0.0], [1.0]])
    scorer = IsolationForestScorer.from_sklearn(forest)
    rows = np.array([[0.5], [9.0]])
    np.testing.assert_array_equal(scorer.score_samples(rows), [0.5, 0.5])
    np.testing.assert_array_equal(scorer.score_samples(rows), -forest.score_samples(rows))


def test_payload_round_trip(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_iforest: IsolationForest,
    roundtrip: Callable[[Scorer], Scorer],
) -> None:
    X, _ = shuttle
    scorer = IsolationForestScorer.from_sklearn(shuttle_iforest)
    spec, arrays = scorer.to_payload()
    assert spec == {"kind": "isolation_forest", "n_features": 9, "max_samples": 256}
    assert sorted(arrays) == sorted(
        [
            "roots",
            "feature",
            "threshold",
            "missing_left",
            "children_left",
            "children_right",
            "value",
            "cover",
        ]
    )
    assert arrays["roots"].shape == (100,)
    np.testing.assert_array_equal(
        roundtrip(scorer).score_samples(X[:5000]), scorer.score_samples(X[:5000])
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_samples": 0}, "'max_samples' must be an integer >= 1; got 0"),
        ({"max_samples": 2.5}, "'max_samples' must be an integer >= 1; got 2.5"),
        ({"n_features": 1}, "split features must lie in [0, 1)"),
        ({"n_features": None}, "'n_features' must be an integer >= 1; got None"),
    ],
)
def test_bad_specs_are_bundle_errors(
    small_forest: IsolationForest, change: dict[str, object], message: str
) -> None:
    spec, arrays = IsolationForestScorer.from_sklearn(small_forest).to_payload()
    with pytest.raises(BundleError) as info:
        IsolationForestScorer.from_payload({**spec, **change}, arrays)
    assert message in str(info.value)


def test_only_fitted_isolation_forests_compile() -> None:
    with pytest.raises(ConfigError, match="expected a fitted IsolationForest; got IsolationForest"):
        IsolationForestScorer.from_sklearn(IsolationForest())
    with pytest.raises(ConfigError, match="expected a fitted IsolationForest; got list"):
        IsolationForestScorer.from_sklearn([])
