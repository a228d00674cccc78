"""Gradient-boosted trees scorer: ``sigmoid(baseline + sum of leaf values + logit_offset)``.

Compiled from a binary ``sklearn.ensemble.HistGradientBoostingClassifier`` with numeric
features: its trees become flat arrays, leaf values already include the
learning rate, and ``baseline`` is the model's initial log-odds. A row goes left when
``x <= threshold``; NaN goes where the tree learnt missing values go (``missing_go_to_left``),
and a ``+inf`` threshold sends only NaN right, exactly as scikit-learn predicts. The trees and
the baseline are private attributes of the model, read through
:mod:`stream_detector.scoring.sklearn_internals`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError, ConfigError
from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.base import Array, Payload, Scorer
from stream_detector.scoring.compiled import CompiledTrees
from stream_detector.scoring.link import sigmoid, sigmoid_of
from stream_detector.scoring.payload import spec_float, spec_int
from stream_detector.scoring.sklearn_internals import (
    baseline_log_odds,
    has_preprocessor,
    predictors,
)
from stream_detector.scoring.trees import LocalTree, TreeArrays
from stream_detector.scoring.treeshap import TreeExplainer

__all__ = ["GradientBoostingScorer"]


class GradientBoostingScorer(Scorer):
    """Probability of the positive class from boosted trees, compiled from scikit-learn.

    Parameters
    ----------
    trees
        The boosted trees; leaf ``value`` is the tree's log-odds contribution.
    baseline
        Initial log-odds added to every row.
    logit_offset
        Added to the log-odds before the sigmoid: the prior correction after resampling,
        ``logit(true prior) - logit(resampled prior)``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> from sklearn.metrics import roc_auc_score
    >>> X, y = make_classification(n_samples=2000, n_features=6, weights=[0.9], random_state=0)
    >>> X[::10, 2] = np.nan
    >>> model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    >>> model = model.fit(X[:1000], y[:1000])
    >>> scorer = GradientBoostingScorer.from_sklearn(model)
    >>> float(np.abs(scorer.score_samples(X) - model.predict_proba(X)[:, 1]).max()) < 1e-6
    True
    >>> round(float(roc_auc_score(y[1000:], scorer.score_samples(X[1000:]))), 3)  # held out
    0.979
    """

    kind = "gbdt"
    allow_nan = True

    def __init__(self, *, trees: TreeArrays, baseline: float, logit_offset: float = 0.0) -> None:
        if not (np.isfinite(baseline) and np.isfinite(logit_offset)):
            raise ValueError(
                f"baseline and logit_offset must be finite; got {baseline}, {logit_offset}"
            )
        self.trees = trees
        self.baseline = float(baseline)
        self.logit_offset = float(logit_offset)
        self.n_features = trees.n_features
        self._compiled = CompiledTrees(trees)
        self._explainer: TreeExplainer | None = None

    def __repr__(self) -> str:
        return (
            f"GradientBoostingScorer(n_features={self.n_features}, n_trees={self.trees.n_trees}, "
            f"logit_offset={self.logit_offset})"
        )

    @classmethod
    def from_sklearn(cls, model: Any, *, logit_offset: float = 0.0) -> Self:
        """Compile a fitted binary ``HistGradientBoostingClassifier`` on numeric features.

        Raises
        ------
        ConfigError
            If the model is not a fitted binary HistGradientBoostingClassifier, or uses
            categorical features.
        """
        name = type(model).__name__
        if name != "HistGradientBoostingClassifier" or not hasattr(model, "classes_"):
            raise ConfigError(f"expected a fitted HistGradientBoostingClassifier; got {name}")
        if len(model.classes_) != 2 or model.n_trees_per_iteration_ != 1:
            raise ConfigError(f"expected a binary classifier; got {len(model.classes_)} classes")
        categorical = getattr(model, "is_categorical_", None)
        if (categorical is not None and np.any(categorical)) or has_preprocessor(model):
            raise ConfigError(
                "cannot compile a HistGradientBoostingClassifier with categorical features; "
                "expected numeric features only"
            )
        trees = []
        for predictor in predictors(model):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            if np.any(nodes["is_categorical"]):
                raise ConfigError("cannot compile categorical splits; expected numeric features")
            trees.append(
                LocalTree(
                    feature=np.where(leaf, -1, nodes["feature_idx"]),
                    threshold=np.where(leaf, 0.0, nodes["num_threshold"]),
                    missing_left=nodes["missing_go_to_left"].astype(bool) & ~leaf,
                    children_left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    children_right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    value=np.where(leaf, nodes["value"], 0.0),
                    cover=np.maximum(nodes["count"].astype(np.float64), 1.0),
                )
            )
        baseline = baseline_log_odds(model)
        return cls(
            trees=TreeArrays.from_trees(
                trees, n_features=int(model.n_features_in_), inf_threshold=True
            ),
            baseline=baseline,
            logit_offset=logit_offset,
        )

    def _score_samples(self, X: Array) -> Array:
        raw = self._compiled.leaf_sum(X)
        if raw.shape[0] == 1:  # one row: plain Python's sigmoid is cheaper than numpy's
            return np.array([sigmoid_of(float(raw[0]) + (self.baseline + self.logit_offset))])
        raw += self.baseline + self.logit_offset
        return sigmoid(raw)

    @property
    def can_attribute(self) -> bool:
        """Whether the trees carry node covers (bundles written before them do not)."""
        return self.trees.cover is not None

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """Path-dependent TreeSHAP in log-odds, from the expected log-odds of the training data."""
        explainer = _explainer_of(self)
        offset = self.baseline + self.logit_offset
        raw = self._compiled.leaf_sum(X)
        raw += offset
        base = np.full(X.shape[0], explainer.expected + offset)
        return Attribution(explainer.shap_values(X), raw, base, "logit")

    def to_payload(self) -> Payload:
        """Spec ``{kind, n_features, baseline, logit_offset}`` and the tree arrays."""
        spec = {
            "kind": self.kind,
            "n_features": self.n_features,
            "baseline": self.baseline,
            "logit_offset": self.logit_offset,
        }
        return spec, self.trees.to_payload()

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        cls._check_kind(spec)
        n_features = spec_int(spec, "n_features", minimum=1)
        trees = TreeArrays.from_payload(arrays, n_features=n_features, inf_threshold=True)
        return cls(
            trees=trees,
            baseline=spec_float(spec, "baseline"),
            logit_offset=spec_float(spec, "logit_offset"),
        )


def _explainer_of(scorer: GradientBoostingScorer) -> TreeExplainer:
    """The scorer's TreeSHAP explainer, built on first use; BundleError without covers."""
    if scorer._explainer is None:
        if scorer.trees.cover is None:
            raise BundleError(
                "this gbdt scorer was compiled without node covers, which its explanations "
                "need; train the bundle again"
            )
        scorer._explainer = TreeExplainer(scorer._compiled)
    return scorer._explainer
