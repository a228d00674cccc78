"""Model bundles for the fault harness and the serving benchmarks.

:func:`write_test_bundle` fits a small model (a standardised logistic regression, or an
IsolationForest), compiles it as ``serve`` does and writes a bundle whose fixed threshold flags
a chosen share of the training rows, so that a run produces alerts at a known rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["BundleScorer", "write_test_bundle"]

#: ``linear``: StandardScaler + LogisticRegression; ``isolation_forest``: 100 trees, unsupervised.
BundleScorer = Literal["linear", "isolation_forest"]


def write_test_bundle(
    directory: Path,
    X: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    *,
    alert_share: float,
    scorer: BundleScorer = "linear",
    label: str = "is_fraud",
) -> Path:
    """Fit ``scorer`` on ``X, y`` and write a bundle flagging about ``alert_share`` of ``X``.

    Examples
    --------
    >>> import tempfile
    >>> from stream_detector.bundle import load_bundle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2))
    >>> y = (X[:, 0] > 1).astype(int)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     bundle = load_bundle(write_test_bundle(Path(tmp), X, y, ["a", "b"], alert_share=0.1))
    >>> bundle.features
    ('a', 'b')
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stream_detector.bundle import write_bundle
    from stream_detector.scoring import IsolationForestScorer, LinearScorer, Scorer

    compiled: Scorer
    if scorer == "linear":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
        compiled = LinearScorer.from_sklearn(model)
    else:
        forest = IsolationForest(n_estimators=100, random_state=0).fit(X)
        compiled = IsolationForestScorer.from_sklearn(forest)
    threshold = float(np.quantile(compiled.score_samples(X), 1 - alert_share))
    write_bundle(
        directory,
        scorer=compiled,
        features=tuple(features),
        label=label,
        technique="none",
        scorer_name="classifier" if scorer == "linear" else "anomaly",
        threshold=threshold,
        threshold_policy=f"fixed:{threshold}",
        class_prior_train=float(np.mean(y)),
        metrics={"pr_auc": 0.0, "roc_auc": 0.0, "precision": 0.0, "recall": 0.0},
        reference=np.median(X, axis=0),
    )
    return directory
