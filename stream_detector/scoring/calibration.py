"""Calibration: a score turned into the probability of fraud, and the scorer that applies it.

Resampling and prior correction leave a classifier's scores ranked well but over- or
under-confident (duplicated or synthetic positives make a model too sure of itself). A
:class:`Calibrator`, fitted offline on out-of-fold scores, maps a score ``s`` to the observed
fraud rate of the rows scored like it:

- ``platt``: ``sigmoid(slope * logit(s) + intercept)``, a logistic regression on the score's
  log-odds (Platt scaling), with ``slope > 0``; two parameters, sound on few positives;
- ``isotonic``: the non-decreasing piecewise-linear curve through the points ``(x, y)``
  (isotonic regression), flat beyond its ends; it bends wherever the data say.

:class:`CalibratedScorer` (``kind="calibrated"``) wraps any scorer with a calibrator; both are
plain numbers in the bundle and the same numpy code maps the scores offline and online.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError
from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.base import Array, Payload, Scorer, scorer_from_payload
from stream_detector.scoring.link import clipped_logit, sigmoid
from stream_detector.scoring.payload import (
    get_array,
    nest,
    spec_float,
    spec_int,
    spec_mapping,
    unnest,
)

__all__ = ["CalibratedScorer", "CalibrationMethod", "Calibrator"]

CalibrationMethod = Literal["platt", "isotonic"]

_LOGIT_EPS = 1e-15  # scores are read as log-odds within +-34.5
_MAX_POINTS = 1 << 20


@dataclass(frozen=True, eq=False)
class Calibrator:
    """A monotone map from scores in [0, 1] to probabilities in [0, 1].

    Parameters
    ----------
    method
        ``"platt"`` or ``"isotonic"`` (see the module docstring).
    slope, intercept
        Platt's parameters; ``slope`` must be positive.
    x, y
        Isotonic's points: ``x`` strictly increasing scores in [0, 1], ``y`` non-decreasing
        probabilities in [0, 1], at least two of each.

    Examples
    --------
    >>> platt = Calibrator("platt", slope=0.5, intercept=-1.0)
    >>> platt(np.array([0.5, 0.9])).round(4)
    array([0.2689, 0.5246])
    >>> iso = Calibrator("isotonic", x=[0.1, 0.5, 0.9], y=[0.0, 0.2, 0.6])
    >>> iso(np.array([0.0, 0.3, 0.7, 1.0])).round(4)
    array([0. , 0.1, 0.4, 0.6])
    >>> again = Calibrator.from_payload(*iso.to_payload())
    >>> bool(np.array_equal(again(np.array([0.42])), iso(np.array([0.42]))))
    True
    """

    method: CalibrationMethod
    slope: float = 1.0
    intercept: float = 0.0
    x: npt.ArrayLike = field(default_factory=lambda: np.zeros(0))
    y: npt.ArrayLike = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        x = np.array(self.x, dtype=np.float64).ravel()
        y = np.array(self.y, dtype=np.float64).ravel()
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if self.method == "platt":
            if not (np.isfinite(self.slope) and self.slope > 0 and np.isfinite(self.intercept)):
                raise ValueError(
                    f"platt calibration needs a finite slope > 0 and a finite intercept; got "
                    f"{self.slope}, {self.intercept}"
                )
            if x.size or y.size:
                raise ValueError("platt calibration takes no points x, y")
        elif self.method == "isotonic":
            if not 2 <= x.size <= _MAX_POINTS or x.shape != y.shape:
                raise ValueError(
                    f"isotonic calibration needs 2 to {_MAX_POINTS} points x, y of one length; "
                    f"got {x.size} and {y.size}"
                )
            inside = np.all((x >= 0) & (x <= 1) & (y >= 0) & (y <= 1))
            if not (np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0) and inside):
                raise ValueError(
                    "isotonic calibration needs strictly increasing x and non-decreasing y, "
                    "all in [0, 1]"
                )
        else:
            raise ValueError(
                f"calibration method must be 'platt' or 'isotonic'; got {self.method!r}"
            )

    def __call__(self, scores: Array) -> Array:
        """The calibrated probabilities of ``scores``."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            return sigmoid(self.slope * clipped_logit(s, _LOGIT_EPS) + self.intercept)
        x, y = np.asarray(self.x), np.asarray(self.y)
        return np.asarray(np.interp(s, x, y), dtype=np.float64)

    def to_payload(self) -> Payload:
        """Spec ``{method, slope, intercept}`` (platt) or ``{method}`` and arrays ``x, y``."""
        if self.method == "platt":
            return {"method": "platt", "slope": self.slope, "intercept": self.intercept}, {}
        return {"method": "isotonic"}, {"x": np.array(self.x), "y": np.array(self.y)}

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        method = spec.get("method")
        try:
            if method == "platt":
                if arrays:
                    raise BundleError(f"platt calibration has no arrays; got {sorted(arrays)}")
                return cls(
                    "platt",
                    slope=spec_float(spec, "slope"),
                    intercept=spec_float(spec, "intercept"),
                )
            if method == "isotonic":
                x = get_array(arrays, "x", "float")
                y = get_array(arrays, "y", "float", length=x.shape[0])
                if set(arrays) - {"x", "y"}:
                    raise BundleError(
                        f"isotonic calibration has arrays x, y only; got {sorted(arrays)}"
                    )
                return cls("isotonic", x=x, y=y)
        except ValueError as exc:
            raise BundleError(f"invalid calibrator: {exc}") from exc
        raise BundleError(f"calibration method must be 'platt' or 'isotonic'; got {method!r}")


