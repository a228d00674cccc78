"""The cold-start scorer: River HalfSpaceTrees behind the Scorer interface, learning online."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from stream_detector.decide import Decider
from stream_detector.errors import BundleError, ConfigError
from stream_detector.messages import Message, Source
from stream_detector.online import HalfSpaceTreesScorer, cold_start_bundle
from stream_detector.scoring import scorer_from_payload

FEATURES = [f"f{i}" for i in range(1, 10)]


def test_prequential_quality_on_shuttle(shuttle_frame: pd.DataFrame) -> None:
    """Score each event, then learn it, over 12,000 rows of River's shuttle data (7% rare
    classes): the ROC AUC of the scores given before learning is well above chance."""
    X = shuttle_frame[FEATURES].to_numpy()[:12_000]
    y = shuttle_frame["anomaly"].to_numpy()[:12_000]
    scorer = HalfSpaceTreesScorer(
        n_features=9, n_trees=10, height=8, window_size=250, warmup=500, random_state=0
    )
    scores = np.empty(len(X))
    for start in range(0, len(X), 500):  # batches, as the service does
        scores[start : start + 500] = scorer.score_samples(X[start : start + 500])
        scorer.learn(X[start : start + 500])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(y[1_000:], scores[1_000:]) > 0.9
    np.testing.assert_array_equal(scorer.low_, X.min(axis=0))
    np.testing.assert_array_equal(scorer.high_, X.max(axis=0))
    np.testing.assert_allclose(scorer.mean_, X.mean(axis=0), rtol=1e-9)


def test_same_seed_same_scores_and_learning_is_explicit() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1_500, 3))
    a = HalfSpaceTreesScorer(n_features=3, n_trees=5, height=6, window_size=100, random_state=4)
    b = HalfSpaceTreesScorer(n_features=3, n_trees=5, height=6, window_size=100, random_state=4)
    before = a.score_samples(X[:10])
    np.testing.assert_array_equal(before, a.score_samples(X[:10]))  # scoring does not learn
    assert a.n_learned_ == 0
    a.learn(X)
    b.learn(X)
    np.testing.assert_array_equal(a.score_samples(X[:200]), b.score_samples(X[:200]))


def test_it_is_never_saved_nor_loaded_from_a_bundle() -> None:
    scorer = HalfSpaceTreesScorer(n_features=1)
    with pytest.raises(BundleError, match="never saved"):
        scorer.to_payload()
    with pytest.raises(BundleError, match="unknown scorer kind 'halfspacetrees'"):
        scorer_from_payload({"kind": "halfspacetrees"}, {})


def test_bundle_decides_with_reasons_from_the_running_mean() -> None:
    bundle = cold_start_bundle(
        features=["amount", "hour"],
        threshold=0.5,
        class_prior=0.02,
        n_trees=10,
        height=8,
        window_size=200,
        warmup=400,
    )
    scorer = bundle.scorer
    assert isinstance(scorer, HalfSpaceTreesScorer)
    assert scorer.warming_up
    assert bundle.manifest.class_prior_train == 0.02
    assert bundle.manifest.files == {}
    rng = np.random.default_rng(0)
    scorer.learn(np.column_stack([rng.normal(50, 5, 2_000), rng.uniform(8, 20, 2_000)]))
    assert not scorer.warming_up
    messages = [
        Message(None, b'{"event_id": "big", "amount": 400, "hour": 12}', Source("e", 0, 0)),
        Message(None, b'{"event_id": "usual", "amount": 50, "hour": 12}', Source("e", 0, 1)),
    ]
    # Half-space-tree scores crowd near 1 with few features: 0.98 is their 95% quantile here.
    outcome = Decider(bundle, threshold=0.98).decide(messages)
    big, usual = outcome.decisions
    assert big["score"] > 0.98 > usual["score"]
    assert big["flagged"]
    assert not usual["flagged"]
    assert outcome.alerts[0]["reasons"][0]["feature"] == "amount"
    np.testing.assert_allclose(bundle.reference, scorer.mean_)  # shared, not copied


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cold start needs"):
        HalfSpaceTreesScorer(n_features=0)
