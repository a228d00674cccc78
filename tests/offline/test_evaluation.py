"""Metrics against scikit-learn, and evaluating a bundle on new data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from offline.config import DataSettings, TrainSettings
from offline.evaluation import evaluate_bundle, evaluate_scores, precision_at_k
from offline.train import train_model
from stream_detector.errors import BundleError, ConfigError, DataError


def test_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.05).astype(int)
    s = np.clip(rng.normal(0.3, 0.15, 1000) + 0.3 * y, 0, 1)
    amount = rng.gamma(2.0, 50.0, 1000)
    m = evaluate_scores(y, s, 0.55, k=50, amount=amount)
    pred = s >= 0.55
    assert m.pr_auc == pytest.approx(average_precision_score(y, s))
    assert m.roc_auc == pytest.approx(roc_auc_score(y, s))
    assert m.precision == pytest.approx(precision_score(y, pred))
    assert m.recall == pytest.approx(recall_score(y, pred))
    assert m.f1 == pytest.approx(f1_score(y, pred))
    assert (m.n, m.positives, m.flagged, m.k) == (1000, int(y.sum()), int(pred.sum()), 50)
    assert m.alert_rate == pred.mean()
    assert m.precision_at_k == y[np.argsort(-s)[:50]].mean()
    assert m.amount_caught is not None
    assert m.amount_missed is not None
    assert m.amount_caught == pytest.approx(amount[pred & (y == 1)].sum())
    assert m.amount_missed == pytest.approx(amount[~pred & (y == 1)].sum())
    assert m.amount_caught + m.amount_missed == pytest.approx(amount[y == 1].sum())


def test_contract_keys() -> None:
    d = evaluate_scores([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.2], 0.5).as_dict()
    for key in ("pr_auc", "roc_auc", "precision", "recall", "f1", "threshold", "n", "positives"):
        assert key in d
    assert d["amount_caught"] is None


def test_precision_at_k_ties_and_large_k() -> None:
    assert precision_at_k([1, 0, 0, 1], [0.5, 0.5, 0.5, 0.1], 1) == 1.0  # input order on ties
    assert precision_at_k([1, 0, 0, 1], [0.5, 0.5, 0.5, 0.1], 100) == 0.5
    with pytest.raises(DataError):
        precision_at_k([1, 0], [0.2, 0.1], 0)


def test_flagging_nothing_has_zero_precision() -> None:
    m = evaluate_scores([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.2], 0.9)
    assert (m.precision, m.recall, m.f1, m.flagged) == (0.0, 0.0, 0.0, 0)


def test_single_class_is_an_error() -> None:
    with pytest.raises(DataError, match="all 3 rows are labelled 0"):
        evaluate_scores([0, 0, 0], [0.1, 0.2, 0.3], 0.5)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Callable[..., TrainSettings],
) -> Path:
    root = tmp_path_factory.mktemp("evaluation")
    make_data(400, seed=1).to_csv(root / "train.csv", index=False)
    train_model(
        root / "train.csv",
        "is_fraud",
        root / "model",
        make_settings(threshold_policy="precision:0.8"),
    )
    return root


def test_evaluate_bundle(trained: Path, make_data: Callable[..., pd.DataFrame]) -> None:
    test = make_data(300, seed=9).drop(columns=["event_id"])
    test = test[["velocity", "is_fraud", "distance", "hour", "amount"]]  # other column order
    test.to_csv(trained / "test.csv", index=False)
    ev = evaluate_bundle(trained / "model", trained / "test.csv", "is_fraud")
    assert ev.data.features == ev.bundle.features
    X = pd.read_csv(trained / "test.csv")[list(ev.bundle.features)].to_numpy(float)
    np.testing.assert_allclose(ev.scores, ev.bundle.score_samples(X), rtol=0, atol=1e-12)
    assert ev.metrics.pr_auc == pytest.approx(average_precision_score(test["is_fraud"], ev.scores))
    assert ev.metrics.threshold == ev.bundle.threshold
    assert ev.policy["policy"] == "precision:0.8"
    assert ev.policy["target"] == 0.8
    assert ev.policy["achieved"] == ev.metrics.precision
    assert ev.policy["held"] == (ev.metrics.precision >= 0.8)
    d = ev.as_dict()
    assert d["validation"] == dict(ev.bundle.manifest.metrics)
    assert d["scorer"] == "classifier"


def test_evaluate_needs_the_bundle_features(
    trained: Path, make_data: Callable[..., pd.DataFrame]
) -> None:
    make_data(100, seed=2).drop(columns=["velocity"]).to_csv(trained / "few.csv", index=False)
    with pytest.raises(DataError, match=r"feature columns missing from the data: \['velocity'\]"):
        evaluate_bundle(trained / "model", trained / "few.csv", "is_fraud")


def test_evaluate_imputes_with_training_medians(
    trained: Path, make_data: Callable[..., pd.DataFrame]
) -> None:
    frame = make_data(100, seed=2)
    frame.loc[0, "amount"] = np.nan
    frame.to_csv(trained / "holes.csv", index=False)
    with pytest.raises(DataError, match="missing or infinite values: 'amount' \\(1\\)"):
        evaluate_bundle(trained / "model", trained / "holes.csv", "is_fraud")
    ev = evaluate_bundle(
        trained / "model",
        trained / "holes.csv",
        "is_fraud",
        settings=DataSettings(missing="impute_median"),
    )
    j = ev.bundle.features.index("amount")
    assert ev.data.X[0, j] == ev.bundle.reference[j]


def test_evaluate_bad_bundle(tmp_path: Path, trained: Path) -> None:
    with pytest.raises(BundleError):
        evaluate_bundle(tmp_path / "none", trained / "train.csv", "is_fraud")


def test_history_and_labels_need_a_feature_spec(trained: Path) -> None:
    with pytest.raises(ConfigError, match="need a bundle with a feature spec"):
        evaluate_bundle(
            trained / "model", trained / "train.csv", "is_fraud", history=trained / "train.csv"
        )
