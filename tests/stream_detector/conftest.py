"""Fixtures shared by the serving-side tests: a small trained bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stream_detector.bundle import write_bundle
from stream_detector.scoring import LinearScorer

FEATURES = ("amount", "hour_of_day", "distance")


def training_data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fraud when the amount is large, most of all at night, far from home."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.gamma(2.0, 30.0, n), rng.uniform(0, 24, n), rng.exponential(3.0, n)])
    logit = 0.04 * (X[:, 0] - 150) + 0.8 * (X[:, 2] - 6) - 0.1 * np.abs(X[:, 1] - 12)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear-model bundle over FEATURES, threshold 0.5."""
    X, y = training_data()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    out = tmp_path_factory.mktemp("bundle") / "model"
    write_bundle(
        out,
        scorer=LinearScorer.from_sklearn(model),
        features=FEATURES,
        label="is_fraud",
        technique="none",
        scorer_name="classifier",
        threshold=0.5,
        threshold_policy="fixed:0.5",
        class_prior_train=float(y.mean()),
        metrics={"pr_auc": 0.9, "roc_auc": 0.95, "precision": 0.8, "recall": 0.7},
        reference=np.median(X, axis=0),
    )
    return out
