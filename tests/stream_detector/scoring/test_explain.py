"""Reasons: additive contributions ranked by size; occlusion for scorers without covers."""

from __future__ import annotations

import json
from collections.abc import Callable

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
from stream_detector.scoring.explain import occlusion_reasons

NAMES = ["amount", "hour", "distance"]
LINEAR = LinearScorer(coef=[1.0, -2.0, 0.5], intercept=-1.0)
REFERENCE = np.array([0.0, 0.0, 0.0])


def test_occlusion_linear_contributions_by_hand() -> None:
    x = np.array([[2.0, -1.0, 4.0]])
    (reasons,) = occlusion_reasons(LINEAR, x, REFERENCE, NAMES, top=3)
    full = expit(2.0 + 2.0 + 2.0 - 1.0)
    expected = [
        ("amount", 2.0, full - expit(2.0 + 2.0 - 1.0)),
        ("hour", -1.0, full - expit(2.0 + 2.0 - 1.0)),
        ("distance", 4.0, full - expit(2.0 + 2.0 - 1.0)),
    ]
    assert [(r["feature"], r["value"]) for r in reasons] == [(f, v) for f, v, _ in expected]
    np.testing.assert_allclose([r["contribution"] for r in reasons], [c for *_, c in expected])


def test_occlusion_sorted_descending_limited_to_top_and_only_positive() -> None:
    rows = np.array(
        [
            [3.0, -0.5, 1.0],  # all raise the score: amount, then hour, then distance
            [0.0, 1.0, 2.0],  # amount is at its reference; hour lowers the score
            [-1.0, 2.0, -2.0],  # nothing raises it
        ]
    )
    reasons = occlusion_reasons(LINEAR, rows, REFERENCE, NAMES, top=2)
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
def test_occlusion_on_trees_matches_a_loop_oracle(
    shuttle: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
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
    reasons = occlusion_reasons(scorer, rows, reference, names, top=9)
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


Explain = Callable[..., list[list[dict[str, object]]]]


class CountingScorer(LinearScorer):
    calls: int = 0

    def score_samples(self, X: npt.ArrayLike) -> Array:
        type(self).calls += 1
        return super().score_samples(X)


def test_occlusion_makes_one_scorer_call_for_the_whole_batch() -> None:
    scorer = CountingScorer(coef=[1.0, -2.0, 0.5], intercept=-1.0)
    rows = np.random.default_rng(0).normal(size=(50, 3))
    occlusion_reasons(scorer, rows, REFERENCE, NAMES)
    assert CountingScorer.calls == 1


@pytest.mark.parametrize("explain", [top_reasons, occlusion_reasons])
def test_reasons_are_json_ready(explain: Explain) -> None:
    reasons = explain(LINEAR, np.array([[2.0, -1.0, 4.0]]), REFERENCE, NAMES)
    again = json.loads(json.dumps(reasons))
    assert again == reasons
    assert {type(v) for r in reasons[0] for v in r.values()} == {str, float}


@pytest.mark.parametrize("explain", [top_reasons, occlusion_reasons])
def test_an_empty_batch_has_no_reasons(explain: Explain) -> None:
    assert explain(LINEAR, np.empty((0, 3)), REFERENCE, NAMES) == []


def test_linear_reasons_are_exact_and_ranked_by_size_whatever_their_sign() -> None:
    x = np.array([[2.0, 1.5, 4.0]])
    (reasons,) = top_reasons(LINEAR, x, REFERENCE, NAMES, top=3)
    assert [(r["feature"], r["value"]) for r in reasons] == [
        ("hour", 1.5),
        ("amount", 2.0),
        ("distance", 4.0),
    ]
    np.testing.assert_allclose([r["contribution_logit"] for r in reasons], [-3.0, 2.0, 2.0])
    total = sum(r["contribution"] for r in reasons)
    assert total == pytest.approx(expit(2.0 - 3.0 + 2.0 - 1.0) - expit(-1.0), abs=1e-12)


def test_a_feature_at_its_reference_is_no_reason() -> None:
    (reasons,) = top_reasons(LINEAR, np.array([[0.0, 1.0, 0.0]]), REFERENCE, NAMES)
    assert [r["feature"] for r in reasons] == ["hour"]


def test_tree_reasons_add_up_and_differ_between_features(
    shuttle: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = shuttle
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X[::10], y[::10])
    scorer = GradientBoostingScorer.from_sklearn(model)
    rows = X[y == 1][:30]
    reference = np.median(X, axis=0)
    names = [f"f{i}" for i in range(1, 10)]
    reasons = top_reasons(scorer, rows, reference, names, top=9)
    attribution = scorer.attribute(rows, reference).scores()
    for row_reasons, score, base in zip(reasons, attribution.output, attribution.base, strict=True):
        contributions = [r["contribution"] for r in row_reasons]
        assert sum(contributions) == pytest.approx(score - base, abs=1e-9)
        assert contributions == sorted(contributions, key=abs, reverse=True)
        # Not the occlusion failure mode: reasons that each carry the whole score.
        large = [round(c, 6) for c in contributions if abs(c) > 1e-4]
        assert len(set(large)) == len(large) >= 1


def test_scorers_without_covers_fall_back_to_occlusion(
    shuttle: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = shuttle
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X[::20], y[::20])
    spec, arrays = GradientBoostingScorer.from_sklearn(model).to_payload()
    del arrays["cover"]
    old = GradientBoostingScorer.from_payload(spec, arrays)
    rows, reference = X[y == 1][:5], np.median(X, axis=0)
    names = [f"f{i}" for i in range(1, 10)]
    assert top_reasons(old, rows, reference, names) == occlusion_reasons(
        old, rows, reference, names
    )


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
@pytest.mark.parametrize("explain", [top_reasons, occlusion_reasons])
def test_mismatched_inputs_are_refused(
    args: tuple[object, ...], error: type[Exception], message: str, explain: Explain
) -> None:
    with pytest.raises(error) as info:
        explain(LINEAR, *args)
    assert message in str(info.value)
