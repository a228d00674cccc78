"""Isolation forest scorer: the anomaly score ``2 ** (-E[h(x)] / c(n))`` of Liu et al. (2008).

``h(x)`` is the path length of ``x`` in one isolation tree: the depth of the leaf it reaches
plus ``c(size)``, the expected depth still needed to isolate the ``size`` training samples
left in that leaf; ``E[h(x)]`` averages it over the trees and ``c(n)`` normalises by the
subsample size ``n``. Scores near 1 are anomalies, scores well below 0.5 normal points. This
equals ``-IsolationForest.score_samples(X)`` of scikit-learn: leaf path lengths are computed
once, when compiling, and scoring sums them with a compiled walk (float32 comparisons, as
scikit-learn; see :mod:`stream_detector.scoring.compiled`).
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
from stream_detector.scoring.payload import spec_int
from stream_detector.scoring.sklearn_internals import max_features, max_samples
from stream_detector.scoring.trees import LocalTree, TreeArrays
from stream_detector.scoring.treeshap import TreeExplainer

__all__ = ["IsolationForestScorer", "average_path_length"]


def average_path_length(n_samples: npt.ArrayLike) -> Array:
    """``c(n)``: the average path length of an unsuccessful search in a binary search tree of n.

    ``c(n) = 2 H(n - 1) - 2 (n - 1) / n`` with the harmonic number approximated by
    ``ln(i) + euler_gamma``; ``c(1) = 0`` and ``c(2) = 1``.

    Examples
    --------
    >>> average_path_length([1, 2, 256]).round(4)
    array([ 0.    ,  1.    , 10.2448])
    """
    n = np.asarray(n_samples, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IsolationForestScorer(Scorer):
    """The isolation forest anomaly score in [0, 1], compiled from scikit-learn.

    Parameters
    ----------
    trees
        The isolation trees; each leaf's ``value`` is its path length (depth plus ``c`` of the
        number of training samples in it).
    max_samples
        Subsample size ``n`` each tree was grown on; the scores divide by ``c(n)``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import IsolationForest
    >>> from sklearn.metrics import roc_auc_score
    >>> X, y = make_classification(n_samples=2000, n_features=6, weights=[0.95],
    ...                            flip_y=0, class_sep=2.0, random_state=0)
    >>> forest = IsolationForest(n_estimators=50, random_state=0).fit(X)
    >>> scorer = IsolationForestScorer.from_sklearn(forest)
    >>> scores = scorer.score_samples(X)
    >>> float(np.abs(scores + forest.score_samples(X)).max()) < 1e-6
    True
    >>> round(float(roc_auc_score(y, scores)), 3)
    0.999
    """

    kind = "isolation_forest"
    allow_nan = True

    def __init__(self, *, trees: TreeArrays, max_samples: int) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1; got {max_samples}")
        self.trees = trees
        self.max_samples = int(max_samples)
        self.n_features = trees.n_features
        self._compiled = CompiledTrees(trees, float32_rows=True)
        self._normaliser = trees.n_trees * float(average_path_length(self.max_samples))
        self._explainer: TreeExplainer | None = None

    def __repr__(self) -> str:
        return (
            f"IsolationForestScorer(n_features={self.n_features}, "
            f"n_trees={self.trees.n_trees}, max_samples={self.max_samples})"
        )

    @classmethod
    def from_sklearn(cls, iforest: Any) -> Self:
        """Compile a fitted ``sklearn.ensemble.IsolationForest``.

        Raises
        ------
        ConfigError
            If ``iforest`` is not a fitted IsolationForest.
        """
        if type(iforest).__name__ != "IsolationForest" or not hasattr(iforest, "estimators_"):
            raise ConfigError(f"expected a fitted IsolationForest; got {type(iforest).__name__}")
        n_features = int(iforest.n_features_in_)
        subsample = max_features(iforest) != n_features  # as in score_samples
        trees = []
        for tree, features in zip(iforest.estimators_, iforest.estimators_features_, strict=True):
            t = tree.tree_
            leaf = t.children_left < 0
            columns = np.asarray(features)[t.feature] if subsample else t.feature
            depth = np.asarray(t.compute_node_depths(), dtype=np.float64) - 1.0
            trees.append(
                LocalTree(
                    feature=np.where(leaf, -1, columns),
                    threshold=np.where(leaf, 0.0, t.threshold),
                    missing_left=np.asarray(t.missing_go_to_left, dtype=bool) & ~leaf,
                    children_left=t.children_left,
                    children_right=t.children_right,
                    value=np.where(leaf, depth + average_path_length(t.n_node_samples), 0.0),
                    cover=np.asarray(t.weighted_n_node_samples, dtype=np.float64),
                )
            )
        return cls(
            trees=TreeArrays.from_trees(trees, n_features=n_features),
            max_samples=max_samples(iforest),
        )

    def _score_samples(self, X: Array) -> Array:
        depth = self._compiled.leaf_sum(X)
        if self._normaliser == 0.0:  # one training sample: scikit-learn scores 2 ** -1
            return np.full(X.shape[0], 0.5)
        return np.asarray(np.exp2(-depth / self._normaliser), dtype=np.float64)

    @property
    def can_attribute(self) -> bool:
        """Whether the trees carry node covers (bundles written before them do not)."""
        return self.trees.cover is not None

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """Path-dependent TreeSHAP of ``log2(score) = -E[h(x)] / c(n)``: path lengths, scaled.

        A feature that shortens the paths (isolates the row sooner) raises the score and gets
        a positive contribution; the baseline is the training data's expected path length.
        """
        n = X.shape[0]
        if self._normaliser == 0.0:  # one training sample: a constant score of 2 ** -1
            return Attribution(np.zeros((n, self.n_features)), -np.ones(n), -np.ones(n), "log2")
        if self._explainer is None:
            if self.trees.cover is None:
                raise BundleError(
                    "this isolation_forest scorer was compiled without node covers, which its "
                    "explanations need; train the bundle again"
                )
            self._explainer = TreeExplainer(self._compiled)
        explainer, scale = self._explainer, -1.0 / self._normaliser
        depth = self._compiled.leaf_sum(X)
        base = np.full(n, -explainer.expected / self._normaliser)
        output = -depth / self._normaliser  # as _score_samples computes it
        return Attribution(explainer.shap_values(X) * scale, output, base, "log2")

    def to_payload(self) -> Payload:
        """Spec ``{kind, n_features, max_samples}`` and the tree arrays."""
        spec = {"kind": self.kind, "n_features": self.n_features, "max_samples": self.max_samples}
        return spec, self.trees.to_payload()

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        cls._check_kind(spec)
        n_features = spec_int(spec, "n_features", minimum=1)
        trees = TreeArrays.from_payload(arrays, n_features=n_features)
        return cls(trees=trees, max_samples=spec_int(spec, "max_samples", minimum=1))
