"""Tree ensembles compiled for scoring: the sum of the leaf values each row reaches.

:class:`CompiledTrees` packs a :class:`~stream_detector.scoring.trees.TreeArrays` into node
tables walked by loops compiled with numba: one call per batch, no interpreter cost per node,
and none of the per-call overhead of scikit-learn's predictors, which dominates at one row.
Two walks:

- :func:`_walk_nodes`, any tree shape: for each row, each tree from its root down to a leaf.
- :func:`_walk_levels`, when the trees padded to complete binary trees stay small (shallow
  trees, e.g. isolation trees): a child's position is computed (``2 * position + goes_left``)
  rather than looked up, every tree takes exactly ``depth`` steps with no branch to mispredict,
  and four rows walk side by side so their loads overlap. Below a leaf the padding copies the
  leaf's value, and its splits (NaN thresholds) always go right. It beats the node walk where
  the trees are shallow (the speed-up, measured, is in the README's Performance section).

NaN follows each split's ``missing_left``. With ``float32_rows`` a split tests
``float32(x) <= t``, as scikit-learn's ``DecisionTree`` models do; the thresholds are then
replaced by :func:`float32_bounds`, so the rows need no rounding and every comparison stays
exact. The leaf values are added in tree order.

The walks trust their tables, as compiled code must: :class:`TreeArrays` has checked that every
child index points forward into its own tree (so every walk ends at a leaf, inside the tables)
and that every split reads a column below ``n_features``; :meth:`CompiledTrees.leaf_sum`
checks the width of the rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.scoring.trees import TreeArrays

__all__ = ["CompiledTrees", "float32_bounds"]

Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_ROWS, _INDEX, _FLOATS, _BOOLS = "float64[:, ::1]", "int64[::1]", "float64[::1]", "boolean[::1]"
_SIGNATURES = {
    "nodes": f"void({_ROWS}, {_INDEX}, {_INDEX}, {_FLOATS}, {_INDEX}, {_INDEX}, {_INDEX}, "
    f"{_FLOATS}, {_FLOATS})",
    "levels": f"void({_ROWS}, int64, int64, {_INDEX}, {_FLOATS}, {_BOOLS}, {_INDEX}, "
    f"{_FLOATS}, {_FLOATS})",
}


def _walk_nodes(
    X: Array,
    roots: IndexArray,
    feature: IndexArray,
    threshold: Array,
    left: IndexArray,
    right: IndexArray,
    nan_child: IndexArray,
    value: Array,
    out: Array,
) -> None:  # pragma: no cover - runs compiled; its results are tested against a Python walk
    """``out[i]`` = sum over the trees of the leaf value row ``X[i]`` reaches.

    Node arrays as in :class:`TreeArrays` (``left`` is -1 at a leaf), with ``nan_child`` the
    child a NaN goes to. One 1-D array per field: indexing them compiles to less work than
    rows of a 2-D table (measured in the README's Performance section).
    """
    for i in range(X.shape[0]):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] >= 0:
                x = X[i, feature[node]]
                if x <= threshold[node]:
                    node = left[node]
                elif x != x:
                    node = nan_child[node]
                else:
                    node = right[node]
            total += value[node]
        out[i] = total


def _walk_levels(
    X: Array,
    n_trees: int,
    depth: int,
    feature: IndexArray,
    threshold: Array,
    nan_left: BoolArray,
    starts: IndexArray,
    value: Array,
    out: Array,
) -> None:  # pragma: no cover - runs compiled; its results are tested against a Python walk
    """The same sums over complete trees: tree ``t``'s node at position ``p`` of level ``L``
    is entry ``starts[L] + t * 2**L + p``; its leaf ``p`` is ``value[t * 2**depth + p]``."""
    # Bitwise | and & below, not or/and: short-circuits would branch on each comparison, and
    # mispredicted branches halved the speed on rows the predictor could not learn.
    n = X.shape[0]
    i = 0
    while i < n:
        k = min(4, n - i)  # rows walked side by side
        s0 = s1 = s2 = s3 = 0.0
        for t in range(n_trees):
            p0 = p1 = p2 = p3 = 0
            for level in range(depth):
                base = starts[level] + (t << level)
                e = base + p0
                x = X[i, feature[e]]
                p0 = 2 * p0 + ((x <= threshold[e]) | ((x != x) & nan_left[e]))
                if k > 1:
                    e = base + p1
                    x = X[i + 1, feature[e]]
                    p1 = 2 * p1 + ((x <= threshold[e]) | ((x != x) & nan_left[e]))
                if k > 2:
                    e = base + p2
                    x = X[i + 2, feature[e]]
                    p2 = 2 * p2 + ((x <= threshold[e]) | ((x != x) & nan_left[e]))
                if k > 3:
                    e = base + p3
                    x = X[i + 3, feature[e]]
                    p3 = 2 * p3 + ((x <= threshold[e]) | ((x != x) & nan_left[e]))
            leaves = t << depth
            s0 += value[leaves + p0]
            s1 += value[leaves + p1]
            s2 += value[leaves + p2]
            s3 += value[leaves + p3]
        out[i] = s0
        if k > 1:
            out[i + 1] = s1
        if k > 2:
            out[i + 2] = s2
        if k > 3:
            out[i + 3] = s3
        i += k


@functools.cache
def _compiled(walk: str) -> Callable[..., None]:
    """A walk compiled for its one signature, once per process.

    Compiling takes about half a second; numba's cache (beside this file, or in the user's
    cache directory when the installation is read-only) brings later processes down to a
    fifth of that. Without any writable place, the walk is compiled in memory each time.
    """
    import numba  # imported here: loading numba costs time the commands without trees skip

    function = _walk_levels if walk == "levels" else _walk_nodes
    signature = _SIGNATURES[walk]
    try:
        compiled: Callable[..., None] = numba.njit(signature, nogil=True, cache=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        compiled = numba.njit(signature, nogil=True, cache=False)(function)
    return compiled


def float32_bounds(threshold: npt.ArrayLike) -> Array:
    """Float64 bounds ``b`` such that ``float32(x) <= t`` exactly when ``x <= b``, for every x.

    scikit-learn's ``DecisionTree`` models round rows to float32 and compare them with float64
    thresholds. Comparing the float64 rows with these bounds gives the same answers without
    the rounding: ``b`` is the largest float64 that still rounds (to nearest, ties to even)
    to a float32 ``<= t``.

    Examples
    --------
    >>> b = float32_bounds([0.1, np.inf])
    >>> x = np.array([np.nextafter(b[0], 0), b[0], np.nextafter(b[0], 1), 0.1])
    >>> (x.astype(np.float32).astype(np.float64) <= 0.1).tolist()
    [True, True, False, False]
    >>> (x <= b[0]).tolist(), float(b[1])
    ([True, True, False, False], inf)
    """
    t = np.asarray(threshold, dtype=np.float64)
    top = float(np.finfo(np.float32).max)
    with np.errstate(over="ignore", invalid="ignore"):
        low = t.astype(np.float32)
        above = low.astype(np.float64) > t
        low[above] = np.nextafter(low[above], np.float32(-np.inf))
        # The next float32 above each one; above the largest finite float32 the rounding
        # boundary is 2**128 (the next power of two), whatever float32 calls it.
        lo = low.astype(np.float64)
        hi = np.nextafter(low, np.float32(np.inf)).astype(np.float64)
        hi[lo == top] = 2.0**128
        hi[lo == -np.inf] = -top
        lo[lo == -np.inf] = -(2.0**128)
        mid = lo + (hi - lo) / 2.0
    # At a tie x == mid rounds to the neighbour with an even last bit.
    even = (low.view(np.uint32) & 1) == 0
    even[low == -np.inf] = True
    bound = np.where(even, mid, np.nextafter(mid, -np.inf))
    bound[low == np.inf] = np.inf
    return np.asarray(bound, dtype=np.float64)


class CompiledTrees:
    """A :class:`TreeArrays` packed into tables and walked by compiled code.

    Parameters
    ----------
    trees
        The validated ensemble.
    float32_rows
        Compare rows rounded to float32 with the thresholds, like scikit-learn's
        ``DecisionTree``-based models (IsolationForest); otherwise compare float64 rows.
    walk
        ``"auto"`` (the default): ``"levels"`` when the padded trees stay small (at most
        :attr:`MAX_PADDED` entries) and the trees are about as deep as the deepest one, else
        ``"nodes"``. Either can be asked for; ``"levels"`` is refused beyond ``MAX_PADDED``.

    Attributes
    ----------
    walk : str
        The walk in use, ``"levels"`` or ``"nodes"``.
    split_bounds : ndarray of shape (n_nodes,)
        The bound each split compares a float64 value with (``x <= bound`` goes left): the
        thresholds, or their :func:`float32_bounds` with ``float32_rows``.

    Examples
    --------
    >>> from stream_detector.scoring.trees import LocalTree
    >>> stump = LocalTree(feature=[0, -1, -1], threshold=[0.5, 0.0, 0.0],
    ...                   missing_left=[False, False, False], children_left=[1, -1, -1],
    ...                   children_right=[2, -1, -1], value=[0.0, -1.0, 1.0])
    >>> compiled = CompiledTrees(TreeArrays.from_trees([stump], n_features=1))
    >>> compiled.walk, compiled.leaf_sum(np.array([[0.0], [0.5], [2.0], [np.nan]]))
    ('levels', array([-1., -1.,  1.,  1.]))
    """

    MAX_PADDED = 1 << 18
    """Largest ``n_trees * 2**depth`` walked by levels (about 6 MB of tables)."""

    def __init__(
        self, trees: TreeArrays, *, float32_rows: bool = False, walk: str = "auto"
    ) -> None:
        self.trees = trees
        self.float32_rows = float32_rows
        threshold = float32_bounds(trees.threshold) if float32_rows else trees.threshold
        depth = int(trees.tree_depth.max())
        small = trees.n_trees << depth <= self.MAX_PADDED
        if walk == "auto":
            # Padding pays when the trees are about as deep as the deepest one.
            even = 0.8 * depth <= trees.tree_depth.mean()
            walk = "levels" if small and even else "nodes"
        elif walk not in ("levels", "nodes") or (walk == "levels" and not small):
            raise ValueError(
                f"walk must be 'auto', 'nodes' or 'levels' (trees padded to at most "
                f"{self.MAX_PADDED} leaves); got {walk!r} for depth {depth}"
            )
        self.walk = walk
        self.split_bounds = threshold
        tables = _level_tables if walk == "levels" else _node_tables
        self._tables: tuple[Any, ...] = tables(trees, threshold)
        self._walk = _compiled(walk)

    def leaf_sum(self, X: Array) -> Array:
        """Sum over the trees of the value of the leaf each row of ``X`` reaches.

        Raises
        ------
        ValueError
            If ``X`` is not a 2-D matrix of ``trees.n_features`` columns.
        """
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if not rows.flags.writeable:  # the compiled walks take writable arrays only
            rows = rows.copy()
        if rows.ndim != 2 or rows.shape[1] != self.trees.n_features:
            raise ValueError(
                f"expected rows of {self.trees.n_features} features; got shape {rows.shape}"
            )
        out = np.empty(rows.shape[0], dtype=np.float64)
        self._walk(rows, *self._tables, out)
        return out


def _node_tables(trees: TreeArrays, threshold: Array) -> tuple[Any, ...]:
    """The arguments of :func:`_walk_nodes` after ``X``: writable, contiguous copies."""
    leaf = trees.is_leaf
    left, right = trees.children_left, trees.children_right
    return (
        np.array(trees.roots, dtype=np.int64),
        np.array(np.where(leaf, 0, trees.feature), dtype=np.int64),
        np.array(np.where(leaf, np.inf, threshold), dtype=np.float64),
        np.array(np.where(leaf, -1, left), dtype=np.int64),
        np.array(np.where(leaf, -1, right), dtype=np.int64),
        np.array(np.where(trees.missing_left, left, right), dtype=np.int64),
        np.array(np.where(leaf, trees.value, 0.0), dtype=np.float64),
    )


def _level_tables(trees: TreeArrays, threshold: Array) -> tuple[Any, ...]:
    """The arguments of :func:`_walk_levels` after ``X``: the trees padded level by level."""
    n_trees, depth = trees.n_trees, int(trees.tree_depth.max())
    starts = np.array([(n_trees << level) - n_trees for level in range(depth)], dtype=np.int64)
    size = (n_trees << depth) - n_trees  # entries of all the levels above the leaves
    feature = np.zeros(size, dtype=np.int64)
    bound = np.full(size, np.nan)  # padding: NaN thresholds send everything right
    nan_left = np.zeros(size, dtype=np.bool_)
    value = np.zeros(n_trees << depth, dtype=np.float64)
    leaf = trees.is_leaf
    nodes, tree = trees.roots, np.arange(n_trees)
    position = np.zeros(n_trees, dtype=np.int64)
    for level in range(depth + 1):
        ends = leaf[nodes]
        span = 1 << (depth - level)  # a leaf here covers this many padded leaves
        first = ((tree[ends] << depth) + position[ends] * span)[:, None]
        value[(first + np.arange(span)).ravel()] = np.repeat(trees.value[nodes[ends]], span)
        inner, tree, position = nodes[~ends], tree[~ends], position[~ends]
        if level < depth:
            entry = starts[level] + (tree << level) + position
            feature[entry] = trees.feature[inner]
            bound[entry] = threshold[inner]
            nan_left[entry] = trees.missing_left[inner]
        # Children at 2p (right) and 2p + 1 (left): goes_left adds one.
        nodes = np.concatenate([trees.children_right[inner], trees.children_left[inner]])
        tree = np.concatenate([tree, tree])
        position = np.concatenate([2 * position, 2 * position + 1])
    return (n_trees, depth, feature, bound, nan_left, starts, value)
