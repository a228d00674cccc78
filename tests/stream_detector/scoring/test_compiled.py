"""The two tree evaluators agree with each other, with chunking, and with float32 semantics."""

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


def _hgb(seed: int, nan: bool) -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=600) > 0.8).astype(int)
    if nan:
        X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=40, random_state=seed).fit(
        X, y
    )


def _rows(seed: int, n: int, d: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d)) * 1.5
    rows[rng.uniform(size=rows.shape) < 0.15] = np.nan
    rows[rng.uniform(size=rows.shape) < 0.02] = np.inf
    rows[rng.uniform(size=rows.shape) < 0.02] = -np.inf
    return rows


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("nan", [False, True])
def test_bit_vectors_and_levels_agree(seed: int, nan: bool) -> None:
    trees = GradientBoostingScorer.from_sklearn(_hgb(seed, nan)).trees
    bits = CompiledTrees(trees, small_batch=10**9)
    levels = CompiledTrees(trees, small_batch=0)
    rows = _rows(seed + 10, 300)
    np.testing.assert_allclose(bits.leaf_sum(rows), levels.leaf_sum(rows), rtol=0, atol=1e-12)


def test_chunks_do_not_change_the_sums_beyond_rounding() -> None:
    trees = GradientBoostingScorer.from_sklearn(_hgb(2, True)).trees
    rows = _rows(3, 257)
    whole = CompiledTrees(trees, small_batch=0, chunk_elements=10**9).leaf_sum(rows)
    for chunk_elements in (1, 25 * 7, 25 * 64):
        chunked = CompiledTrees(trees, small_batch=0, chunk_elements=chunk_elements)
        np.testing.assert_allclose(chunked.leaf_sum(rows), whole, rtol=0, atol=1e-12)


def test_single_leaf_trees_work_in_both_evaluators() -> None:
    leaf = LocalTree([-1], [0.0], [False], [-1], [-1], [2.5])
    stump = LocalTree([1, -1, -1], [0.0, 0, 0], [False] * 3, [1, -1, -1], [2, -1, -1], [0, 1, 4])
    trees = TreeArrays.from_trees([leaf, stump, leaf], n_features=2)
    rows = np.array([[9.0, -1.0], [9.0, 1.0], [9.0, np.nan]])
    expected = [6.0, 9.0, 9.0]
    assert CompiledTrees(trees, small_batch=0).leaf_sum(rows).tolist() == expected
    assert CompiledTrees(trees, small_batch=99).leaf_sum(rows).tolist() == expected
    only_leaves = CompiledTrees(TreeArrays.from_trees([leaf], n_features=2), small_batch=0)
    assert only_leaves.leaf_sum(rows).tolist() == [2.5, 2.5, 2.5]


def test_small_batches_use_bit_vectors_and_agree_with_the_walk() -> None:
    X = np.random.default_rng(0).normal(size=(500, 3))
    small = IsolationForest(n_estimators=3, max_samples=64, random_state=0).fit(X)
    trees = IsolationForestScorer.from_sklearn(small).trees
    rows = _rows(5, 50, d=3)
    bits = CompiledTrees(trees, float32_rows=True, small_batch=10**9).leaf_sum(rows)
    levels = CompiledTrees(trees, float32_rows=True, small_batch=0).leaf_sum(rows)
    np.testing.assert_allclose(bits, levels, rtol=0, atol=1e-12)
