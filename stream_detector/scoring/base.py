"""The scorer contract.

A scorer maps a batch of feature rows to scores in [0, 1]; higher is more suspicious. The batch
is a 2-D float matrix ``X`` of shape ``(n_rows, n_features)`` whose columns follow the order of
the bundle manifest's ``features``; the result is a float64 vector of ``n_rows`` scores. A single
row is a ``(1, n_features)`` matrix: a 1-D vector is refused rather than guessed at.

Scorers are compiled from fitted scikit-learn models but never need scikit-learn to score: they
evaluate flat arrays (with numpy; tree walks with numba-compiled code), and round-trip through
a payload of plain data (:meth:`Scorer.to_payload`, :meth:`Scorer.from_payload`): a JSON-able
spec holding the kind and scalar parameters, and a mapping of named numpy arrays that loads
with ``allow_pickle=False``.
:func:`scorer_from_payload` rebuilds any scorer from its payload, dispatching on ``spec["kind"]``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError, DataError
from stream_detector.scoring.attribution import Attribution

__all__ = ["Array", "Payload", "PayloadKind", "Scorer", "check_rows", "scorer_from_payload"]

Array = npt.NDArray[np.float64]
PayloadKind = Literal["linear", "isolation_forest", "gbdt", "hybrid", "blend", "calibrated"]
"""The kinds of compiled scorer a bundle's payload can hold (``spec["kind"]``), one per
:class:`Scorer` subclass; not what training chose to fit (``offline.config.ScorerKind``:
classifier, anomaly or hybrid, the manifest's ``scorer``)."""
Payload = tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]

_KINDS: dict[str, type[Scorer]] = {}


def check_rows(X: npt.ArrayLike, n_features: int, *, allow_nan: bool = False) -> Array:
    """Check a batch of feature rows and return it as a float64 matrix.

    Parameters
    ----------
    X
        A 2-D array of real numbers with ``n_features`` columns.
    n_features
        The number of columns expected.
    allow_nan
        Accept NaN and infinite values (tree scorers route them as scikit-learn does);
        otherwise every value must be finite.

    Raises
    ------
    DataError
        If ``X`` is not a 2-D real matrix with ``n_features`` columns, or holds non-finite
        values that are not allowed.

    Examples
    --------
    >>> check_rows([[1, 2.5]], 2)
    array([[1. , 2.5]])
    >>> check_rows([1, 2.5], 2)
    Traceback (most recent call last):
    ...
    stream_detector.errors.DataError: expected a 2-D array of shape (n_rows, 2); got a 1-D array of shape (2,) (a single row is X.reshape(1, -1))
    """
    rows = np.asarray(X)
    if rows.dtype.kind not in "fiu":
        raise DataError(f"expected an array of real numbers; got dtype {rows.dtype}")
    if rows.ndim != 2 or rows.shape[1] != n_features:
        hint = " (a single row is X.reshape(1, -1))" if rows.ndim == 1 else ""
        raise DataError(
            f"expected a 2-D array of shape (n_rows, {n_features}); "
            f"got a {rows.ndim}-D array of shape {rows.shape}{hint}"
        )
    rows = rows.astype(np.float64, copy=False)
    if not allow_nan and not np.isfinite(rows).all():
        raise DataError("expected finite feature values; got NaN or infinity")
    return rows


