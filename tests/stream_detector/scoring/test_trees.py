"""Flat tree arrays: structure computed right, every malformed payload refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from stream_detector.errors import BundleError
from stream_detector.scoring.compiled import CompiledTrees
from stream_detector.scoring.trees import LocalTree, TreeArrays

# Two trees: a stump on feature 0, and a tree splitting on feature 1 then feature 2.
#   tree 0: 0 -> (1, 2)             tree 1: 3 -> (4, 5), 4 -> (6, 7)
VALID: dict[str, np.ndarray] = {
    "roots": np.array([0, 3]),
    "feature": np.array([0, -1, -1, 1, 2, -1, -1, -1]),
    "threshold": np.array([0.5, 0, 0, 1.5, -1.0, 0, 0, 0]),
    "missing_left": np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype=bool),
    "children_left": np.array([1, -1, -1, 4, 6, -1, -1, -1]),
    "children_right": np.array([2, -1, -1, 5, 7, -1, -1, -1]),
    "value": np.array([0, -1.0, 1.0, 0, 0, 3.0, 10.0, 20.0]),
}


def _with(*edits: tuple[str, int, Any]) -> dict[str, np.ndarray]:
    """A copy of VALID with ``arrays[name][index] = value`` for each edit."""
    arrays = {key: array.copy() for key, array in VALID.items()}
    for name, index, value in edits:
        arrays[name] = arrays[name].astype(np.result_type(arrays[name], np.asarray(value)))
        arrays[name][index] = value
    return arrays


def test_structure_of_the_example() -> None:
    trees = TreeArrays.from_payload(VALID, n_features=3)
    assert trees.n_trees == 2
    assert trees.n_nodes == 8
    assert trees.node_depth.tolist() == [0, 1, 1, 0, 1, 1, 2, 2]
    assert trees.tree_depth.tolist() == [1, 2]
    assert trees.tree_leaves.tolist() == [2, 3]
    assert {k: v.tolist() for k, v in trees.to_payload().items()} == {
        k: v.tolist() for k, v in VALID.items()
    }


def test_leaf_sum_follows_the_splits_by_hand() -> None:
    compiled = CompiledTrees(TreeArrays.from_payload(VALID, n_features=3))
    rows = np.array(
        [
            [0.0, 2.0, 9.0],  # tree 0 left (-1); tree 1 right (3)
            [1.0, 1.0, -2.0],  # right (1); left then left (10)
            [np.nan, 1.5, np.nan],  # NaN left (-1); 1.5 <= 1.5 left, NaN left (10)
            [np.inf, -np.inf, -1.0],  # right (1); left, -1 <= -1 left (10)
        ]
    )
    np.testing.assert_array_equal(compiled.leaf_sum(rows), [2.0, 11.0, 9.0, 11.0])


def test_depths_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    forest = IsolationForest(n_estimators=5, max_samples=64, random_state=0)
    forest.fit(rng.normal(size=(300, 3)))
    locals_ = [
        LocalTree(
            feature=np.maximum(e.tree_.feature, -1),
            threshold=e.tree_.threshold,
            missing_left=e.tree_.missing_go_to_left.astype(bool),
            children_left=e.tree_.children_left,
            children_right=e.tree_.children_right,
            value=e.tree_.n_node_samples.astype(float),
        )
        for e in forest.estimators_
    ]
    trees = TreeArrays.from_trees(locals_, n_features=3)
    expected = np.concatenate([e.tree_.compute_node_depths() - 1 for e in forest.estimators_])
    np.testing.assert_array_equal(trees.node_depth, expected)
    assert trees.tree_depth.tolist() == [e.tree_.max_depth for e in forest.estimators_]
    assert trees.tree_leaves.tolist() == [e.tree_.n_leaves for e in forest.estimators_]


BAD: dict[str, tuple[Callable[[], dict[str, np.ndarray]], str]] = {
    "missing array": (
        lambda: {k: v for k, v in VALID.items() if k != "value"},
        "scorer array 'value' is missing",
    ),
    "short array": (
        lambda: {**VALID, "threshold": VALID["threshold"][:5]},
        "scorer array 'threshold' must hold 8 values; got 5",
    ),
    "float children": (
        lambda: {**VALID, "children_left": VALID["children_left"].astype(float)},
        "scorer array 'children_left' must be a 1-D int array; got float64",
    ),
    "2-D values": (
        lambda: {**VALID, "value": VALID["value"].reshape(2, 4)},
        "scorer array 'value' must be a 1-D float array; got float64 of shape (2, 4)",
    ),
    "roots not at 0": (lambda: _with(("roots", 0, 1)), "roots starting at 0"),
    "roots decreasing": (
        lambda: {**VALID, "roots": np.array([0, 3, 2])},
        "tree roots must increase strictly and stay below 8",
    ),
    "root out of range": (lambda: _with(("roots", 1, 8)), "stay below 8"),
    "no trees": (lambda: {**VALID, "roots": np.zeros(0, dtype=np.int64)}, "roots starting at 0"),
    "child out of range": (
        lambda: _with(("children_right", 4, 8)),
        "tree child indices must point forward to a node of the same tree",
    ),
    "child negative": (
        lambda: _with(("children_right", 4, -5)),
        "every tree node needs two children (indices >= 0) or none (-1)",
    ),
    "child pointing back (a cycle)": (
        lambda: _with(("children_left", 4, 3)),
        "must point forward to a node of the same tree",
    ),
    "child in another tree": (
        lambda: _with(("children_right", 0, 5)),
        "must point forward to a node of the same tree",
    ),
    "one child only": (lambda: _with(("children_left", 0, -1)), "two children"),
    "two parents": (
        lambda: _with(("children_right", 4, 5)),
        "every tree node except a root must have exactly one parent",
    ),
    "orphan node": (
        lambda: _with(("children_left", 4, -1), ("children_right", 4, -1)),
        "exactly one parent",
    ),
    "feature out of range": (lambda: _with(("feature", 4, 3)), "split features must lie in [0, 3)"),
    "negative feature": (lambda: _with(("feature", 0, -1)), "split features must lie in [0, 3)"),
    "NaN threshold": (lambda: _with(("threshold", 3, np.nan)), "split thresholds must be finite"),
    "infinite threshold": (
        lambda: _with(("threshold", 3, np.inf)),
        "split thresholds must be finite",
    ),
    "infinite leaf value": (lambda: _with(("value", 6, np.inf)), "leaf values must be finite"),
    "zero cover": (
        lambda: {**VALID, "cover": np.array([4.0, 2, 2, 4, 2, 0, 1, 1])},
        "tree node covers must be 8 finite positive numbers",
    ),
    "NaN cover": (
        lambda: {**VALID, "cover": np.array([4.0, 2, 2, 4, 2, 2, np.nan, 1])},
        "tree node covers must be 8 finite positive numbers",
    ),
    "short cover": (
        lambda: {**VALID, "cover": np.ones(7)},
        "scorer array 'cover' must hold 8 values",
    ),
}


def test_covers_are_optional_and_round_trip() -> None:
    assert TreeArrays.from_payload(VALID, n_features=3).cover is None
    assert "cover" not in TreeArrays.from_payload(VALID, n_features=3).to_payload()
    cover = np.array([4.0, 2, 2, 4, 2, 2, 1, 1])
    trees = TreeArrays.from_payload({**VALID, "cover": cover}, n_features=3)
    np.testing.assert_array_equal(trees.to_payload()["cover"], cover)


def test_covers_on_some_trees_only_are_refused() -> None:
    with_cover = LocalTree([-1], [0.0], [False], [-1], [-1], [1.0], cover=[3.0])
    without = LocalTree([-1], [0.0], [False], [-1], [-1], [1.0])
    with pytest.raises(BundleError, match="every tree carries node covers or none"):
        TreeArrays.from_trees([with_cover, without], n_features=1)


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_payloads_are_bundle_errors(case: str) -> None:
    make, message = BAD[case]
    with pytest.raises(BundleError) as info:
        TreeArrays.from_payload(make(), n_features=3)
    assert message in str(info.value)


def test_inf_threshold_only_where_allowed() -> None:
    arrays = _with(("threshold", 3, np.inf))
    assert TreeArrays.from_payload(arrays, n_features=3, inf_threshold=True).n_trees == 2
    with pytest.raises(BundleError, match=r"split thresholds must be finite or \+inf; got -inf"):
        TreeArrays.from_payload(_with(("threshold", 3, -np.inf)), n_features=3, inf_threshold=True)


def test_values_at_internal_nodes_and_thresholds_at_leaves_are_ignored() -> None:
    arrays = _with(("threshold", 1, np.nan))
    arrays["value"][0] = np.inf
    rows = np.array([[0.0, 2.0, 9.0]])
    assert CompiledTrees(TreeArrays.from_payload(arrays, n_features=3)).leaf_sum(rows)[0] == 2.0


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(VALID)),
    index=st.integers(0, 7),
    value=st.one_of(st.integers(-3, 10), st.floats(allow_nan=True, allow_infinity=True, width=64)),
)
def test_any_corruption_is_refused_or_scores_safely(name: str, index: int, value: Any) -> None:
    """Outside input: a corrupted payload raises BundleError or yields a scorable ensemble."""
    arrays = {key: array.copy() for key, array in VALID.items()}
    target = arrays[name]
    if index >= len(target):
        return
    try:
        target[index] = value
    except (ValueError, OverflowError):
        return  # the value does not fit the array's dtype: nothing to load
    try:
        trees = TreeArrays.from_payload(arrays, n_features=3)
    except BundleError:
        return
    rows = np.array([[0.0, 2.0, 9.0], [np.nan, -np.inf, np.inf]])
    assert np.isfinite(CompiledTrees(trees).leaf_sum(rows)).all()
