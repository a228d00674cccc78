"""Tree ensembles as flat arrays: the payload form shared by the tree scorers.

All nodes of all trees live in parallel arrays of length ``n_nodes``; tree ``t`` holds the nodes
``roots[t]`` up to (not including) ``roots[t + 1]``, its root first. A node is a leaf when its
children are ``-1``; otherwise it sends a row to ``children_left`` when
``x[feature] <= threshold``, to ``children_right`` when the value is larger, and a NaN value to
the left exactly when ``missing_left`` is true. Leaves carry ``value``, which a scorer sums over
the trees (log-odds for gradient boosting, path lengths for an isolation forest). The optional
``cover`` holds each node's training sample count (or weight): the explanations of
:mod:`stream_detector.scoring.treeshap` need it, scoring does not.

:meth:`TreeArrays.from_payload` checks everything a file could get wrong (shapes, kinds, child
indices, features, thresholds, that every tree is a proper tree) before any row is scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError
from stream_detector.scoring.payload import get_array

__all__ = ["LocalTree", "TreeArrays"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LocalTree:
    """One tree with node indices local to it (root 0, ``-1`` for no child)."""

    feature: npt.ArrayLike
    threshold: npt.ArrayLike
    missing_left: npt.ArrayLike
    children_left: npt.ArrayLike
    children_right: npt.ArrayLike
    value: npt.ArrayLike
    cover: npt.ArrayLike | None = None


@dataclass(frozen=True, eq=False)
class TreeArrays:
    """A forest of binary decision trees in flat arrays (see the module docstring).

    Build one with :meth:`from_trees` or :meth:`from_payload`; both validate.

    Attributes
    ----------
    roots : ndarray of shape (n_trees,)
        Index of each tree's root; trees are contiguous and in order.
    feature, threshold, missing_left, children_left, children_right, value : ndarray
        Per node, of shape (n_nodes,); children are global node indices.
    cover : ndarray of shape (n_nodes,) or None
        Training samples (or their weight) that reached each node, positive; None when the
        trees were compiled without them (bundles written before covers were kept).
    node_depth : ndarray of shape (n_nodes,)
        Edges from the node's root (computed).
    tree_depth, tree_leaves : ndarray of shape (n_trees,)
        Longest root-to-leaf path and leaf count of each tree (computed).

    Examples
    --------
    >>> stump = LocalTree(feature=[0, -1, -1], threshold=[0.5, 0.0, 0.0],
    ...                   missing_left=[True, False, False], children_left=[1, -1, -1],
    ...                   children_right=[2, -1, -1], value=[0.0, -1.0, 1.0])
    >>> trees = TreeArrays.from_trees([stump, stump], n_features=1)
    >>> trees.n_trees, trees.roots.tolist(), trees.children_right.tolist()
    (2, [0, 3], [2, -1, -1, 5, -1, -1])
    >>> trees.tree_depth.tolist(), trees.tree_leaves.tolist()
    ([1, 1], [2, 2])
    """

    NAMES = (
        "roots",
        "feature",
        "threshold",
        "missing_left",
        "children_left",
        "children_right",
        "value",
    )

    roots: IntArray
    feature: IntArray
    threshold: FloatArray
    missing_left: BoolArray
    children_left: IntArray
    children_right: IntArray
    value: FloatArray
    n_features: int
    inf_threshold: bool = False
    cover: FloatArray | None = None
    node_depth: IntArray = field(init=False, repr=False)
    tree_depth: IntArray = field(init=False, repr=False)
    tree_leaves: IntArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dtypes = {"threshold": np.float64, "missing_left": np.bool_, "value": np.float64}
        for name in self.NAMES:  # private read-only copies: compiled tables are built from them
            array: npt.NDArray[Any] = np.array(
                getattr(self, name), dtype=dtypes.get(name, np.int64)
            )
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if self.cover is not None:
            cover = np.array(self.cover, dtype=np.float64)
            cover.flags.writeable = False
            object.__setattr__(self, "cover", cover)
        self._validate()

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        """Number of nodes over all trees."""
        return int(self.feature.size)

    @property
    def is_leaf(self) -> BoolArray:
        """Whether each node is a leaf."""
        return np.asarray(self.children_left < 0)

    @classmethod
    def from_trees(
        cls, trees: Sequence[LocalTree], *, n_features: int, inf_threshold: bool = False
    ) -> TreeArrays:
        """Concatenate trees with local node indices, offsetting their children."""
        if not trees:
            raise BundleError("a tree ensemble needs at least one tree; got none")
        sizes = [len(np.asarray(tree.feature)) for tree in trees]
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

        def children(name: str) -> IntArray:
            parts = [np.asarray(getattr(t, name), dtype=np.int64) for t in trees]
            return np.concatenate(
                [np.where(p < 0, -1, p + r) for p, r in zip(parts, roots, strict=True)]
            )

        def joined(name: str, dtype: type[np.generic]) -> npt.NDArray[Any]:
            return np.concatenate([np.asarray(getattr(t, name), dtype=dtype) for t in trees])

        covers = [tree.cover for tree in trees]
        if any(c is None for c in covers) and not all(c is None for c in covers):
            raise BundleError("either every tree carries node covers or none does")
        return cls(
            roots=roots,
            cover=None if covers[0] is None else joined("cover", np.float64),
            feature=joined("feature", np.int64),
            threshold=joined("threshold", np.float64),
            missing_left=joined("missing_left", np.bool_),
            children_left=children("children_left"),
            children_right=children("children_right"),
            value=joined("value", np.float64),
            n_features=n_features,
            inf_threshold=inf_threshold,
        )

    @classmethod
    def from_payload(
        cls, arrays: Mapping[str, npt.ArrayLike], *, n_features: int, inf_threshold: bool = False
    ) -> TreeArrays:
        """Read and validate the arrays of :meth:`to_payload`; BundleError if they are wrong.

        ``inf_threshold`` allows a ``+inf`` threshold (a split that sends only NaN right);
        other thresholds must be finite. The array ``cover`` is optional.
        """
        feature = get_array(arrays, "feature", "int")
        n = feature.shape[0]
        cover = get_array(arrays, "cover", "float", length=n) if "cover" in arrays else None
        return cls(
            cover=cover,
            roots=get_array(arrays, "roots", "int"),
            feature=feature,
            threshold=get_array(arrays, "threshold", "float", length=n),
            missing_left=get_array(arrays, "missing_left", "bool", length=n),
            children_left=get_array(arrays, "children_left", "int", length=n),
            children_right=get_array(arrays, "children_right", "int", length=n),
            value=get_array(arrays, "value", "float", length=n),
            n_features=n_features,
            inf_threshold=inf_threshold,
        )

    def to_payload(self) -> dict[str, npt.NDArray[Any]]:
        """The named arrays of the ensemble (copies), with ``cover`` when there are covers."""
        arrays = {name: np.array(getattr(self, name)) for name in self.NAMES}
        if self.cover is not None:
            arrays["cover"] = np.array(self.cover)
        return arrays

    def _validate(self) -> None:
        n, roots = self.n_nodes, self.roots
        shapes = {name: getattr(self, name).shape for name in self.NAMES[1:]}
        if roots.ndim != 1 or any(shape != (n,) for shape in shapes.values()):
            raise BundleError(f"tree node arrays must be 1-D of one length; got {shapes}")
        if n == 0 or roots.shape[0] == 0 or roots[0] != 0:
            raise BundleError(
                f"tree arrays need at least one node and roots starting at 0; "
                f"got {n} nodes and roots {roots[:3].tolist()}"
            )
        if np.any(np.diff(roots) <= 0) or roots[-1] >= n:
            raise BundleError(f"tree roots must increase strictly and stay below {n}")
        left, right = self.children_left, self.children_right
        leaf = left < 0
        if np.any(left < -1) or np.any(right < -1) or np.any(leaf != (right < 0)):
            raise BundleError("every tree node needs two children (indices >= 0) or none (-1)")
        inner = np.flatnonzero(~leaf)
        end = np.append(roots[1:], n)[np.searchsorted(roots, inner, side="right") - 1]
        for side in (left[inner], right[inner]):
            if np.any(side <= inner) or np.any(side >= end):
                raise BundleError(
                    "tree child indices must point forward to a node of the same tree"
                )
        parents = np.bincount(np.concatenate([left[inner], right[inner]]), minlength=n)
        expected = np.ones(n, dtype=np.int64)
        expected[roots] = 0
        if not np.array_equal(parents, expected):
            raise BundleError("every tree node except a root must have exactly one parent")
        feature = self.feature[inner]
        if np.any(feature < 0) or np.any(feature >= self.n_features):
            raise BundleError(
                f"split features must lie in [0, {self.n_features}); "
                f"got {feature.min()}..{feature.max()}"
            )
        threshold = self.threshold[inner]
        allowed = np.isfinite(threshold)
        if self.inf_threshold:
            allowed |= threshold == np.inf
        if not allowed.all():
            what = "finite or +inf" if self.inf_threshold else "finite"
            raise BundleError(f"split thresholds must be {what}; got {threshold[~allowed][0]}")
        if not np.isfinite(self.value[leaf]).all():
            raise BundleError("leaf values must be finite")
        if self.cover is not None:
            cover = self.cover
            if cover.shape != (n,) or not (np.isfinite(cover).all() and np.all(cover > 0)):
                raise BundleError(
                    f"tree node covers must be {n} finite positive numbers; got shape "
                    f"{cover.shape}, min {cover.min() if cover.size else None}"
                )
        depth = np.zeros(n, dtype=np.int64)
        frontier, level = roots[~leaf[roots]], 0
        while frontier.size:
            level += 1
            frontier = np.concatenate([left[frontier], right[frontier]])
            depth[frontier] = level
            frontier = frontier[~leaf[frontier]]
        object.__setattr__(self, "node_depth", depth)
        object.__setattr__(self, "tree_depth", np.maximum.reduceat(depth, roots))
        object.__setattr__(self, "tree_leaves", np.add.reduceat(leaf.astype(np.int64), roots))
