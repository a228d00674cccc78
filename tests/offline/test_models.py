"""Contract tests over every estimator kind x technique x classifier model.

Each valid combination (and the blend) fits, compiles to a run-time scorer that reproduces
scikit-learn's scores, round-trips through the bundle with identical scores, is deterministic
with a seed, and ranks a held-out fixture well above chance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from offline.config import MODELS, SCORERS, TECHNIQUES, TrainSettings
from offline.models import (
    ESTIMATORS,
    AnomalyEstimator,
    BlendEstimator,
    ClassifierEstimator,
    FraudEstimator,
    HybridEstimator,
    make_estimator,
)
from stream_detector.bundle import load_bundle, write_bundle
from stream_detector.errors import ConfigError

FEATURES = ["amount", "hour", "distance", "velocity"]

# Every technique with every scorer; the hybrid's classifier model is varied on two techniques
# only (each model meets every technique in the classifier rows already). "blend" is the blend
# of a logistic classifier and a gradient-boosting hybrid.
COMBINATIONS = [
    *[("classifier", m, t) for m in MODELS for t in TECHNIQUES],
    *[("hybrid", "logistic", t) for t in TECHNIQUES],
    ("hybrid", "hgb", "class_weight"),
    ("hybrid", "hgb", "smote"),
    ("anomaly", "logistic", "none"),
    ("blend", "logistic+hgb", "smote+class_weight"),
]


def build(scorer: Any, model: Any, technique: Any, settings: TrainSettings) -> FraudEstimator:
    """The estimator of one combination, seeded."""
    if scorer == "blend":
        members = [
            ClassifierEstimator(
                model="logistic", technique="smote", settings=settings, random_state=7
            ),
            HybridEstimator(
                model="hgb", technique="class_weight", settings=settings, random_state=7
            ),
        ]
        return BlendEstimator(members=members)
    return make_estimator(
        scorer, model=model, technique=technique, settings=settings, random_state=7
    )


def test_every_kind_is_covered() -> None:
    assert tuple(ESTIMATORS) == SCORERS
    assert all(cls.kind == kind for kind, cls in ESTIMATORS.items())
    assert {c[0] for c in COMBINATIONS} == {*SCORERS, BlendEstimator.kind}


@pytest.fixture(scope="module")
def split(
    make_data: Callable[..., pd.DataFrame],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train = make_data(400, seed=1)
    test = make_data(400, seed=2)
    return (
        train[FEATURES].to_numpy(float),
        train["is_fraud"].to_numpy(),
        test[FEATURES].to_numpy(float),
        test["is_fraud"].to_numpy(),
    )


@pytest.fixture(scope="module")
def settings(make_settings: Callable[..., TrainSettings]) -> TrainSettings:
    return make_settings()


def compiles_and_round_trips(
    det: FraudEstimator,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    technique: str,
    scorer: str,
    tmp_path: Path,
) -> None:
    """The compiled scorer reproduces scikit-learn's scores and round-trips through the
    bundle with identical scores."""
    compiled = det.to_scorer()
    np.testing.assert_allclose(
        compiled.score_samples(X_test), det.score_samples(X_test), rtol=0, atol=1e-9
    )
    write_bundle(
        tmp_path / "model",
        scorer=compiled,
        features=FEATURES,
        label="is_fraud",
        technique=technique,
        scorer_name=scorer,
        threshold=0.5,
        threshold_policy="fixed:0.5",
        class_prior_train=float(y.mean()),
        metrics={"pr_auc": 0.5},
        reference=np.median(X, axis=0),
    )
    bundle = load_bundle(tmp_path / "model")
    np.testing.assert_array_equal(bundle.score_samples(X_test), compiled.score_samples(X_test))


@pytest.mark.parametrize(("scorer", "model", "technique"), COMBINATIONS)
def test_contract(
    scorer: Any,
    model: Any,
    technique: Any,
    split: tuple[np.ndarray, ...],
    settings: TrainSettings,
    tmp_path: Path,
) -> None:
    X, y, X_test, y_test = split

    def fitted() -> FraudEstimator:
        return build(scorer, model, technique, settings).fit(X, y)

    det = fitted()
    assert det.kind == scorer
    scores = det.score_samples(X_test)
    assert scores.shape == (len(X_test),)
    assert np.all((scores >= 0) & (scores <= 1))
    # Ranks a held-out set well above chance.
    assert roc_auc_score(y_test, scores) > 0.8
    # Deterministic with a seed.
    np.testing.assert_array_equal(fitted().score_samples(X_test), scores)
    compiles_and_round_trips(det, X, y, X_test, technique, scorer, tmp_path)


@pytest.mark.parametrize("technique", [t for t in TECHNIQUES if t != "none"])
def test_anomaly_refuses_label_techniques(technique: Any) -> None:
    with pytest.raises(ConfigError, match=f"technique '{technique}' does not apply to the anomaly"):
        make_estimator("anomaly", technique=technique)


def test_unknown_scorer_and_model_are_config_errors() -> None:
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.array([0, 1] * 10)
    with pytest.raises(
        ConfigError, match="scorer must be one of 'classifier', 'anomaly', 'hybrid'"
    ):
        make_estimator("svm")
    with pytest.raises(ConfigError, match="model must be 'logistic' or 'hgb'; got 'svm'"):
        ClassifierEstimator(model="svm").fit(X, y)  # type: ignore[arg-type]


def test_logistic_none_equals_sklearn(split: tuple[np.ndarray, ...]) -> None:
    """Oracle: without a technique the classifier is exactly scaler + LogisticRegression."""
    X, y, X_test, _ = split
    det = ClassifierEstimator(technique="none", random_state=0).fit(X, y)
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(max_iter=1000, random_state=0).fit(scaler.transform(X), y)
    assert det.logit_offset_ == 0.0
    np.testing.assert_allclose(
        det.score_samples(X_test), lr.predict_proba(scaler.transform(X_test))[:, 1], atol=1e-12
    )


def test_prior_correction_restores_the_true_prior() -> None:
    """Balanced to 50/50, raw probabilities are inflated; the offset brings them back.

    The fixture follows a known logistic model with a 3% positive rate, so the mean corrected
    probability must match the positive rate of fresh data from the same model.
    """
    rng = np.random.default_rng(11)
    X = rng.normal(size=(20_000, 2))
    p_true = expit(-4.2 + 1.2 * X[:, 0] - 0.8 * X[:, 1])
    y = (rng.random(20_000) < p_true).astype(int)
    train, test = slice(0, 10_000), slice(10_000, None)
    det = ClassifierEstimator(technique="random_under", random_state=0).fit(X[train], y[train])
    assert det.fitted_prior_ == 0.5
    prior = y[train].mean()
    assert det.logit_offset_ == pytest.approx(np.log(prior / (1 - prior)))
    raw = det.pipeline_.predict_proba(X[test])[:, 1]
    corrected = det.score_samples(X[test])
    np.testing.assert_allclose(corrected, expit(np.log(raw / (1 - raw)) + det.logit_offset_))
    assert raw.mean() > 5 * p_true[test].mean()  # inflated by resampling
    assert corrected.mean() == pytest.approx(p_true[test].mean(), rel=0.25)
    assert np.abs(raw - p_true[test]).mean() > 0.25
    assert np.abs(corrected - p_true[test]).mean() < 0.01


def test_anomaly_score_is_the_paper_score(split: tuple[np.ndarray, ...]) -> None:
    X, y, X_test, _ = split
    settings = TrainSettings.load(overrides={"anomaly": {"n_estimators": 30}})
    det = AnomalyEstimator(settings=settings, random_state=3)
    det.fit(X, y)
    oracle = IsolationForest(n_estimators=30, random_state=3).fit(X)
    expected = -oracle.score_samples(X_test)
    np.testing.assert_array_equal(det.score_samples(X_test, reference=True), expected)
    # Scored by the compiled forest, as served: equal up to the order of a sum.
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(det.score_samples(X_test), det.to_scorer().score_samples(X_test))


def test_anomaly_fit_on_negatives(split: tuple[np.ndarray, ...]) -> None:
    X, y, X_test, _ = split
    settings = TrainSettings.load(
        overrides={"anomaly": {"n_estimators": 30, "fit_on": "negatives"}}
    )
    det = AnomalyEstimator(settings=settings, random_state=3)
    det.fit(X, y)
    oracle = IsolationForest(n_estimators=30, random_state=3).fit(X[y == 0])
    np.testing.assert_allclose(
        det.score_samples(X_test), -oracle.score_samples(X_test), rtol=0, atol=1e-15
    )


def test_hybrid_stacker_sees_out_of_fold_inputs(
    split: tuple[np.ndarray, ...], settings: TrainSettings
) -> None:
    """The stacker is fitted on out-of-fold inputs: refitting on in-sample ones differs."""
    X, y, _, _ = split
    det = HybridEstimator(technique="smote", settings=settings, random_state=0)
    det.fit(X, y)
    from stream_detector.scoring import HybridScorer

    in_sample = HybridScorer.stack_features(
        det.classifier_.to_scorer(), det.anomaly_.to_scorer(), X
    )
    naive = LogisticRegression(random_state=0).fit(in_sample, y)
    assert not np.allclose(naive.coef_, det.stacker_.coef_)
    assert det.stacker_.coef_.shape == (1, 2)


@pytest.mark.parametrize(("scorer", "model", "technique"), COMBINATIONS)
def test_estimators_clone_like_sklearn_estimators(
    scorer: Any, model: Any, technique: Any, settings: TrainSettings
) -> None:
    """Constructor arguments are only stored: ``clone`` gives an equal, unfitted twin."""
    from sklearn.base import clone

    est = build(scorer, model, technique, settings)
    twin = clone(est)
    assert twin is not est
    assert repr(twin) == repr(est)
    assert not [name for name in vars(twin) if name.endswith("_")]


def test_make_frame_fixture_is_imbalanced(make_data: Callable[..., pd.DataFrame]) -> None:
    frame = make_data(2000, rate=0.05, seed=4)
    assert 0.03 < frame["is_fraud"].mean() < 0.07


def test_blend_scores_the_mean_of_its_members(
    split: tuple[np.ndarray, ...], settings: TrainSettings
) -> None:
    X, y, X_test, _ = split
    det = build("blend", None, None, settings).fit(X, y)
    assert isinstance(det, BlendEstimator)
    np.testing.assert_allclose(
        det.score_samples(X_test),
        np.mean([m.score_samples(X_test) for m in det.members], axis=0),
        rtol=0,
        atol=1e-15,
    )


def test_blend_refuses_anomaly_members(split: tuple[np.ndarray, ...]) -> None:
    X, y, _, _ = split
    with pytest.raises(ConfigError, match="blend members must give probabilities"):
        BlendEstimator(members=[ClassifierEstimator(), AnomalyEstimator()]).fit(X, y)  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="a blend needs at least 2 members; got 1"):
        BlendEstimator(members=[ClassifierEstimator()]).fit(X, y)
