"""Attributions of every scorer kind add up to its output minus its baseline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from offline.calibration import fit_calibrator
from stream_detector.errors import BundleError, DataError
from stream_detector.scoring import (
    BlendScorer,
    CalibratedScorer,
    GradientBoostingScorer,
    HybridScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
)
from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.link import sigmoid

Data = tuple[np.ndarray, np.ndarray]


def build(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    hgb: HistGradientBoostingClassifier,
    iforest: IsolationForest,
    linear: Pipeline,
) -> Scorer:
    lin = LinearScorer.from_sklearn(linear, logit_offset=-0.7)
    gbdt = GradientBoostingScorer.from_sklearn(hgb, logit_offset=0.3)
    forest = IsolationForestScorer.from_sklearn(iforest)
    if kind == "linear":
        return lin
    if kind == "gbdt":
        return gbdt
    if kind == "isolation_forest":
        return forest
    if kind in ("hybrid_linear", "hybrid_gbdt"):
        classifier = lin if kind == "hybrid_linear" else gbdt
        Z = HybridScorer.stack_features(classifier, forest, X[::50])
        stacker = LogisticRegression().fit(Z, y[::50])
        return HybridScorer.from_stacker(classifier, forest, stacker)
    Z = HybridScorer.stack_features(gbdt, forest, X[::50])
    hybrid = HybridScorer.from_stacker(gbdt, forest, LogisticRegression().fit(Z, y[::50]))
    blend = BlendScorer([lin, gbdt, hybrid], weights=[0.2, 0.5, 0.3])
    if kind == "blend":
        return blend
    assert kind.startswith("calibrated")
    scores = blend.score_samples(X[1::50])
    method = "platt" if kind == "calibrated_platt" else "isotonic"
    calibrator, _ = fit_calibrator(scores, y[1::50], method=method)
    return CalibratedScorer(blend, calibrator)


KINDS = [
    "linear",
    "gbdt",
    "isolation_forest",
    "hybrid_linear",
    "hybrid_gbdt",
    "blend",
    "calibrated_platt",
    "calibrated_isotonic",
]


@pytest.fixture(scope="module")
def scorers(
    shuttle: Data,
    shuttle_hgb: HistGradientBoostingClassifier,
    shuttle_iforest: IsolationForest,
    shuttle_linear: Pipeline,
) -> dict[str, Scorer]:
    X, y = shuttle
    return {k: build(k, X, y, shuttle_hgb, shuttle_iforest, shuttle_linear) for k in KINDS}


@pytest.fixture(scope="module")
def rows(shuttle: Data) -> np.ndarray:
    X, y = shuttle
    picked = np.concatenate([X[y == 1][:100], X[y == 0][:100]])
    picked[::7, 3] = np.nan  # tree scorers route missing values; linear ones refuse them
    return picked


@pytest.mark.parametrize("kind", KINDS)
def test_contributions_add_up_to_the_score_and_its_log_odds(
    scorers: dict[str, Scorer],
    rows: np.ndarray,
    shuttle: Data,
    kind: str,
    roundtrip: Callable[[Scorer], Scorer],
) -> None:
    scorer = roundtrip(scorers[kind])
    X = rows if scorer.allow_nan else rows[~np.isnan(rows).any(axis=1)]
    reference = np.median(shuttle[0], axis=0)
    attribution = scorer.attribute(X, reference)
    total = attribution.phi.sum(axis=1)
    np.testing.assert_allclose(total, attribution.output - attribution.base, rtol=0, atol=1e-9)
    scores = attribution.scores()
    np.testing.assert_allclose(scores.output, scorer.score_samples(X), rtol=0, atol=1e-12)
    assert np.ptp(scores.base) == 0.0  # one baseline for every row
    np.testing.assert_allclose(
        scores.phi.sum(axis=1), scorer.score_samples(X) - scores.base, rtol=0, atol=1e-9
    )
    logits = attribution.logits()
    np.testing.assert_allclose(
        logits.phi.sum(axis=1), logits.output - logits.base, rtol=0, atol=1e-9
    )
    # Carrying through a monotone map keeps each row's signs and proportions.
    same = np.sign(scores.phi) == np.sign(attribution.phi)
    assert same[np.abs(attribution.phi) > 1e-9].all()


def test_linear_contributions_are_exact() -> None:
    scorer = LinearScorer(coef=[1.0, -2.0], intercept=0.5, mean=[1.0, 0.0], scale=[2.0, 4.0])
    a = scorer.attribute(np.array([[3.0, 2.0]]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(a.phi, [[1.0 * 2.0 / 2.0, -2.0 * 1.0 / 4.0]])
    np.testing.assert_allclose(a.base, [0.5 + (-2.0) * 1.0 / 4.0])
    np.testing.assert_allclose(a.output, [0.5 + 1.0 - 1.0])


def test_gbdt_baseline_is_the_expected_log_odds_of_the_training_data(
    shuttle: Data, shuttle_hgb: HistGradientBoostingClassifier
) -> None:
    X, _ = shuttle
    scorer = GradientBoostingScorer.from_sklearn(shuttle_hgb)
    a = scorer.attribute(X[:5], np.zeros(9))
    train = X[::2]
    raw = shuttle_hgb.decision_function(train)
    # Per tree the baseline weights each leaf by its training count; summed over the trees
    # that is the mean raw output over the rows the trees were grown on.
    assert a.base[0] == pytest.approx(raw.mean(), abs=0.05 * np.std(raw))


def test_isolation_forest_baseline_is_the_training_path_length(
    shuttle: Data, shuttle_iforest: IsolationForest
) -> None:
    scorer = IsolationForestScorer.from_sklearn(shuttle_iforest)
    a = scorer.attribute(shuttle[0][:3], np.zeros(9))
    assert a.space == "log2"
    assert 0.0 < float(np.exp2(a.base[0])) < 0.6  # a typical row's score


def test_scorers_without_covers_cannot_attribute(
    shuttle_hgb: HistGradientBoostingClassifier,
) -> None:
    scorer = GradientBoostingScorer.from_sklearn(shuttle_hgb)
    spec, arrays = scorer.to_payload()
    del arrays["cover"]
    old = GradientBoostingScorer.from_payload(spec, arrays)
    assert scorer.can_attribute
    assert not old.can_attribute
    with pytest.raises(BundleError, match="without node covers"):
        old.attribute(np.zeros((1, 9)), np.zeros(9))


def test_reference_must_match() -> None:
    scorer = LinearScorer(coef=[1.0, 2.0], intercept=0.0)
    with pytest.raises(DataError, match="reference of 2 finite values"):
        scorer.attribute(np.zeros((1, 2)), np.zeros(3))


def test_through_a_flat_total_uses_the_slope() -> None:
    a = Attribution(np.array([[1.0, -1.0]]), np.array([0.0]), np.array([0.0]), "logit")
    s = a.scores()
    np.testing.assert_allclose(s.phi, [[0.25, -0.25]], atol=1e-9)
    assert s.output[0] == s.base[0] == 0.5
    np.testing.assert_allclose(sigmoid(np.array([0.0])), s.output)
