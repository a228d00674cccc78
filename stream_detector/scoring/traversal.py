"""Three ways to find, with numpy, the leaf each row reaches in each tree, and sum their values.

All three read rows widened to ``[X with NaN as -inf, X]`` (flattened) and, per node, the column
of that wide row to compare (see :mod:`stream_detector.scoring.compiled`) and a threshold; a
row goes left when ``value <= threshold``. They differ in how they walk:

- :class:`Levels`: every (tree, row) pair holds its node index; one step moves all pairs one
  level down with ``np.take`` on flat tables, leaves pointing to themselves. Trees are sorted by
  depth, so a step only touches the trees still that deep. Works for any tree shape.
- :class:`CompleteLevels`: each tree is padded to a complete binary tree, level by level, so a
  child's position is computed (``2 * position + goes_left``) instead of looked up. One gather
  fewer per step; used when the padded tables stay small (shallow trees, e.g. isolation trees).
- :class:`BitVectors`: all splits are tested at once; a split that sends a row right clears the
  bits of the leaves of its left subtree, and the lowest bit still set is the row's leaf (the
  QuickScorer idea). A few numpy calls regardless of depth: fastest for a handful of rows, for
  trees of at most 64 leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.scoring.trees import TreeArrays

__all__ = ["BitVectors", "CompleteLevels", "Levels"]

Array = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]

_ALL_BITS = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def _descend(
    flat: Array,
    position: IntpArray,
    offset: IntpArray,
    levels: list[tuple[int, IntpArray, Array, IntpArray | None]],
) -> None:
    """Move ``position`` (trees x rows) down one level per entry of ``levels``, in place.

    Each entry is ``(k, columns, thresholds, children)``: only the first k trees move; the next
    position is ``children[position + goes_left]`` or, without a children table,
    ``2 * position + goes_left``.
    """
    shape = position.shape
    column = np.empty(shape, dtype=np.intp)
    value = np.empty(shape, dtype=np.float64)
    threshold = np.empty(shape, dtype=np.float64)
    left = np.empty(shape, dtype=np.bool_)
    views: dict[int, tuple[npt.NDArray[Any], ...]] = {}
    for k, columns, thresholds, children in levels:
        if k not in views:
            views[k] = (position[:k], column[:k], value[:k], threshold[:k], left[:k])
        at, col, val, thr, goes_left = views[k]
        columns.take(at, out=col, mode="clip")
        col += offset
        flat.take(col, out=val, mode="clip")
        thresholds.take(at, out=thr, mode="clip")
        np.less_equal(val, thr, out=goes_left)
        if children is None:
            at <<= 1
        at += goes_left
        if children is not None:
            children.take(at, out=at, mode="clip")


class Levels:
    """Level-by-level walk over explicit child tables; any tree shape.

    Node ``k`` appears twice in the tables, at ``2k`` (going right) and ``2k + 1`` (going left),
    so ``2k + goes_left`` indexes its child; a leaf's two children are itself.
    """

    def __init__(self, trees: TreeArrays, column: IntpArray, threshold: Array) -> None:
        leaf = trees.is_leaf
        own = 2 * np.arange(trees.n_nodes, dtype=np.intp)
        children = np.empty(2 * trees.n_nodes, dtype=np.intp)
        children[0::2] = np.where(leaf, own, 2 * trees.children_right)
        children[1::2] = np.where(leaf, own, 2 * trees.children_left)
        columns, thresholds = np.repeat(column, 2), np.repeat(threshold, 2)
        order = np.argsort(-trees.tree_depth, kind="stable")
        depth = trees.tree_depth[order]
        self._roots = (2 * trees.roots[order]).astype(np.intp)
        self._values = np.repeat(np.where(leaf, trees.value, 0.0), 2)
        self._levels: list[tuple[int, IntpArray, Array, IntpArray | None]] = [
            (int(np.count_nonzero(depth > level)), columns, thresholds, children)
            for level in range(int(depth[0]))
        ]

    def chunk_sum(self, flat: Array, offset: IntpArray) -> Array:
        """Leaf sums of the rows starting at ``flat[offset]``."""
        position = np.empty((self._roots.shape[0], offset.shape[0]), dtype=np.intp)
        position[...] = self._roots[:, None]
        _descend(flat, position, offset, self._levels)
        return np.asarray(self._values.take(position).sum(axis=0), dtype=np.float64)


class CompleteLevels:
    """Level-by-level walk over trees padded to complete binary trees of the same depth.

    At level ``L`` tree ``t``'s node at position ``p`` (``0 <= p < 2**L``) is entry
    ``t * 2**L + p`` of that level's tables; its children are at positions ``2p`` (right) and
    ``2p + 1`` (left), entry ``2 * entry + goes_left`` of the next level. Below a leaf the
    padding copies the leaf's value and its splits (NaN thresholds) always go right.
    """

    MAX_ENTRIES = 1 << 18  # trees x 2**depth: about 6 MB of tables

    @classmethod
    def fits(cls, trees: TreeArrays) -> bool:
        """Whether padding is small and pays: little memory, and not much deeper on average."""
        depth = int(trees.tree_depth.max())
        size = trees.n_trees << depth
        return bool(size <= cls.MAX_ENTRIES and 0.8 * depth <= trees.tree_depth.mean())

    def __init__(self, trees: TreeArrays, column: IntpArray, threshold: Array) -> None:
        n_trees, depth = trees.n_trees, int(trees.tree_depth.max())
        columns = [np.zeros(n_trees << level, dtype=np.intp) for level in range(depth)]
        thresholds = [np.full(n_trees << level, np.nan) for level in range(depth)]
        values = np.zeros(n_trees << depth, dtype=np.float64)
        leaf = trees.is_leaf
        nodes, tree = trees.roots, np.arange(n_trees)
        position = np.zeros(n_trees, dtype=np.intp)
        for level in range(depth + 1):
            ends = leaf[nodes]
            span = 1 << (depth - level)  # a leaf here covers this many padded leaves
            first = ((tree[ends] << depth) + position[ends] * span)[:, None]
            values[(first + np.arange(span)).ravel()] = np.repeat(trees.value[nodes[ends]], span)
            inner, tree, position = nodes[~ends], tree[~ends], position[~ends]
            if level < depth:
                entry = (tree << level) + position
                columns[level][entry] = column[inner]
                thresholds[level][entry] = threshold[inner]
            nodes = np.concatenate([trees.children_right[inner], trees.children_left[inner]])
            tree = np.concatenate([tree, tree])
            position = np.concatenate([2 * position, 2 * position + 1])
        self._n_trees = n_trees
        self._values = values
        self._levels: list[tuple[int, IntpArray, Array, IntpArray | None]] = [
            (n_trees, columns[level], thresholds[level], None) for level in range(depth)
        ]

    def chunk_sum(self, flat: Array, offset: IntpArray) -> Array:
        """Leaf sums of the rows starting at ``flat[offset]``."""
        position = np.empty((self._n_trees, offset.shape[0]), dtype=np.intp)
        position[...] = np.arange(self._n_trees, dtype=np.intp)[:, None]
        _descend(flat, position, offset, self._levels)
        return np.asarray(self._values.take(position).sum(axis=0), dtype=np.float64)


class BitVectors:
    """All splits at once with 64-bit leaf masks, for trees of at most 64 leaves.

    Leaves are numbered left to right within each tree; a split's mask clears the bits of the
    leaves of its left subtree. A tree that is a single leaf gets a split that clears nothing.
    """

    @staticmethod
    def fits(trees: TreeArrays) -> bool:
        """Whether every tree has at most 64 leaves."""
        return bool(trees.tree_leaves.max() <= 64)

    def __init__(self, trees: TreeArrays, column: IntpArray, threshold: Array) -> None:
        left, right = trees.children_left.tolist(), trees.children_right.tolist()
        inner: list[int] = []
        masks: list[int] = []
        starts: list[int] = []
        leaves: list[int] = []
        firsts: list[int] = []
        for root in trees.roots.tolist():
            starts.append(len(inner))
            first = len(leaves)
            firsts.append(first)
            stack, low = [(root, False)], {}
            while stack:  # depth first, left subtree before right
                node, left_done = stack.pop()
                if left[node] < 0:
                    leaves.append(node)
                elif not left_done:
                    low[node] = len(leaves)
                    stack += [(node, True), (left[node], False)]
                else:
                    inner.append(node)
                    masks.append(_clear(low[node] - first, len(leaves) - first))
                    stack.append((right[node], False))
            if starts[-1] == len(inner):
                inner.append(-1)
                masks.append(int(_ALL_BITS))
        nodes = np.array(inner, dtype=np.intp)
        self._columns = np.where(nodes < 0, 0, column[nodes])
        self._thresholds = np.where(nodes < 0, np.inf, threshold[nodes])
        self._masks = np.array(masks, dtype=np.uint64)
        self._starts = np.array(starts, dtype=np.intp)
        self._values = trees.value[np.array(leaves, dtype=np.intp)]
        self._firsts = np.array(firsts, dtype=np.intp)

    def batch_sum(self, wide: Array) -> Array:
        """Leaf sums of the widened rows ``wide`` (2-D)."""
        goes_left = wide.take(self._columns, axis=1) <= self._thresholds
        alive = np.bitwise_and.reduceat(
            np.where(goes_left, _ALL_BITS, self._masks), self._starts, axis=1
        )
        lowest = alive & (~alive + np.uint64(1))
        index = np.frexp(lowest.astype(np.float64))[1] - 1
        return np.asarray(self._values.take(index + self._firsts).sum(axis=1), np.float64)


def _clear(lo: int, hi: int) -> int:
    """All 64 bits set except bits ``lo`` to ``hi - 1``."""
    return int(_ALL_BITS) ^ (((1 << (hi - lo)) - 1) << lo)
