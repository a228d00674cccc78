"""The compiled walk against a plain Python walk of the trees, and float32 comparisons."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from stream_detector.scoring import GradientBoostingScorer, IsolationForestScorer
from stream_detector.scoring.compiled import CompiledTrees, float32_bounds
from stream_detector.scoring.trees import LocalTree, TreeArrays

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)


def _as_float32_le(x: float, t: float) -> bool:
    """scikit-learn's split test: x rounded to float32, compared in float64 with t."""
    with np.errstate(over="ignore"):
        return float(np.float32(x)) <= t


@given(
    x=st.floats(allow_nan=True, allow_infinity=True),
    t=st.floats(allow_nan=False, allow_infinity=True),
)
@example(x=F32_MAX + 2.0**103, t=F32_MAX)  # a tie above the largest float32 rounds to inf
@example(x=F32_MAX + 2.0**103 - 2.0**75, t=F32_MAX)
@example(x=-(F32_MAX + 2.0**103), t=-np.inf)
@example(x=-(F32_MAX + 2.0**103) + 2.0**75, t=-np.inf)
@example(x=F32_TINY / 2, t=0.0)  # ties to even: rounds to 0
@example(x=F32_TINY * 1.5, t=F32_TINY)  # ties to even: rounds to 2 * tiny
@example(x=F32_TINY / 2, t=-0.0)
@example(x=0.1, t=0.1)
@example(x=0.10000000149011613, t=0.1)
def test_float32_bounds_reproduce_float32_comparisons(x: float, t: float) -> None:
    assert bool(x <= float32_bounds([t])[0]) is _as_float32_le(x, t)


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


@pytest.mark.parametrize("walk", ["nodes", "levels"])
@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_both_compiled_walks_match_the_python_walk(name: str, walk: str) -> None:
    trees, float32_rows = ENSEMBLES[name]()
    if walk == "levels" and trees.n_trees << int(trees.tree_depth.max()) > CompiledTrees.MAX_PADDED:
        pytest.skip("too deep to pad to complete trees")
    rows = _rows(7, 61, trees.n_features)  # 61: the level walk's groups of four, and one over
    expected = python_walk(trees, rows, float32_rows=float32_rows)
    compiled = CompiledTrees(trees, float32_rows=float32_rows, walk=walk)
    assert compiled.walk == walk
    np.testing.assert_allclose(compiled.leaf_sum(rows), expected, rtol=0, atol=1e-12)
    one_by_one = [compiled.leaf_sum(rows[i : i + 1])[0] for i in range(len(rows))]
    np.testing.assert_array_equal(one_by_one, compiled.leaf_sum(rows))
    for n in (2, 3, 5):
        np.testing.assert_array_equal(compiled.leaf_sum(rows[:n]), compiled.leaf_sum(rows)[:n])


def test_the_walk_chosen() -> None:
    assert CompiledTrees(_forest(n_estimators=5), float32_rows=True).walk == "levels"
    assert CompiledTrees(_hgb(max_iter=20, max_depth=3)).walk == "levels"
    chain = TreeArrays.from_trees([_caterpillar(20)], n_features=1)
    assert CompiledTrees(chain).walk == "nodes"  # 2**20 padded leaves
    stump = LocalTree([0, -1, -1], [0.0, 0, 0], [False] * 3, [1, -1, -1], [2, -1, -1], [0, 1, 2])
    lopsided = TreeArrays.from_trees([_caterpillar(8)] + [stump] * 9, n_features=1)
    assert CompiledTrees(lopsided).walk == "nodes"  # padding the stumps to depth 8 does not pay
    with pytest.raises(ValueError, match="walk must be 'auto', 'nodes' or 'levels'"):
        CompiledTrees(chain, walk="levels")
    with pytest.raises(ValueError, match="got 'fast'"):
        CompiledTrees(chain, walk="fast")


