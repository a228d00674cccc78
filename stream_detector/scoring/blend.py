"""Blend scorer: a weighted mean of classifiers' probabilities.

``p = w_1 p_1 + ... + w_k p_k`` with weights ``w_i > 0`` summing to one. The members are
probability scorers (linear, gbdt, hybrid) trained on the same rows and features; a linear
model and a tree ensemble make different mistakes, and their mean ranks the rows better than
either alone more often than not (model averaging). Every member is corrected to the true class
prior before blending, so the mean is again an estimate of ``P(fraud | x)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError
from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.base import Array, Payload, Scorer, scorer_from_payload
from stream_detector.scoring.payload import nest, spec_int, unnest

__all__ = ["BlendScorer"]

_MEMBER_KINDS = ("linear", "gbdt", "hybrid")
_MAX_MEMBERS = 16


class BlendScorer(Scorer):
    """Weighted mean of probability scorers: ``sum(w_i * p_i)``.

    Parameters
    ----------
    members
        Two or more scorers whose scores are probabilities (linear, gbdt or hybrid), all
        reading the same features.
    weights
        One positive weight per member; they are normalised to sum to one. Equal by default.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stream_detector.scoring import GradientBoostingScorer, LinearScorer
    >>> X, y = make_classification(n_samples=600, n_features=5, weights=[0.9], random_state=0)
    >>> lr, hgb = LogisticRegression().fit(X, y), HistGradientBoostingClassifier().fit(X, y)
    >>> blend = BlendScorer(
    ...     [LinearScorer.from_sklearn(lr), GradientBoostingScorer.from_sklearn(hgb)])
    >>> expected = (lr.predict_proba(X)[:, 1] + hgb.predict_proba(X)[:, 1]) / 2
    >>> float(np.abs(blend.score_samples(X) - expected).max()) < 1e-9
    True
    >>> again = scorer_from_payload(*blend.to_payload())
    >>> bool(np.array_equal(again.score_samples(X), blend.score_samples(X)))
    True
    """

    kind = "blend"

    def __init__(self, members: Sequence[Scorer], weights: Sequence[float] | None = None) -> None:
        members = tuple(members)
        if not 2 <= len(members) <= _MAX_MEMBERS:
            raise ValueError(f"a blend needs 2 to {_MAX_MEMBERS} members; got {len(members)}")
        kinds = [m.kind for m in members]
        if any(k not in _MEMBER_KINDS for k in kinds):
            raise ValueError(
                f"blend members must be probability scorers {_MEMBER_KINDS}; got {kinds}"
            )
        widths = {m.n_features for m in members}
        if len(widths) != 1:
            raise ValueError(f"blend members must read the same features; got widths {widths}")
        raw = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(raw) != len(members) or not all(math.isfinite(w) and w > 0 for w in raw):
            raise ValueError(
                f"need one positive, finite weight per member ({len(members)}); got {list(raw)}"
            )
        total = math.fsum(raw)
        self.members = members
        self.weights = tuple(w / total for w in raw)
        self.n_features = members[0].n_features
        self.allow_nan = all(m.allow_nan for m in members)

    def __repr__(self) -> str:
        return f"BlendScorer(members={list(self.members)!r}, weights={list(self.weights)!r})"

    def _score_samples(self, X: Array) -> Array:
        out = self.weights[0] * self.members[0]._score_samples(X)
        for w, member in zip(self.weights[1:], self.members[1:], strict=True):
            out += w * member._score_samples(X)
        return np.clip(out, 0.0, 1.0, out=out)

    @property
    def can_attribute(self) -> bool:
        """Whether every member can attribute."""
        return all(m.can_attribute for m in self.members)

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """In probability: the weighted mean of the members' attributions in score units."""
        total = self.members[0]._attribute(X, reference).scores().scaled(self.weights[0])
        for w, member in zip(self.weights[1:], self.members[1:], strict=True):
            total = total.plus(member._attribute(X, reference).scores().scaled(w))
        return total.through(lambda p: np.clip(p, 0.0, 1.0), "score")

    def to_payload(self) -> Payload:
        """Spec with the member specs in order; member ``i``'s arrays prefixed ``member{i}``."""
        specs: list[dict[str, Any]] = []
        arrays: dict[str, npt.NDArray[Any]] = {}
        for i, member in enumerate(self.members):
            spec, member_arrays = member.to_payload()
            specs.append(spec)
            arrays.update(nest(f"member{i}", member_arrays))
        return (
            {
                "kind": self.kind,
                "n_features": self.n_features,
                "weights": list(self.weights),
                "members": specs,
            },
            arrays,
        )

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        cls._check_kind(spec)
        specs, weights = spec.get("members"), spec.get("weights")
        if not isinstance(specs, list) or not 2 <= len(specs) <= _MAX_MEMBERS:
            raise BundleError(
                f"blend spec field 'members' must be a list of 2 to {_MAX_MEMBERS} scorer specs"
            )
        if (
            not isinstance(weights, list)
            or len(weights) != len(specs)
            or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        ):
            raise BundleError(
                f"blend spec field 'weights' must be a list of {len(specs)} numbers; got {weights!r}"
            )
        members = []
        for i, member_spec in enumerate(specs):
            if not isinstance(member_spec, Mapping):
                raise BundleError(f"blend member {i} must be a scorer spec (a JSON object)")
            if member_spec.get("kind") not in _MEMBER_KINDS:
                raise BundleError(
                    f"blend member {i} must be one of {_MEMBER_KINDS}; got "
                    f"{member_spec.get('kind')!r}"
                )
            members.append(scorer_from_payload(member_spec, unnest(f"member{i}", arrays)))
        d = spec_int(spec, "n_features", minimum=1)
        if any(m.n_features != d for m in members):
            raise BundleError(
                f"blend members must read the spec's {d} features; got "
                f"{[m.n_features for m in members]}"
            )
        try:
            return cls(members, weights)
        except ValueError as exc:
            raise BundleError(f"invalid blend spec: {exc}") from exc
