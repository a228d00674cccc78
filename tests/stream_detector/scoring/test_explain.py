"""Occlusion reasons: exact on a linear model, equal to a loop oracle on trees, one call."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from stream_detector.errors import DataError
from stream_detector.scoring import (
    GradientBoostingScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
    top_reasons,
)
from stream_detector.scoring.base import Array

NAMES = ["amount", "hour", "distance"]
LINEAR = LinearScorer(coef=[1.0, -2.0, 0.5], intercept=-1.0)
REFERENCE = np.array([0.0, 0.0, 0.0])


def test_linear_contributions_by_hand() -> None:
    x = np.array([[2.0, -1.0, 4.0]])
    (reasons,) = top_reasons(LINEAR, x, REFERENCE, NAMES, top=3)
    full = expit(2.0 + 2.0 + 2.0 - 1.0)
    expected = [
        ("amount", 2.0, full - expit(2.0 + 2.0 - 1.0)),
        ("hour", -1.0, full - expit(2.0 + 2.0 - 1.0)),
        ("distance", 4.0, full - expit(2.0 + 2.0 - 1.0)),
    ]
    assert [(r["feature"], r["value"]) for r in reasons] == [(f, v) for f, v, _ in expected]
    np.testing.assert_allclose([r["contribution"] for r in reasons], [c for *_, c in expected])


def test_sorted_descending_limited_to_top_and_only_positive() -> None:
    rows = np.array(
        [
            [3.0, -0.5, 1.0],  # all raise the score: amount, then hour, then distance
            [0.0, 1.0, 2.0],  # amount is at its reference; hour lowers the score
            [-1.0, 2.0, -2.0],  # nothing raises it
        ]
    )
    reasons = top_reasons(LINEAR, rows, REFERENCE, NAMES, top=2)
    assert [[r["feature"] for r in row] for row in reasons] == [
        ["amount", "hour"],
        ["distance"],
        [],
    ]
    assert reasons[0][0]["contribution"] > reasons[0][1]["contribution"] > 0


def _loop_oracle(scorer: Scorer, X: Array, reference: Array) -> Array:
    out = np.empty(X.shape)
    for i, x in enumerate(X):
        base = scorer.score_samples(x[None, :])[0]
        for j in range(X.shape[1]):
            z = x.copy()
            z[j] = reference[j]
            out[i, j] = base - scorer.score_samples(z[None, :])[0]
    return out


@pytest.mark.parametrize("kind", ["gbdt", "isolation_forest"])
def test_trees_match_a_loop_oracle(shuttle: tuple[np.ndarray, np.ndarray], kind: str) -> None:
    X, y = shuttle
    fit_rows = X[::20]
    scorer: Scorer
    if kind == "gbdt":
        model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(fit_rows, y[::20])
        scorer = GradientBoostingScorer.from_sklearn(model)
    else:
        scorer = IsolationForestScorer.from_sklearn(
            IsolationForest(n_estimators=30, random_state=0).fit(fit_rows)
        )
    reference = np.median(fit_rows, axis=0)
    rows = X[y == 1][:40]
    names = [f"f{i}" for i in range(1, 10)]
    reasons = top_reasons(scorer, rows, reference, names, top=9)
    oracle = _loop_oracle(scorer, rows, reference)
    for row_reasons, contributions, row in zip(reasons, oracle, rows, strict=True):
        positive = np.flatnonzero(contributions > 0)
        expected = positive[np.argsort(-contributions[positive], kind="stable")]
        assert [r["feature"] for r in row_reasons] == [names[j] for j in expected]
        np.testing.assert_allclose(
            [r["contribution"] for r in row_reasons], contributions[expected], atol=1e-12
        )
        assert [r["value"] for r in row_reasons] == [float(row[j]) for j in expected]
    assert sum(len(r) for r in reasons) > 0


class CountingScorer(LinearScorer):
    calls: int = 0

    def score_samples(self, X: npt.ArrayLike) -> Array:
        type(self).calls += 1
        return super().score_samples(X)


def test_one_scorer_call_for_the_whole_batch() -> None:
    scorer = CountingScorer(coef=[1.0, -2.0, 0.5], intercept=-1.0)
    rows = np.random.default_rng(0).normal(size=(50, 3))
    top_reasons(scorer, rows, REFERENCE, NAMES)
    assert CountingScorer.calls == 1


def test_reasons_are_json_ready() -> None:
    reasons = top_reasons(LINEAR, np.array([[2.0, -1.0, 4.0]]), REFERENCE, NAMES)
    again = json.loads(json.dumps(reasons))
    assert again == reasons
    assert {type(v) for r in reasons[0] for v in r.values()} == {str, float}


def test_an_empty_batch_has_no_reasons() -> None:
    assert top_reasons(LINEAR, np.empty((0, 3)), REFERENCE, NAMES) == []


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (([1.0, 2.0, 3.0], REFERENCE, NAMES, 3), DataError, "got a 1-D array"),
        (([[1.0, 2.0]], REFERENCE, NAMES, 3), DataError, "shape (n_rows, 3)"),
        (([[1.0, 2.0, 3.0]], REFERENCE[:2], NAMES, 3), DataError, "got shape (2,) and 3 names"),
        (([[1.0, 2.0, 3.0]], REFERENCE, NAMES[:2], 3), DataError, "got shape (3,) and 2 names"),
        (([[1.0, 2.0, 3.0]], REFERENCE, NAMES, 0), ValueError, "top must be an integer >= 1"),
    ],
)
def test_mismatched_inputs_are_refused(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        top_reasons(LINEAR, *args)  # type: ignore[arg-type]
    assert message in str(info.value)