def _caterpillar(depth: int) -> LocalTree:
    """A chain: each split has a leaf on its left and the rest of the chain on its right."""
    n = 2 * depth + 1
    inner = np.arange(0, n - 1, 2)
    left, right = np.full(n, -1), np.full(n, -1)
    left[inner], right[inner] = inner + 1, inner + 2
    feature = np.where(left >= 0, 0, -1)
    threshold = np.where(left >= 0, np.arange(n, dtype=float), 0.0)
    return LocalTree(feature, threshold, np.zeros(n, bool), left, right, np.arange(n, dtype=float))


def test_a_deep_chain_walks_right() -> None:
    trees = TreeArrays.from_trees([_caterpillar(70)], n_features=1)
    rows = np.array([[-1.0], [0.5], [68.0], [200.0], [np.nan]])
    sums = CompiledTrees(trees).leaf_sum(rows)
    np.testing.assert_array_equal(sums, python_walk(trees, rows, float32_rows=False))
    assert sums.tolist() == [1.0, 3.0, 69.0, 140.0, 140.0]
    short = TreeArrays.from_trees([_caterpillar(6)], n_features=1)
    levels = CompiledTrees(short, walk="levels").leaf_sum(rows)
    np.testing.assert_array_equal(levels, python_walk(short, rows, float32_rows=False))


@pytest.mark.parametrize("walk", ["nodes", "levels"])
def test_single_leaf_trees(walk: str) -> None:
    leaf = LocalTree([-1], [0.0], [False], [-1], [-1], [2.5])
    stump = LocalTree([1, -1, -1], [0.0, 0, 0], [False] * 3, [1, -1, -1], [2, -1, -1], [0, 1, 4])
    trees = TreeArrays.from_trees([leaf, stump, leaf], n_features=2)
    rows = np.array([[9.0, -1.0], [9.0, 1.0], [9.0, np.nan]])
    assert CompiledTrees(trees, walk=walk).leaf_sum(rows).tolist() == [6.0, 9.0, 9.0]
    only_leaves = CompiledTrees(TreeArrays.from_trees([leaf], n_features=2), walk=walk)
    assert only_leaves.leaf_sum(rows).tolist() == [2.5, 2.5, 2.5]
    assert only_leaves.leaf_sum(np.empty((0, 2))).shape == (0,)


def test_any_layout_of_the_rows_gives_the_same_sums() -> None:
    trees, _ = ENSEMBLES["gbdt"]()
    compiled = CompiledTrees(trees)
    rows = _rows(8, 40, trees.n_features)
    expected = compiled.leaf_sum(rows)
    fortran = np.asfortranarray(rows)
    strided = np.repeat(rows, 2, axis=0)[::2]
    readonly = rows.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(compiled.leaf_sum(fortran), expected)
    np.testing.assert_array_equal(compiled.leaf_sum(strided), expected)
    np.testing.assert_array_equal(compiled.leaf_sum(readonly), expected)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 5, 1), (1, 5)])
def test_rows_of_another_width_are_refused_before_the_walk(shape: tuple[int, ...]) -> None:
    compiled = CompiledTrees(TreeArrays.from_trees([_caterpillar(3)], n_features=4))
    with pytest.raises(ValueError, match="expected rows of 4 features; got shape"):
        compiled.leaf_sum(np.zeros(shape))


def test_without_a_writable_cache_the_walks_compile_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numba

    from stream_detector.scoring import compiled

    real = numba.njit
    asked: list[bool] = []

    def njit(*args: object, cache: bool = False, **kwargs: object) -> object:
        asked.append(cache)
        if cache:  # what numba raises when no cache locator can write
            raise RuntimeError("cannot cache function '_walk_nodes': no locator available")
        return real(*args, cache=cache, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    compiled._compiled.cache_clear()
    try:
        walk = compiled._compiled("nodes")
    finally:
        compiled._compiled.cache_clear()
    assert asked == [True, False]
    trees = TreeArrays.from_trees([_caterpillar(3)], n_features=1)
    out = np.empty(2)
    walk(np.array([[0.5], [9.0]]), *compiled._node_tables(trees, trees.threshold), out)
    assert out.tolist() == python_walk(trees, np.array([[0.5], [9.0]]), float32_rows=False).tolist()
