"""Path-dependent TreeSHAP: exact Shapley values of tree ensembles, from the compiled trees.

For one row ``x`` and one tree, the value of a set ``S`` of features is the tree's expected
output when the features in ``S`` are known and the others are not: at a split on a known
feature the row follows its branch, at a split on an unknown one both branches are taken,
weighted by the share of the training samples (the node *cover*) that went each way. The
Shapley values of that game add up exactly to the tree's output for ``x`` minus its expected
output over the training data (no feature known). Lundberg, Erion and Lee (2018), "Consistent
individualized feature attribution for tree ensembles", Algorithm 2, computes them in
``O(leaves * depth**2)`` per tree by following each root-to-leaf path once, keeping the
weights of the path's unique features as it extends and unwinds them; :func:`_tree_shap` is
that algorithm with an explicit stack, compiled with numba like the scoring walks.

A row is routed exactly as :mod:`stream_detector.scoring.compiled` routes it (``x <= bound``,
NaN to its learnt side), so the attributions add up to the very leaf sum the scorer computes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from stream_detector.scoring.compiled import CompiledTrees

__all__ = ["TreeExplainer"]

Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

_SIGNATURE = (
    "void(float64[:, ::1], int64[::1], int64[::1], float64[::1], int64[::1], int64[::1], "
    "int64[::1], float64[::1], float64[::1], int64, float64[:, ::1])"
)


def _tree_shap(
    X: Array,
    roots: IndexArray,
    feature: IndexArray,
    threshold: Array,
    left: IndexArray,
    right: IndexArray,
    nan_child: IndexArray,
    value: Array,
    cover: Array,
    max_depth: int,
    phi: Array,
) -> None:  # pragma: no cover - runs compiled; tested against brute-force Shapley values
    """Add each row's Shapley values over all trees to ``phi`` (shape ``(n_rows, n_features)``).

    The path of unique features lives in four parallel arrays (feature, zero fraction, one
    fraction, permutation weight); a node's copy starts right after its parent's, so a frame
    popped from the stack still finds its parent's path intact.
    """
    size = (max_depth + 2) * (max_depth + 3) // 2 + max_depth + 2
    path_feature = np.empty(size, dtype=np.int64)
    zero = np.empty(size, dtype=np.float64)
    one = np.empty(size, dtype=np.float64)
    weight = np.empty(size, dtype=np.float64)
    cap = 2 * max_depth + 4
    inverse = 1.0 / np.arange(1.0, max_depth + 3.0)  # inverse[i] = 1 / (i + 1)
    s_node = np.empty(cap, dtype=np.int64)
    s_parent = np.empty(cap, dtype=np.int64)
    s_depth = np.empty(cap, dtype=np.int64)
    s_zero = np.empty(cap, dtype=np.float64)
    s_one = np.empty(cap, dtype=np.float64)
    s_feature = np.empty(cap, dtype=np.int64)
    for r in range(X.shape[0]):
        for t in range(roots.shape[0]):
            s_node[0], s_parent[0], s_depth[0] = roots[t], -1, 0
            s_zero[0], s_one[0], s_feature[0] = 1.0, 1.0, -1
            top = 1
            while top > 0:
                top -= 1
                node, parent, depth = s_node[top], s_parent[top], s_depth[top]
                pz, po, pf = s_zero[top], s_one[top], s_feature[top]
                off = parent + depth + 1
                for k in range(depth):  # the parent's path (after its unwinding)
                    path_feature[off + k] = path_feature[parent + k]
                    zero[off + k] = zero[parent + k]
                    one[off + k] = one[parent + k]
                    weight[off + k] = weight[parent + k]
                # Extend the path by (pf, pz, po).
                path_feature[off + depth] = pf
                zero[off + depth] = pz
                one[off + depth] = po
                weight[off + depth] = 1.0 if depth == 0 else 0.0
                share = inverse[depth]  # 1 / (depth + 1)
                for i in range(depth - 1, -1, -1):
                    w = weight[off + i] * share
                    weight[off + i + 1] += po * w * (i + 1)
                    weight[off + i] = pz * w * (depth - i)
                if left[node] < 0:  # a leaf: credit every feature on the path
                    scale = (depth + 1) * value[node]
                    # For a feature off the row's path (one fraction 0) the unwound sum is the
                    # same weighted sum of the path's weights, divided by its zero fraction:
                    # computed once per leaf.
                    cold_sum = -1.0
                    for k in range(1, depth + 1):
                        ko, kz = one[off + k], zero[off + k]
                        total = 0.0
                        if ko == 0.0 and cold_sum >= 0.0:
                            total = cold_sum / kz
                        elif ko != 0.0:
                            nxt = weight[off + depth]
                            step = kz / ko
                            for i in range(depth - 1, -1, -1):
                                tmp = nxt * inverse[i]
                                total += tmp
                                nxt = weight[off + i] - tmp * step * (depth - i)
                            total /= ko
                        else:
                            for i in range(depth - 1, -1, -1):
                                total += weight[off + i] * inverse[depth - i - 1]
                            cold_sum = total
                            total /= kz
                        phi[r, path_feature[off + k]] += total * (ko - kz) * scale
                    continue
                split = feature[node]
                x = X[r, split]
                if x <= threshold[node]:
                    hot = left[node]
                elif x != x:
                    hot = nan_child[node]
                else:
                    hot = right[node]
                cold = right[node] if hot == left[node] else left[node]
                iz = 1.0
                io = 1.0
                for k in range(depth + 1):
                    if path_feature[off + k] == split:
                        # Split on this feature before: unwind it, to extend it again below.
                        iz, io = zero[off + k], one[off + k]
                        nxt = weight[off + depth]
                        if io != 0.0:
                            up, down = (depth + 1) / io, iz * inverse[depth]
                            for i in range(depth - 1, -1, -1):
                                tmp = weight[off + i]
                                weight[off + i] = nxt * up * inverse[i]
                                nxt = tmp - weight[off + i] * down * (depth - i)
                        else:
                            up = (depth + 1) / iz
                            for i in range(depth - 1, -1, -1):
                                weight[off + i] *= up * inverse[depth - i - 1]
                        for i in range(k, depth):
                            path_feature[off + i] = path_feature[off + i + 1]
                            zero[off + i] = zero[off + i + 1]
                            one[off + i] = one[off + i + 1]
                        depth -= 1
                        break
                s_node[top], s_parent[top], s_depth[top] = cold, off, depth + 1
                s_zero[top] = cover[cold] / cover[node] * iz
                s_one[top], s_feature[top] = 0.0, split
                top += 1
                s_node[top], s_parent[top], s_depth[top] = hot, off, depth + 1
                s_zero[top] = cover[hot] / cover[node] * iz
                s_one[top], s_feature[top] = io, split
                top += 1


@functools.cache
def _compiled() -> Callable[..., None]:
    """:func:`_tree_shap` compiled once per process (cached on disk when possible)."""
    import numba

    # error_model="numpy": no zero-division checks (every divisor is a positive cover or a
    # fraction tested non-zero first), which the hot loops would otherwise pay for.
    try:
        compiled: Callable[..., None] = numba.njit(
            _SIGNATURE, nogil=True, cache=True, error_model="numpy"
        )(_tree_shap)
    except RuntimeError:  # no writable cache location
        compiled = numba.njit(_SIGNATURE, nogil=True, cache=False, error_model="numpy")(_tree_shap)
    return compiled


class TreeExplainer:
    """Shapley values of the leaf sum of a compiled tree ensemble, per row and feature.

    Parameters
    ----------
    compiled
        The scorer's compiled trees; their :class:`~stream_detector.scoring.trees.TreeArrays`
        must carry node covers (``cover``).

    Attributes
    ----------
    expected : float
        The leaf sum expected over the training data: the sum over the trees of the leaf
        values weighted by the share of the training samples that reached each leaf.

    Examples
    --------
    >>> from stream_detector.scoring.trees import LocalTree, TreeArrays
    >>> tree = LocalTree(feature=[0, 1, -1, -1, -1], threshold=[0.5, 0.5, 0, 0, 0],
    ...                  missing_left=[False] * 5, children_left=[1, 3, -1, -1, -1],
    ...                  children_right=[2, 4, -1, -1, -1], value=[0, 0, 4.0, 0.0, 2.0],
    ...                  cover=[8, 4, 4, 2, 2])
    >>> trees = TreeArrays.from_trees([tree], n_features=2)
    >>> explainer = TreeExplainer(CompiledTrees(trees))
    >>> explainer.expected
    2.5
    >>> phi = explainer.shap_values(np.array([[0.0, 1.0]]))
    >>> phi.tolist(), float(phi.sum() + explainer.expected)
    ([[-1.25, 0.75]], 2.0)
    """

    def __init__(self, compiled: CompiledTrees) -> None:
        trees = compiled.trees
        if trees.cover is None:
            raise ValueError("TreeSHAP needs node covers; these trees carry none")
        self.n_features = trees.n_features
        threshold = compiled.split_bounds
        leaf = trees.is_leaf
        left, right = trees.children_left, trees.children_right
        self._tables = (
            np.array(trees.roots, dtype=np.int64),
            np.array(np.where(leaf, 0, trees.feature), dtype=np.int64),
            np.array(np.where(leaf, np.inf, threshold), dtype=np.float64),
            np.array(np.where(leaf, -1, left), dtype=np.int64),
            np.array(np.where(leaf, -1, right), dtype=np.int64),
            np.array(np.where(trees.missing_left, left, right), dtype=np.int64),
            np.array(np.where(leaf, trees.value, 0.0), dtype=np.float64),
            np.array(trees.cover, dtype=np.float64),
            int(trees.tree_depth.max()),
        )
        # Expected value of each node, bottom-up (children come after their parent).
        cover = trees.cover
        node_value = np.where(leaf, trees.value, 0.0)
        for level in range(int(trees.tree_depth.max()) - 1, -1, -1):
            inner = np.flatnonzero((trees.node_depth == level) & ~leaf)
            lc, rc = left[inner], right[inner]
            node_value[inner] = (cover[lc] * node_value[lc] + cover[rc] * node_value[rc]) / cover[
                inner
            ]
        self.expected = float(node_value[trees.roots].sum())
        self._shap = _compiled()

    def shap_values(self, X: Array) -> Array:
        """Shapley values of the leaf sum, shape ``(n_rows, n_features)``.

        Each row's values add up to its leaf sum minus :attr:`expected`.
        """
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if not rows.flags.writeable:
            rows = rows.copy()
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features; got {rows.shape}")
        phi = np.zeros((rows.shape[0], self.n_features), dtype=np.float64)
        self._shap(rows, *self._tables, phi)
        return phi
