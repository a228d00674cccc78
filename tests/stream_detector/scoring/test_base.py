"""The scorer contract, checked for every kind, and the payload dispatch."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stream_detector.errors import BundleError, DataError
from stream_detector.scoring import (
    GradientBoostingScorer,
    HybridScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
    check_rows,
    scorer_from_payload,
)

X, Y = make_classification(n_samples=400, n_features=4, weights=[0.8], random_state=3)


def _linear() -> Scorer:
    return LinearScorer.from_sklearn(
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    )


def _forest() -> Scorer:
    return IsolationForestScorer.from_sklearn(
        IsolationForest(n_estimators=15, random_state=0).fit(X)
    )


def _gbdt() -> Scorer:
    return GradientBoostingScorer.from_sklearn(
        HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, Y)
    )


def _hybrid() -> Scorer:
    return HybridScorer(classifier=_gbdt(), anomaly=_forest(), coef=(0.8, 2.0), intercept=-1.5)


FACTORIES: dict[str, Callable[[], Scorer]] = {
    "linear": _linear,
    "isolation_forest": _forest,
    "gbdt": _gbdt,
    "hybrid": _hybrid,
}


@pytest.fixture(params=sorted(FACTORIES), scope="module")
def scorer(request: pytest.FixtureRequest) -> Scorer:
    return FACTORIES[request.param]()


def test_scores_are_probabilities_of_one_row_each(scorer: Scorer) -> None:
    scores = scorer.score_samples(X)
    assert scores.dtype == np.float64
    assert scores.shape == (len(X),)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert len(np.unique(scores)) > 10


def test_higher_scores_for_the_rare_class(scorer: Scorer) -> None:
    scores = scorer.score_samples(X)
    assert scores[Y == 1].mean() > scores[Y == 0].mean()


def test_each_row_scores_the_same_alone_or_in_a_batch(scorer: Scorer) -> None:
    alone = np.array([scorer.score_samples(X[i : i + 1])[0] for i in range(0, len(X), 7)])
    np.testing.assert_allclose(alone, scorer.score_samples(X)[::7], rtol=0, atol=1e-12)


def test_an_empty_batch_gives_no_scores(scorer: Scorer) -> None:
    assert scorer.score_samples(np.empty((0, 4))).shape == (0,)


def test_integer_rows_are_read_as_floats(scorer: Scorer) -> None:
    rows = np.round(X[:5] * 10).astype(np.int64)
    np.testing.assert_array_equal(
        scorer.score_samples(rows), scorer.score_samples(rows.astype(np.float64))
    )


def test_payload_round_trip_gives_identical_scores(
    scorer: Scorer, roundtrip: Callable[[Scorer], Scorer]
) -> None:
    again = roundtrip(scorer)
    assert type(again) is type(scorer)
    assert again.kind == scorer.kind
    np.testing.assert_array_equal(again.score_samples(X), scorer.score_samples(X))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (X[0], "got a 1-D array of shape (4,) (a single row is X.reshape(1, -1))"),
        (X[:, :3], "expected a 2-D array of shape (n_rows, 4); got a 2-D array of shape (400, 3)"),
        (X[None, :2], "got a 3-D array of shape (1, 2, 4)"),
        (np.array([["1", "2", "3", "4"]]), "expected an array of real numbers; got dtype <U1"),
        (np.ones((1, 4), dtype=bool), "expected an array of real numbers; got dtype bool"),
    ],
)
def test_malformed_rows_are_refused(scorer: Scorer, rows: np.ndarray, message: str) -> None:
    with pytest.raises(DataError) as info:
        scorer.score_samples(rows)
    assert message in str(info.value)


def test_non_finite_rows_are_refused_only_where_scikit_learn_refuses_them(scorer: Scorer) -> None:
    rows = X[:3].copy()
    rows[1, 2] = np.nan
    # LogisticRegression refuses NaN; the trees route it (this hybrid stacks two tree models).
    assert scorer.allow_nan is (scorer.kind != "linear")
    if scorer.kind == "linear":
        with pytest.raises(DataError, match="expected finite feature values"):
            scorer.score_samples(rows)
    else:
        assert np.isfinite(scorer.score_samples(rows)).all()


@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
    )
)
def test_check_rows_accepts_exactly_real_matrices_of_the_right_width(rows: np.ndarray) -> None:
    well_formed = rows.ndim == 2 and rows.shape[1] == 4
    finite = bool(np.isfinite(rows).all())
    if well_formed and finite:
        checked = check_rows(rows, 4)
        assert checked.dtype == np.float64
        np.testing.assert_array_equal(checked, rows.astype(np.float64))
    else:
        with pytest.raises(DataError):
            check_rows(rows, 4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "forest"}, "unknown scorer kind 'forest'"),
        ({}, "unknown scorer kind None"),
        ({"kind": 3}, "unknown scorer kind 3"),
        (["linear"], "scorer spec must be a JSON object; got list"),
    ],
)
def test_unknown_kinds_are_bundle_errors(spec: object, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        scorer_from_payload(spec, {})  # type: ignore[arg-type]


def test_arrays_the_scorer_does_not_use_are_refused() -> None:
    spec, arrays = _linear().to_payload()
    with pytest.raises(BundleError, match=r"arrays it does not use: \['extra'\]"):
        scorer_from_payload(spec, {**arrays, "extra": np.zeros(2)})


def test_a_spec_of_another_kind_is_refused_by_a_class() -> None:
    spec, arrays = _linear().to_payload()
    with pytest.raises(BundleError, match="LinearScorer needs a spec of kind 'linear'; got 'gbdt'"):
        LinearScorer.from_payload({**spec, "kind": "gbdt"}, arrays)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=5,
)
PAYLOADS = {kind: make().to_payload() for kind, make in FACTORIES.items()}


def _fields(spec: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in spec.items():
        paths.append((*path, key))
        if isinstance(value, dict):
            paths += _fields(value, (*path, key))
    return paths


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(FACTORIES)), value=JSON_VALUES)
def test_any_spec_field_value_is_refused_or_scores(
    data: st.DataObject, kind: str, value: Any
) -> None:
    """Outside input: whatever a spec field holds, loading raises BundleError or works."""
    spec, arrays = PAYLOADS[kind]
    spec = copy.deepcopy(spec)
    path = data.draw(st.sampled_from(_fields(spec)))
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        scorer = scorer_from_payload(spec, arrays)
    except BundleError:
        return
    if scorer.n_features != X.shape[1]:  # a wider scorer whose trees use the first columns
        assert path[-1] == "n_features"
        assert scorer.n_features == value
        return
    scores = scorer.score_samples(X[:20])
    assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("kind", ["gbdt", "isolation_forest"])
def test_tree_payloads_may_declare_more_features_than_their_splits_use(kind: str) -> None:
    spec, arrays = PAYLOADS[kind]
    wide = scorer_from_payload({**spec, "n_features": 6}, arrays)
    rows = np.column_stack([X[:20], np.full((20, 2), 123.0)])
    np.testing.assert_array_equal(
        wide.score_samples(rows), scorer_from_payload(spec, arrays).score_samples(X[:20])
    )
