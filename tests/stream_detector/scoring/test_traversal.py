"""The three walks against a plain Python walk of the trees, on varied ensembles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from stream_detector.scoring import GradientBoostingScorer, IsolationForestScorer
from stream_detector.scoring.compiled import float32_bounds
from stream_detector.scoring.traversal import BitVectors, CompleteLevels, Levels
from stream_detector.scoring.trees import LocalTree, TreeArrays


def python_walk(trees: TreeArrays, rows: np.ndarray, *, float32_rows: bool) -> np.ndarray:
    """The oracle: one row, one tree, one node at a time."""
    out = np.zeros(len(rows))
    for i, row in enumerate(rows):
        for root in trees.roots:
            node = int(root)
            while trees.children_left[node] >= 0:
                x = float(row[trees.feature[node]])
                if float32_rows:
                    with np.errstate(over="ignore"):
                        x = float(np.float32(x))
                nan = np.isnan(x)
                left = bool(trees.missing_left[node]) if nan else x <= trees.threshold[node]
                node = int(trees.children_left[node] if left else trees.children_right[node])
            out[i] += trees.value[node]
    return out


def _rows(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = (rng.normal(size=(n, d)) * 1.5).round(1)
    rows[rng.uniform(size=rows.shape) < 0.15] = np.nan
    rows[rng.uniform(size=rows.shape) < 0.03] = np.inf
    rows[rng.uniform(size=rows.shape) < 0.03] = -np.inf
    return rows


def _hgb(**params: object) -> TreeArrays:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 4)).round(1)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=800) > 0.5).astype(int)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    X[::7, 3] = np.nan
    y[::7] = 1  # a missing value that tells: splits that send only NaN right (+inf threshold)
    model = HistGradientBoostingClassifier(random_state=0, **params).fit(X, y)
    return GradientBoostingScorer.from_sklearn(model).trees


def _forest(**params: object) -> TreeArrays:
    X = np.random.default_rng(1).normal(size=(600, 4)).round(1)
    forest = IsolationForest(random_state=0, **params).fit(X)
    return IsolationForestScorer.from_sklearn(forest).trees


def _tiny() -> TreeArrays:
    leaf = LocalTree([-1], [0.0], [False], [-1], [-1], [2.5])
    deep = LocalTree(
        feature=[0, -1, 1, -1, -1],
        threshold=[0.0, 0, np.inf, 0, 0],
        missing_left=[True, False, False, False, False],
        children_left=[1, -1, 3, -1, -1],
        children_right=[2, -1, 4, -1, -1],
        value=[0, -1.0, 0, 5.0, 7.0],
    )
    return TreeArrays.from_trees([leaf, deep, leaf], n_features=4, inf_threshold=True)


ENSEMBLES = {
    "gbdt": lambda: (_hgb(max_iter=20), False),
    "gbdt shallow": lambda: (_hgb(max_iter=20, max_depth=3), False),
    "gbdt many leaves": lambda: (_hgb(max_iter=5, max_leaf_nodes=90, min_samples_leaf=2), False),
    "forest": lambda: (_forest(n_estimators=20), True),
    "forest small": lambda: (_forest(n_estimators=20, max_samples=40), True),
    "single leaves": lambda: (_tiny(), False),
}


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_every_applicable_walk_matches_the_python_walk(name: str) -> None:
    trees, float32_rows = ENSEMBLES[name]()
    d = trees.n_features
    column = np.where(trees.is_leaf, 0, trees.feature + d * (~trees.missing_left))
    column = column.astype(np.intp)
    threshold = float32_bounds(trees.threshold) if float32_rows else trees.threshold.copy()
    rows = _rows(7, 60, d)
    wide = np.concatenate((np.where(np.isnan(rows), -np.inf, rows), rows), axis=1)
    offset = np.arange(len(rows), dtype=np.intp) * 2 * d
    expected = python_walk(trees, rows, float32_rows=float32_rows)
    walks = {"levels": Levels(trees, column, threshold).chunk_sum(wide.ravel(), offset)}
    if CompleteLevels.fits(trees):
        complete = CompleteLevels(trees, column, threshold)
        walks["complete"] = complete.chunk_sum(wide.ravel(), offset)
    if BitVectors.fits(trees):
        walks["bits"] = BitVectors(trees, column, threshold).batch_sum(wide)
    for walk, sums in walks.items():
        np.testing.assert_allclose(sums, expected, rtol=0, atol=1e-12, err_msg=walk)


def _caterpillar(depth: int) -> LocalTree:
    """A chain: each split has a leaf on its left and the rest of the chain on its right."""
    n = 2 * depth + 1
    inner = np.arange(0, n - 1, 2)
    left, right = np.full(n, -1), np.full(n, -1)
    left[inner], right[inner] = inner + 1, inner + 2
    feature = np.where(left >= 0, 0, -1)
    threshold = np.where(left >= 0, np.arange(n, dtype=float), 0.0)
    return LocalTree(feature, threshold, np.zeros(n, bool), left, right, np.arange(n, dtype=float))


def test_which_walks_apply() -> None:
    forest, small_forest = _forest(n_estimators=5), _forest(max_samples=40)
    assert CompleteLevels.fits(forest)
    assert not BitVectors.fits(forest)  # 256 samples: more than 64 leaves
    assert BitVectors.fits(small_forest)
    assert CompleteLevels.fits(_hgb(max_iter=20, max_depth=3))
    stump = LocalTree([0, -1, -1], [0.0, 0, 0], [False] * 3, [1, -1, -1], [2, -1, -1], [0, 1, 2])
    chain = TreeArrays.from_trees([_caterpillar(20)], n_features=1)
    assert not CompleteLevels.fits(chain)  # 2**20 padded leaves
    assert BitVectors.fits(chain)
    lopsided = TreeArrays.from_trees([_caterpillar(8)] + [stump] * 9, n_features=1)
    assert not CompleteLevels.fits(lopsided)  # padding the stumps to depth 8 does not pay
    assert not BitVectors.fits(TreeArrays.from_trees([_caterpillar(64)], n_features=1))


def test_a_deep_chain_walks_right() -> None:
    trees = TreeArrays.from_trees([_caterpillar(70)], n_features=1)
    rows = np.array([[-1.0], [0.5], [68.0], [200.0], [np.nan]])
    column = np.zeros(trees.n_nodes, dtype=np.intp)
    wide = np.concatenate((np.where(np.isnan(rows), -np.inf, rows), rows), axis=1)
    column[trees.missing_left == 0] = 1  # NaN goes right
    sums = Levels(trees, column, trees.threshold).chunk_sum(wide.ravel(), np.arange(5) * 2)
    np.testing.assert_array_equal(sums, python_walk(trees, rows, float32_rows=False))
    assert sums.tolist() == [1.0, 3.0, 69.0, 140.0, 140.0]