class CalibratedScorer(Scorer):
    """A scorer whose scores pass through a :class:`Calibrator`.

    Parameters
    ----------
    scorer
        The uncalibrated scorer (any kind).
    calibrator
        Fitted on the scorer's out-of-fold scores.

    Examples
    --------
    >>> from stream_detector.scoring import LinearScorer
    >>> inner = LinearScorer(coef=[2.0], intercept=0.0)
    >>> scorer = CalibratedScorer(inner, Calibrator("platt", slope=0.5, intercept=-1.0))
    >>> scorer.score_samples(np.array([[0.0], [1.0]])).round(4)
    array([0.2689, 0.5   ])
    >>> again = scorer_from_payload(*scorer.to_payload())
    >>> bool(np.array_equal(again.score_samples(np.array([[0.3]])), scorer.score_samples(np.array([[0.3]]))))
    True
    """

    kind = "calibrated"

    def __init__(self, scorer: Scorer, calibrator: Calibrator) -> None:
        if isinstance(scorer, CalibratedScorer):
            raise ValueError("a calibrated scorer cannot be calibrated again")
        self.scorer = scorer
        self.calibrator = calibrator
        self.n_features = scorer.n_features
        self.allow_nan = scorer.allow_nan

    def __repr__(self) -> str:
        return f"CalibratedScorer({self.scorer!r}, method={self.calibrator.method!r})"

    def _score_samples(self, X: Array) -> Array:
        return self.calibrator(self.scorer._score_samples(X))

    @property
    def can_attribute(self) -> bool:
        """Whether the inner scorer can attribute."""
        return self.scorer.can_attribute

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """The inner scorer's contributions in score units, carried through the calibrator."""
        inner = self.scorer._attribute(X, reference).scores()
        return inner.through(self.calibrator, "score")

    def to_payload(self) -> Payload:
        """Spec with the nested ``scorer`` and ``calibrator`` specs; arrays prefixed likewise."""
        inner_spec, inner_arrays = self.scorer.to_payload()
        cal_spec, cal_arrays = self.calibrator.to_payload()
        spec = {
            "kind": self.kind,
            "n_features": self.n_features,
            "scorer": inner_spec,
            "calibrator": cal_spec,
        }
        return spec, {**nest("scorer", inner_arrays), **nest("calibrator", cal_arrays)}

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        cls._check_kind(spec)
        inner_spec = spec_mapping(spec, "scorer")
        if inner_spec.get("kind") == cls.kind:
            raise BundleError("a calibrated scorer cannot wrap another calibrated scorer")
        inner = scorer_from_payload(inner_spec, unnest("scorer", arrays))
        calibrator = Calibrator.from_payload(
            spec_mapping(spec, "calibrator"), unnest("calibrator", arrays)
        )
        d = spec_int(spec, "n_features", minimum=1)
        if inner.n_features != d:
            raise BundleError(
                f"calibrated scorer must read the spec's {d} features; got {inner.n_features}"
            )
        return cls(inner, calibrator)