class Scorer(abc.ABC):
    """A scorer maps a batch of feature rows to scores in [0, 1]; higher is more suspicious.

    Subclasses set ``kind`` (the payload's ``spec["kind"]``), store ``n_features`` and implement
    :meth:`_score_samples` (on rows already checked), :meth:`to_payload` and :meth:`from_payload`;
    those that can explain their scores additively also implement :meth:`_attribute`.
    ``from_payload(*to_payload())`` gives a scorer with identical scores. Defining a subclass
    with a ``kind`` registers it with :func:`scorer_from_payload`.

    Attributes
    ----------
    kind
        ``"linear"``, ``"isolation_forest"``, ``"gbdt"``, ``"hybrid"``, ``"blend"`` or
        ``"calibrated"``.
    n_features
        Number of feature columns the scorer reads.
    allow_nan
        Whether NaN or infinite feature values are accepted (tree scorers send them down the
        branches scikit-learn does); the linear scorer refuses them.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stream_detector.scoring import LinearScorer
    >>> X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    >>> scorer = LinearScorer.from_sklearn(LogisticRegression().fit(X, y))
    >>> scores = scorer.score_samples(X[:3])
    >>> scores.shape, bool(((scores >= 0) & (scores <= 1)).all())
    ((3,), True)
    >>> again = scorer_from_payload(*scorer.to_payload())
    >>> bool(np.array_equal(again.score_samples(X), scorer.score_samples(X)))
    True
    """

    kind: ClassVar[str]
    n_features: int
    allow_nan: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str):
            _KINDS[kind] = cls

    def score_samples(self, X: npt.ArrayLike) -> Array:
        """Scores in [0, 1] of the rows of ``X``, higher meaning more suspicious.

        Parameters
        ----------
        X
            Matrix of shape ``(n_rows, n_features)``, columns in manifest order.

        Returns
        -------
        ndarray of shape (n_rows,)
            Float64 scores.

        Raises
        ------
        DataError
            If ``X`` is not such a matrix (see :func:`check_rows`).
        """
        return self._score_samples(check_rows(X, self.n_features, allow_nan=self.allow_nan))

    @abc.abstractmethod
    def _score_samples(self, X: Array) -> Array:
        """Scores of rows already checked by :func:`check_rows`."""

    @property
    def can_attribute(self) -> bool:
        """Whether :meth:`attribute` works (tree scorers need node covers in their payload)."""
        return type(self)._attribute is not Scorer._attribute

    def attribute(self, X: npt.ArrayLike, reference: npt.ArrayLike) -> Attribution:
        """Feature contributions that add up to each row's output minus a baseline.

        The contributions are in the space where the scorer is additive (log-odds for
        probability scorers, ``log2`` of the score for an isolation forest, the score for a
        blend); :meth:`Attribution.scores` and :meth:`Attribution.logits` carry them into the
        units of the score or its log-odds. See :mod:`stream_detector.scoring.attribution`.

        Parameters
        ----------
        X
            Matrix of shape ``(n_rows, n_features)``, columns in manifest order.
        reference
            Typical value of each feature (training medians), shape ``(n_features,)``: the
            baseline row of linear models; tree ensembles measure from their training data.

        Raises
        ------
        DataError
            If ``X`` or ``reference`` do not match the scorer's features.
        BundleError
            If the scorer cannot attribute (:attr:`can_attribute` is false).
        """
        rows = check_rows(X, self.n_features, allow_nan=self.allow_nan)
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (self.n_features,) or not np.isfinite(ref).all():
            raise DataError(
                f"expected a reference of {self.n_features} finite values; got shape {ref.shape}"
            )
        return self._attribute(rows, ref)

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """Attribution of rows already checked, against a checked reference."""
        raise BundleError(f"a {type(self).__name__} cannot explain its scores additively")

    @abc.abstractmethod
    def to_payload(self) -> Payload:
        """The scorer as plain data: a JSON-able spec and named numpy arrays."""

    @classmethod
    @abc.abstractmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild a scorer from :meth:`to_payload` output; BundleError if it is not valid."""

    @classmethod
    def _check_kind(cls, spec: Mapping[str, Any]) -> None:
        if spec.get("kind") != cls.kind:
            raise BundleError(
                f"{cls.__name__} needs a spec of kind {cls.kind!r}; got {spec.get('kind')!r}"
            )


def scorer_from_payload(spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Scorer:
    """Rebuild a scorer from its payload, whatever its kind.

    Parameters
    ----------
    spec
        The JSON spec; ``spec["kind"]`` selects the scorer class.
    arrays
        The named arrays, exactly those the scorer's :meth:`Scorer.to_payload` wrote.

    Raises
    ------
    BundleError
        If the kind is unknown, or the spec or arrays are missing, malformed, inconsistent,
        or include arrays the scorer does not use.

    Examples
    --------
    >>> scorer_from_payload({"kind": "forest"}, {})
    Traceback (most recent call last):
    ...
    stream_detector.errors.BundleError: unknown scorer kind 'forest'; expected one of ['blend', 'calibrated', 'gbdt', 'hybrid', 'isolation_forest', 'linear']
    """
    if not isinstance(spec, Mapping):
        raise BundleError(f"scorer spec must be a JSON object; got {type(spec).__name__}")
    kind = spec.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BundleError(f"unknown scorer kind {kind!r}; expected one of {sorted(_KINDS)}")
    scorer = cls.from_payload(spec, arrays)
    unused = sorted(set(arrays) - set(scorer.to_payload()[1]))
    if unused:
        raise BundleError(f"{kind} scorer payload has arrays it does not use: {unused}")
    return scorer
