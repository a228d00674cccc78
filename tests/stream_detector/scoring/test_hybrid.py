"""HybridScorer: the stacking formula against scikit-learn's parts, and its nested payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from stream_detector.scoring import (
    GradientBoostingScorer,
    HybridScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
)

from .conftest import refusal

ATOL = 1e-9


def test_eps_is_the_documented_constant() -> None:
    assert HybridScorer.EPS == 1e-6


@pytest.fixture(scope="module")
def parts(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_hgb: HistGradientBoostingClassifier,
    shuttle_iforest: IsolationForest,
) -> tuple[Scorer, Scorer]:
    return (
        GradientBoostingScorer.from_sklearn(shuttle_hgb, logit_offset=-0.5),
        IsolationForestScorer.from_sklearn(shuttle_iforest),
    )


def test_shuttle_matches_the_formula_on_scikit_learn_outputs(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_hgb: HistGradientBoostingClassifier,
    shuttle_iforest: IsolationForest,
    parts: tuple[Scorer, Scorer],
) -> None:
    X, _ = shuttle
    hybrid = HybridScorer(classifier=parts[0], anomaly=parts[1], coef=(0.7, 3.0), intercept=-2.0)
    p = expit(shuttle_hgb.decision_function(X) - 0.5)
    expected = expit(
        0.7 * logit(np.clip(p, 1e-6, 1 - 1e-6)) + 3.0 * -shuttle_iforest.score_samples(X) - 2.0
    )
    np.testing.assert_allclose(hybrid.score_samples(X), expected, rtol=0, atol=ATOL)


def test_from_stacker_reproduces_the_stacker(
    shuttle: tuple[np.ndarray, np.ndarray], parts: tuple[Scorer, Scorer]
) -> None:
    X, y = shuttle
    Z = HybridScorer.stack_features(*parts, X[::3])
    stacker = LogisticRegression().fit(Z, y[::3])
    hybrid = HybridScorer.from_stacker(*parts, stacker)
    np.testing.assert_allclose(
        hybrid.score_samples(X[::3]), stacker.predict_proba(Z)[:, 1], rtol=0, atol=ATOL
    )
    assert hybrid.coef == tuple(stacker.coef_[0])


def test_nested_payload_round_trip(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_linear: Pipeline,
    parts: tuple[Scorer, Scorer],
    roundtrip: Callable[[Scorer], Scorer],
) -> None:
    X, _ = shuttle
    linear = LinearScorer.from_sklearn(shuttle_linear)
    hybrid = HybridScorer(classifier=linear, anomaly=parts[1], coef=(1.0, 2.0), intercept=-1.0)
    spec, arrays = hybrid.to_payload()
    assert spec["kind"] == "hybrid"
    assert spec["classifier"]["kind"] == "linear"
    assert spec["anomaly"]["kind"] == "isolation_forest"
    assert spec["coef"] == [1.0, 2.0]
    assert {"classifier.coef", "classifier.mean", "anomaly.threshold"} <= set(arrays)
    assert all(name.startswith(("classifier.", "anomaly.")) for name in arrays)
    again = roundtrip(hybrid)
    assert isinstance(again, HybridScorer)
    assert isinstance(again.classifier, LinearScorer)
    np.testing.assert_array_equal(again.score_samples(X[:2000]), hybrid.score_samples(X[:2000]))


def _payload(parts: tuple[Scorer, Scorer]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return HybridScorer(
        classifier=parts[0], anomaly=parts[1], coef=(1, 1), intercept=0
    ).to_payload()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s, a: a.pop("classifier.value"), "scorer array 'value' is missing"),
        (lambda s, a: a.pop("anomaly.roots"), "scorer array 'roots' is missing"),
        (lambda s, a: a.update({"other.coef": np.zeros(1)}), "does not use: ['other.coef']"),
        (lambda s, a: s.update({"coef": [1.0]}), "'coef' must be a list of 2 numbers"),
        (lambda s, a: s.update({"coef": [1.0, None]}), "'coef[1]' must be a finite number"),
        (lambda s, a: s.update({"eps": 0.5}), "'eps' must be in (0, 0.5); got 0.5"),
        (lambda s, a: s.update({"n_features": 4}), "hybrid parts must read the spec's 4 features"),
        (lambda s, a: s.pop("anomaly"), "'anomaly' must be a JSON object; got NoneType"),
        (lambda s, a: s["classifier"].update({"kind": "tree"}), "unknown scorer kind 'tree'"),
    ],
)
def test_bad_nested_payloads_are_bundle_errors(
    parts: tuple[Scorer, Scorer],
    edit: Callable[[dict[str, Any], dict[str, Any]], Any],
    message: str,
) -> None:
    assert message in refusal(_payload(parts), edit)


def test_constructor_checks_its_parts() -> None:
    two = LinearScorer(coef=[1.0, 2.0], intercept=0.0)
    three = LinearScorer(coef=[1.0, 2.0, 3.0], intercept=0.0)
    with pytest.raises(ValueError, match="must read the same features; got 2 and 3"):
        HybridScorer(classifier=two, anomaly=three, coef=(1, 1), intercept=0)
    with pytest.raises(ValueError, match="coef and intercept must be finite"):
        HybridScorer(classifier=two, anomaly=two, coef=(1, np.nan), intercept=0)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 0.5\)"):
        HybridScorer(classifier=two, anomaly=two, coef=(1, 1), intercept=0, eps=0.0)


def test_clipping_bounds_the_classifier_log_odds() -> None:
    certain = LinearScorer(coef=[100.0], intercept=0.0)
    anomaly = LinearScorer(coef=[0.0], intercept=0.0)  # always 0.5
    hybrid = HybridScorer(classifier=certain, anomaly=anomaly, coef=(1.0, 0.0), intercept=0.0)
    np.testing.assert_allclose(hybrid.score_samples(np.array([[-10.0], [10.0]])), [1e-6, 1 - 1e-6])
