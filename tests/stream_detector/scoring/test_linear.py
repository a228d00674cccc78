"""LinearScorer against scikit-learn's LogisticRegression.predict_proba."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import make_pipeline as make_imb_pipeline
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from stream_detector.errors import BundleError, ConfigError, DataError
from stream_detector.scoring import LinearScorer, Scorer

ATOL = 1e-9  # well inside the 1e-6 the contract promises


def test_shuttle_every_row_matches_scikit_learn(
    shuttle: tuple[np.ndarray, np.ndarray], shuttle_linear: Pipeline
) -> None:
    X, y = shuttle
    scorer = LinearScorer.from_sklearn(shuttle_linear)
    scores = scorer.score_samples(X)
    np.testing.assert_allclose(scores, shuttle_linear.predict_proba(X)[:, 1], rtol=0, atol=ATOL)
    assert roc_auc_score(y, scores) > 0.8
    for i in range(0, len(X), 4999):
        np.testing.assert_allclose(scorer.score_samples(X[i : i + 1]), scores[i : i + 1], atol=ATOL)


def test_one_row_path_agrees_with_the_batch_path_on_every_shuttle_row(
    shuttle: tuple[np.ndarray, np.ndarray], shuttle_linear: Pipeline
) -> None:
    X, _ = shuttle
    scorer = LinearScorer.from_sklearn(shuttle_linear, logit_offset=-1.5)
    batch = scorer.score_samples(X)
    one = np.array([scorer.score_samples(X[i : i + 1])[0] for i in range(len(X))])
    np.testing.assert_allclose(one, batch, rtol=1e-12, atol=1e-300)
    assert np.array_equal(one >= 0.5, batch >= 0.5)
    # A view, a list or integers take the general path and give the same figures.
    np.testing.assert_allclose(scorer.score_samples(X[:1].tolist()), batch[:1], rtol=1e-12)
    np.testing.assert_allclose(
        scorer.score_samples(X[:1].astype(np.int64)), scorer.score_samples(X[:1].round())
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_row_path_refuses_non_finite_values_like_the_batch_path(
    shuttle_linear: Pipeline, bad: float
) -> None:
    scorer = LinearScorer.from_sklearn(shuttle_linear)
    row = np.full((1, scorer.n_features), 1.0)
    row[0, 3] = bad
    with pytest.raises(DataError, match="expected finite feature values; got NaN or infinity"):
        scorer.score_samples(row)
    with pytest.raises(DataError, match="expected finite feature values"):
        scorer.score_samples(np.vstack([row, row]))


def test_log_odds_overflowing_give_zero_or_one_in_both_paths_never_nan() -> None:
    scorer = LinearScorer(coef=[1.0, 1.0], intercept=0.0, scale=[1e-10, 1e-10])
    rows = np.array(
        [
            [1e300, 1.0],  # +inf
            [-1e300, 1.0],  # -inf
            [1e300, -1e300],  # inf - inf: undefined, flagged
            [1e308, 1e308],  # overflow within the sum
        ]
    )
    batch = scorer.score_samples(rows)  # no RuntimeWarning (the suite turns warnings into errors)
    assert batch.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert [scorer.score_samples(rows[i : i + 1])[0] for i in range(len(rows))] == batch.tolist()


@settings(max_examples=200, deadline=None)
@given(st.floats(-800, 800))
def test_one_row_sigmoid_matches_the_numpy_one(z: float) -> None:
    scorer = LinearScorer(coef=[1.0], intercept=0.0)
    one = scorer.score_samples(np.array([[z]]))[0]
    np.testing.assert_allclose(one, expit(z), rtol=1e-14, atol=1e-300)


def _data(seed: int, n: int = 500, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=rng.uniform(-50, 50, d), scale=rng.uniform(0.1, 20, d), size=(n, d))
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (z @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(int)
    return X, y


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(max_iter=5000),
        lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1)),
        lambda: make_pipeline(StandardScaler(with_mean=False), LogisticRegression()),
        lambda: make_pipeline(StandardScaler(with_std=False), LogisticRegression(max_iter=5000)),
        lambda: make_pipeline("passthrough", StandardScaler(), LogisticRegression()),
        lambda: make_imb_pipeline(
            StandardScaler(), RandomOverSampler(random_state=0), LogisticRegression()
        ),
        lambda: make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", fit_intercept=False)
        ),
    ],
)
def test_supported_models_match_scikit_learn(make: Callable[[], Any]) -> None:
    X, y = _data(1)
    model = make().fit(X, y)
    rows = np.vstack([X, _data(2)[0] * 3])
    expected = model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(
        LinearScorer.from_sklearn(model).score_samples(rows), expected, atol=ATOL
    )


@pytest.fixture(scope="module")
def model() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(*_data(3))


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.just(4)),
        elements=st.floats(-1e12, 1e12),
    )
)
def test_any_finite_rows_match_scikit_learn(model: Pipeline, rows: np.ndarray) -> None:
    expected = model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(
        LinearScorer.from_sklearn(model).score_samples(rows), expected, atol=ATOL
    )


def test_extreme_rows_give_zero_or_one_without_warnings(model: Pipeline) -> None:
    scores = LinearScorer.from_sklearn(model).score_samples(np.array([[1e300] * 4, [-1e300] * 4]))
    assert set(scores.tolist()) <= {0.0, 1.0}


def test_logit_offset_shifts_the_log_odds(model: Pipeline) -> None:
    X, _ = _data(4)
    scorer = LinearScorer.from_sklearn(model, logit_offset=np.log(0.01 / 0.99))
    expected = expit(model.decision_function(X) + np.log(0.01 / 0.99))
    np.testing.assert_allclose(scorer.score_samples(X), expected, rtol=0, atol=ATOL)


def test_payload_round_trip(model: Pipeline, roundtrip: Callable[[Scorer], Scorer]) -> None:
    scorer = LinearScorer.from_sklearn(model, logit_offset=0.5)
    spec, arrays = scorer.to_payload()
    assert spec == {
        "kind": "linear",
        "n_features": 4,
        "intercept": float(model[-1].intercept_[0]),
        "logit_offset": 0.5,
    }
    np.testing.assert_array_equal(arrays["mean"], model[0].mean_)
    np.testing.assert_array_equal(arrays["scale"], model[0].scale_)
    np.testing.assert_array_equal(arrays["coef"], model[-1].coef_[0])
    X, _ = _data(5)
    np.testing.assert_array_equal(roundtrip(scorer).score_samples(X), scorer.score_samples(X))


@pytest.mark.parametrize(
    ("spec_change", "array_change", "message"),
    [
        ({"n_features": 5}, {}, "scorer array 'coef' must hold 5 values; got 4"),
        ({"n_features": True}, {}, "'n_features' must be an integer >= 1; got True"),
        ({"intercept": float("nan")}, {}, "'intercept' must be a finite number; got nan"),
        ({}, {"scale": np.array([1.0, 0.0, 1.0, 1.0])}, "scale must be finite and positive"),
        ({}, {"coef": np.array([1.0, np.inf, 1.0, 1.0])}, "coef and mean must be finite"),
        ({}, {"mean": np.zeros((2, 2))}, "'mean' must be a 1-D float array"),
    ],
)
def test_bad_payloads_are_bundle_errors(
    model: Pipeline,
    spec_change: dict[str, object],
    array_change: dict[str, np.ndarray],
    message: str,
) -> None:
    spec, arrays = LinearScorer.from_sklearn(model).to_payload()
    with pytest.raises(BundleError) as info:
        LinearScorer.from_payload({**spec, **spec_change}, {**arrays, **array_change})
    assert message in str(info.value)


def test_unsupported_models_are_refused() -> None:
    X, y = _data(6)
    with pytest.raises(ConfigError, match=r"got steps \['MinMaxScaler', 'LogisticRegression'\]"):
        LinearScorer.from_sklearn(make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X, y))
    with pytest.raises(ConfigError, match="expected a fitted binary LogisticRegression"):
        LinearScorer.from_sklearn(LogisticRegression())
    three = LogisticRegression(max_iter=5000).fit(X, y + (X[:, 0] > np.median(X[:, 0])))
    with pytest.raises(ConfigError, match="expected a fitted binary LogisticRegression"):
        LinearScorer.from_sklearn(three)
    with pytest.raises(ConfigError, match="expected a fitted StandardScaler"):
        LinearScorer.from_sklearn(
            Pipeline([("s", StandardScaler()), ("m", LogisticRegression().fit(X, y))])
        )


def test_constructor_checks_its_arrays() -> None:
    with pytest.raises(ValueError, match="must be 1-D of one length >= 1"):
        LinearScorer(coef=[1.0, 2.0], intercept=0.0, mean=[0.0])
    with pytest.raises(ValueError, match="scale finite and positive"):
        LinearScorer(coef=[1.0], intercept=0.0, scale=[-1.0])
    with pytest.raises(ValueError, match="intercept and logit_offset must be finite"):
        LinearScorer(coef=[1.0], intercept=0.0, logit_offset=np.inf)
