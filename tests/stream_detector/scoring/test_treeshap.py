"""TreeSHAP against brute-force Shapley values on small random trees, and additivity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from stream_detector.scoring.compiled import CompiledTrees
from stream_detector.scoring.trees import LocalTree, TreeArrays
from stream_detector.scoring.treeshap import TreeExplainer


def random_tree(rng: np.random.Generator, n_features: int, depth: int) -> LocalTree:
    """A random binary tree with repeated features, NaN sides, leaf values and covers."""
    feature: list[int] = []
    threshold: list[float] = []
    missing: list[bool] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    cover: list[float] = []

    def grow(level: int, weight: float) -> int:
        index = len(feature)
        for column in (feature, left, right):
            column.append(-1)
        threshold.append(0.0)
        missing.append(False)
        value.append(0.0)
        cover.append(weight)
        if level == depth or (level > 0 and rng.random() < 0.25):
            value[index] = float(rng.normal())
            return index
        share = float(rng.uniform(0.1, 0.9))
        feature[index] = int(rng.integers(n_features))
        threshold[index] = float(rng.normal())
        missing[index] = bool(rng.random() < 0.5)
        left[index] = grow(level + 1, weight * share)
        right[index] = grow(level + 1, weight * (1.0 - share))
        return index

    grow(0, float(rng.integers(50, 500)))
    return LocalTree(feature, threshold, missing, left, right, value, cover)


def conditional_expectation(tree: LocalTree, x: np.ndarray, known: set[int]) -> float:
    """The tree's output with the features in ``known`` set to ``x``, the others averaged over
    the training data by the node covers: the game path-dependent TreeSHAP takes values of."""
    feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    missing, value = np.asarray(tree.missing_left), np.asarray(tree.value)
    cover = np.asarray(tree.cover, dtype=np.float64)

    def at(node: int) -> float:
        if left[node] < 0:
            return float(value[node])
        f = int(feature[node])
        if f in known:
            v = x[f]
            if math.isnan(v):
                return at(int(left[node] if missing[node] else right[node]))
            return at(int(left[node] if v <= threshold[node] else right[node]))
        lc, rc = int(left[node]), int(right[node])
        return (cover[lc] * at(lc) + cover[rc] * at(rc)) / cover[node]

    return at(0)


def brute_force_shapley(trees: list[LocalTree], x: np.ndarray, n_features: int) -> np.ndarray:
    """Shapley values by the definition: every subset of the other features, weighted."""
    phi = np.zeros(n_features)
    players = range(n_features)
    for j in players:
        others = [k for k in players if k != j]
        for size in range(n_features):
            weight = math.factorial(size) * math.factorial(n_features - size - 1)
            weight /= math.factorial(n_features)
            for subset in itertools.combinations(others, size):
                known = set(subset)
                gain = sum(
                    conditional_expectation(t, x, known | {j})
                    - conditional_expectation(t, x, known)
                    for t in trees
                )
                phi[j] += weight * gain
    return phi


@pytest.mark.parametrize("seed", range(8))
def test_equals_brute_force_shapley_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 5))
    trees = [random_tree(rng, n_features, depth=int(rng.integers(1, 6))) for _ in range(3)]
    explainer = TreeExplainer(CompiledTrees(TreeArrays.from_trees(trees, n_features=n_features)))
    X = rng.normal(size=(6, n_features))
    X[rng.random(X.shape) < 0.2] = np.nan
    phi = explainer.shap_values(X)
    for row, values in zip(X, phi, strict=True):
        np.testing.assert_allclose(values, brute_force_shapley(trees, row, n_features), atol=1e-12)
    empty = sum(conditional_expectation(t, X[0], set()) for t in trees)
    assert explainer.expected == pytest.approx(empty, abs=1e-12)


@pytest.mark.parametrize("walk", ["nodes", "levels"])
def test_values_add_up_to_the_leaf_sum(walk: str) -> None:
    rng = np.random.default_rng(42)
    trees = [random_tree(rng, 6, depth=8) for _ in range(40)]
    compiled = CompiledTrees(TreeArrays.from_trees(trees, n_features=6), walk=walk)
    explainer = TreeExplainer(compiled)
    X = rng.normal(size=(300, 6))
    X[rng.random(X.shape) < 0.1] = np.nan
    phi = explainer.shap_values(X)
    np.testing.assert_allclose(
        phi.sum(axis=1) + explainer.expected, compiled.leaf_sum(X), rtol=0, atol=1e-9
    )


def test_a_feature_never_split_on_gets_nothing() -> None:
    rng = np.random.default_rng(3)
    trees = [random_tree(rng, 2, depth=4) for _ in range(5)]
    explainer = TreeExplainer(CompiledTrees(TreeArrays.from_trees(trees, n_features=3)))
    phi = explainer.shap_values(rng.normal(size=(20, 3)))
    assert np.all(phi[:, 2] == 0.0)
    assert np.any(phi[:, :2] != 0.0)


def test_trees_without_covers_are_refused() -> None:
    stump = LocalTree([0, -1, -1], [0.5, 0, 0], [False] * 3, [1, -1, -1], [2, -1, -1], [0, 1, 2])
    with pytest.raises(ValueError, match="needs node covers"):
        TreeExplainer(CompiledTrees(TreeArrays.from_trees([stump], n_features=1)))


def test_rows_of_the_wrong_width_are_refused() -> None:
    rng = np.random.default_rng(0)
    explainer = TreeExplainer(
        CompiledTrees(TreeArrays.from_trees([random_tree(rng, 2, 3)], n_features=2))
    )
    with pytest.raises(ValueError, match="rows of 2 features"):
        explainer.shap_values(np.zeros((1, 3)))
