"""Reading scorer payloads: typed access to the JSON spec and to the named arrays.

A payload is what a scorer becomes on disk: a JSON-able spec (its kind and scalar parameters)
and a mapping of named numpy arrays. Both come from a file, so they are outside input: every
accessor here checks what it reads and raises :class:`~stream_detector.errors.BundleError`
naming the field, what was expected and what was received.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError

__all__ = [
    "ArrayKind",
    "get_array",
    "nest",
    "spec_float",
    "spec_int",
    "spec_mapping",
    "unnest",
]

ArrayKind = Literal["int", "float", "bool"]

_MAX_INT = 2**31 - 1  # any count a scorer holds; larger integers are corrupt input

_DTYPES: dict[ArrayKind, tuple[str, type[np.generic]]] = {
    "int": ("iu", np.int64),
    "float": ("f", np.float64),
    "bool": ("b", np.bool_),
}


def spec_int(spec: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int:
    """Read an integer field of a spec.

    Examples
    --------
    >>> spec_int({"n_features": 3}, "n_features", minimum=1)
    3
    >>> spec_int({"n_features": 0}, "n_features", minimum=1)
    Traceback (most recent call last):
    ...
    stream_detector.errors.BundleError: scorer spec field 'n_features' must be an integer >= 1; got 0
    """
    value = spec.get(key)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or (minimum is not None and value < minimum)
    ):
        floor = "" if minimum is None else f" >= {minimum}"
        raise BundleError(f"scorer spec field {key!r} must be an integer{floor}; got {value!r}")
    if abs(value) > _MAX_INT:
        raise BundleError(f"scorer spec field {key!r} must be at most 2**31 - 1; got {value}")
    return value


def spec_float(spec: Mapping[str, Any], key: str) -> float:
    """Read a finite number field of a spec (an integer is accepted as a number).

    Examples
    --------
    >>> spec_float({"intercept": -2}, "intercept")
    -2.0
    >>> spec_float({}, "intercept")
    Traceback (most recent call last):
    ...
    stream_detector.errors.BundleError: scorer spec field 'intercept' must be a finite number; got None
    """
    value = spec.get(key)
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an integer beyond the float range
            number = float(value)
    if not math.isfinite(number):
        raise BundleError(f"scorer spec field {key!r} must be a finite number; got {value!r}")
    return number


def spec_mapping(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Read a nested spec (a JSON object).

    Examples
    --------
    >>> spec_mapping({"classifier": {"kind": "linear"}}, "classifier")
    {'kind': 'linear'}
    """
    value = spec.get(key)
    if not isinstance(value, Mapping):
        raise BundleError(
            f"scorer spec field {key!r} must be a JSON object; got {type(value).__name__}"
        )
    return value


def get_array(
    arrays: Mapping[str, npt.ArrayLike],
    name: str,
    kind: ArrayKind,
    *,
    length: int | None = None,
) -> npt.NDArray[Any]:
    """Read a named 1-D array, check its kind and length, and return a contiguous copy.

    Integers are returned as int64, floats as float64, booleans as bool.

    Examples
    --------
    >>> get_array({"coef": np.array([0.5, 1.0])}, "coef", "float", length=2)
    array([0.5, 1. ])
    >>> get_array({"coef": np.array([1, 2])}, "coef", "float")
    Traceback (most recent call last):
    ...
    stream_detector.errors.BundleError: scorer array 'coef' must be a 1-D float array; got int64 of shape (2,)
    >>> get_array({}, "coef", "float")
    Traceback (most recent call last):
    ...
    stream_detector.errors.BundleError: scorer array 'coef' is missing
    """
    if name not in arrays:
        raise BundleError(f"scorer array {name!r} is missing")
    array = np.asarray(arrays[name])
    kinds, dtype = _DTYPES[kind]
    if array.ndim != 1 or array.dtype.kind not in kinds:
        raise BundleError(
            f"scorer array {name!r} must be a 1-D {kind} array; "
            f"got {array.dtype} of shape {array.shape}"
        )
    if length is not None and array.shape[0] != length:
        raise BundleError(f"scorer array {name!r} must hold {length} values; got {array.shape[0]}")
    if kind == "int" and array.dtype == np.uint64 and array.size and array.max() > 2**62:
        raise BundleError(f"scorer array {name!r} holds integers out of range")
    return np.array(array, dtype=dtype, order="C", copy=True)


def nest(prefix: str, arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """Name a part's arrays inside a composite payload: ``coef`` becomes ``classifier.coef``.

    Examples
    --------
    >>> sorted(nest("classifier", {"coef": np.zeros(2)}))
    ['classifier.coef']
    """
    return {f"{prefix}.{name}": value for name, value in arrays.items()}


def unnest(prefix: str, arrays: Mapping[str, npt.ArrayLike]) -> dict[str, npt.ArrayLike]:
    """The arrays of one part of a composite payload, with the part's prefix removed.

    Examples
    --------
    >>> sorted(unnest("anomaly", {"anomaly.value": 1, "classifier.coef": 2}))
    ['value']
    """
    start = f"{prefix}."
    return {name[len(start) :]: value for name, value in arrays.items() if name.startswith(start)}
