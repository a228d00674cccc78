"""Typed access to payload specs and arrays: everything malformed is a BundleError."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stream_detector.errors import BundleError
from stream_detector.scoring.payload import (
    get_array,
    nest,
    spec_float,
    spec_int,
    spec_mapping,
    unnest,
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)


@given(JSON_VALUES)
@example(2**31 - 1)
@example(2**31)
def test_spec_int_accepts_only_integers(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**31:
        assert spec_int({"n": value}, "n", minimum=1) == value
    else:
        with pytest.raises(BundleError, match="scorer spec field 'n' must be"):
            spec_int({"n": value}, "n", minimum=1)


@given(JSON_VALUES)
@example(10**400)
@example(-(2**1024))
def test_spec_float_accepts_only_finite_numbers(value: Any) -> None:
    expected = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            expected = float(value)
    if math.isfinite(expected):
        assert spec_float({"x": value}, "x") == expected
    else:
        with pytest.raises(BundleError, match="scorer spec field 'x' must be a finite number"):
            spec_float({"x": value}, "x")


def test_spec_mapping_refuses_anything_but_an_object() -> None:
    assert spec_mapping({"part": {"kind": "x"}}, "part") == {"kind": "x"}
    with pytest.raises(BundleError, match="'part' must be a JSON object; got list"):
        spec_mapping({"part": [1]}, "part")


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (np.zeros((2, 2)), "float", "must be a 1-D float array; got float64 of shape (2, 2)"),
        (np.zeros(2, dtype=np.int32), "float", "must be a 1-D float array; got int32"),
        (np.zeros(2), "int", "must be a 1-D int array; got float64"),
        (np.zeros(2, dtype=np.int8), "bool", "must be a 1-D bool array; got int8"),
        (np.array(["a", "b"]), "int", "must be a 1-D int array; got <U1"),
        (np.array([2**63], dtype=np.uint64), "int", "holds integers out of range"),
        (np.zeros(3), "float", "must hold 2 values; got 3"),
        (np.float64(1.0), "float", "must be a 1-D float array; got float64 of shape ()"),
    ],
)
def test_get_array_refuses_wrong_kinds_and_shapes(value: Any, kind: Any, message: str) -> None:
    with pytest.raises(BundleError) as info:
        get_array({"a": value}, "a", kind, length=2 if kind == "float" else None)
    assert message in str(info.value)


def test_get_array_returns_a_contiguous_canonical_copy() -> None:
    source = np.arange(6, dtype=np.int32)[::2]
    result = get_array({"a": source}, "a", "int", length=3)
    assert result.dtype == np.int64
    assert result.flags.c_contiguous
    result[0] = 99
    assert source[0] == 0


def test_nest_and_unnest_are_inverse() -> None:
    arrays = {"coef": np.zeros(2), "mean": np.ones(2)}
    nested = {**nest("classifier", arrays), **nest("anomaly", {"value": np.zeros(1)})}
    assert sorted(nested) == ["anomaly.value", "classifier.coef", "classifier.mean"]
    assert sorted(unnest("classifier", nested)) == ["coef", "mean"]
    assert unnest("other", nested) == {}
