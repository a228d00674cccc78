"""Tree ensembles compiled for scoring: the sum of the leaf values each row reaches.

:class:`CompiledTrees` prepares, once, what the walks of :mod:`stream_detector.scoring.traversal`
need, and picks one per batch: bit vectors for a handful of rows (trees of at most 64 leaves),
otherwise a level-by-level walk (over complete trees when they are shallow), in chunks of rows
that stay in cache.

NaN follows each split's ``missing_left``: rows are widened to ``[X with NaN as -inf, X]`` and
a split reads the first copy when NaN goes left, the second (where ``NaN <= t`` is false) when
it goes right. With ``float32_rows`` a split tests ``float32(x) <= t``, as scikit-learn's
``DecisionTree`` models do; the thresholds are then replaced by :func:`float32_bounds`, so the
rows need no rounding and every comparison stays exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stream_detector.scoring.traversal import BitVectors, CompleteLevels, Levels
from stream_detector.scoring.trees import TreeArrays

__all__ = ["CompiledTrees", "float32_bounds"]

Array = npt.NDArray[np.float64]


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
    """A :class:`TreeArrays` packed into tables for fast scoring.

    Parameters
    ----------
    trees
        The validated ensemble.
    float32_rows
        Compare rows rounded to float32 with the thresholds, like scikit-learn's
        ``DecisionTree``-based models (IsolationForest); otherwise compare float64 rows.
    small_batch
        Batches of at most this many rows use bit vectors, when every tree has at most 64
        leaves.
    chunk_elements
        Larger batches are walked in chunks of about this many (tree, row) pairs.

    Examples
    --------
    >>> from stream_detector.scoring.trees import LocalTree
    >>> stump = LocalTree(feature=[0, -1, -1], threshold=[0.5, 0.0, 0.0],
    ...                   missing_left=[False, False, False], children_left=[1, -1, -1],
    ...                   children_right=[2, -1, -1], value=[0.0, -1.0, 1.0])
    >>> compiled = CompiledTrees(TreeArrays.from_trees([stump], n_features=1))
    >>> compiled.leaf_sum(np.array([[0.0], [0.5], [2.0], [np.nan]]))
    array([-1., -1.,  1.,  1.])
    """

    def __init__(
        self,
        trees: TreeArrays,
        *,
        float32_rows: bool = False,
        small_batch: int = 16,
        chunk_elements: int = 32_768,
    ) -> None:
        self.trees = trees
        self.float32_rows = float32_rows
        self.small_batch = small_batch
        self.chunk_elements = chunk_elements
        d = trees.n_features
        column = np.where(trees.is_leaf, 0, trees.feature + d * (~trees.missing_left))
        column = column.astype(np.intp)
        threshold = float32_bounds(trees.threshold) if float32_rows else trees.threshold.copy()
        walk = CompleteLevels if CompleteLevels.fits(trees) else Levels
        self._levels: Levels | CompleteLevels = walk(trees, column, threshold)
        self._bits = BitVectors(trees, column, threshold) if BitVectors.fits(trees) else None

    def leaf_sum(self, X: Array) -> Array:
        """Sum over the trees of the value of the leaf each row of ``X`` reaches.

        ``X`` must be a float64 matrix with ``trees.n_features`` columns (not checked here).
        """
        n, d = X.shape
        wide = np.concatenate((X, X), axis=1)
        missing = np.isnan(X)
        if missing.any():
            wide[:, :d][missing] = -np.inf
        if self._bits is not None and n <= self.small_batch:
            return self._bits.batch_sum(wide)
        out = np.empty(n, dtype=np.float64)
        chunk = max(1, self.chunk_elements // self.trees.n_trees)
        offsets = np.arange(0, n * 2 * d, 2 * d, dtype=np.intp)
        flat = wide.ravel()
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            out[start:stop] = self._levels.chunk_sum(flat, offsets[start:stop])
        return out
