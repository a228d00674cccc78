"""Hybrid scorer: a classifier and an anomaly detector stacked by a logistic regression.

``p = sigmoid(a * logit(clip(p_classifier)) + b * anomaly_score + c)``, where ``clip`` keeps the
classifier's probability in ``[eps, 1 - eps]`` so its log-odds stay finite. The classifier
carries what the labels taught; the anomaly score raises rows unlike anything seen in training,
which catches fraud patterns the labels never showed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError
from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.base import Array, Payload, Scorer, scorer_from_payload
from stream_detector.scoring.link import clipped_logit, sigmoid
from stream_detector.scoring.payload import nest, spec_float, spec_int, spec_mapping, unnest

__all__ = ["HybridScorer"]


class HybridScorer(Scorer):
    """Stack of a classifier and an anomaly scorer: ``sigmoid(a * logit(p) + b * s + c)``.

    Parameters
    ----------
    classifier
        Scorer whose score ``p`` is a probability (linear or gbdt).
    anomaly
        Scorer whose score ``s`` is an anomaly score (isolation forest).
    coef
        ``(a, b)``, the stacker's weights of ``logit(clip(p))`` and ``s``.
    intercept
        ``c``, the stacker's bias.
    eps
        ``p`` is clipped to ``[eps, 1 - eps]`` before the logit; :attr:`EPS` by default.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import IsolationForest
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.metrics import roc_auc_score
    >>> from stream_detector.scoring import IsolationForestScorer, LinearScorer
    >>> X, y = make_classification(n_samples=1000, n_features=5, weights=[0.9], random_state=0)
    >>> classifier = LinearScorer.from_sklearn(LogisticRegression().fit(X, y))
    >>> anomaly = IsolationForestScorer.from_sklearn(
    ...     IsolationForest(n_estimators=20, random_state=0).fit(X))
    >>> Z = HybridScorer.stack_features(classifier, anomaly, X)
    >>> stacker = LogisticRegression().fit(Z, y)
    >>> hybrid = HybridScorer.from_stacker(classifier, anomaly, stacker)
    >>> float(np.abs(hybrid.score_samples(X) - stacker.predict_proba(Z)[:, 1]).max()) < 1e-6
    True
    >>> round(float(roc_auc_score(y, hybrid.score_samples(X))), 3)
    0.971
    """

    kind = "hybrid"
    EPS: ClassVar[float] = 1e-6

    def __init__(
        self,
        *,
        classifier: Scorer,
        anomaly: Scorer,
        coef: tuple[float, float],
        intercept: float,
        eps: float = EPS,
    ) -> None:
        if classifier.n_features != anomaly.n_features:
            raise ValueError(
                f"classifier and anomaly scorers must read the same features; got "
                f"{classifier.n_features} and {anomaly.n_features}"
            )
        a, b = (float(v) for v in coef)
        if not all(math.isfinite(v) for v in (a, b, intercept)):
            raise ValueError(f"coef and intercept must be finite; got {coef}, {intercept}")
        if not 0.0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5); got {eps}")
        self.classifier = classifier
        self.anomaly = anomaly
        self.coef = (a, b)
        self.intercept = float(intercept)
        self.eps = float(eps)
        self.n_features = classifier.n_features
        self.allow_nan = classifier.allow_nan and anomaly.allow_nan

    def __repr__(self) -> str:
        return f"HybridScorer(classifier={self.classifier!r}, anomaly={self.anomaly!r})"

    @classmethod
    def stack_features(
        cls, classifier: Scorer, anomaly: Scorer, X: npt.ArrayLike, *, eps: float = EPS
    ) -> Array:
        """The stacker's inputs ``[logit(clip(p)), s]`` for rows ``X``, shape ``(n_rows, 2)``."""
        p, s = classifier.score_samples(X), anomaly.score_samples(X)
        return np.column_stack([clipped_logit(p, eps), s])

    @classmethod
    def from_stacker(
        cls, classifier: Scorer, anomaly: Scorer, stacker: Any, *, eps: float = EPS
    ) -> Self:
        """Build from a fitted LogisticRegression on :meth:`stack_features`."""
        coef = np.asarray(stacker.coef_, dtype=np.float64).ravel()
        if coef.shape != (2,):
            raise ValueError(f"expected a binary stacker on 2 inputs; got coef_ {coef.shape}")
        return cls(
            classifier=classifier,
            anomaly=anomaly,
            coef=(float(coef[0]), float(coef[1])),
            intercept=float(np.ravel(stacker.intercept_)[0]),
            eps=eps,
        )

    def _score_samples(self, X: Array) -> Array:
        logit = clipped_logit(self.classifier._score_samples(X), self.eps)
        a, b = self.coef
        return sigmoid(a * logit + b * self.anomaly._score_samples(X) + self.intercept)

    @property
    def can_attribute(self) -> bool:
        """Whether both parts can attribute."""
        return self.classifier.can_attribute and self.anomaly.can_attribute

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """In log-odds: ``a`` times the classifier's (through the clip) plus ``b`` times the
        anomaly scorer's (in score units)."""
        eps = self.eps
        classifier = self.classifier._attribute(X, reference).scores()
        logit = classifier.through(lambda p: clipped_logit(p, eps), "logit")
        anomaly = self.anomaly._attribute(X, reference).scores()
        a, b = self.coef
        return logit.scaled(a).plus(anomaly.scaled(b), self.intercept)

    def to_payload(self) -> Payload:
        """Spec with nested ``classifier`` and ``anomaly`` specs; their arrays prefixed by name."""
        c_spec, c_arrays = self.classifier.to_payload()
        a_spec, a_arrays = self.anomaly.to_payload()
        spec = {
            "kind": self.kind,
            "n_features": self.n_features,
            "coef": list(self.coef),
            "intercept": self.intercept,
            "eps": self.eps,
            "classifier": c_spec,
            "anomaly": a_spec,
        }
        return spec, {**nest("classifier", c_arrays), **nest("anomaly", a_arrays)}

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        cls._check_kind(spec)
        coef = spec.get("coef")
        if not isinstance(coef, list) or len(coef) != 2:
            raise BundleError(f"hybrid spec field 'coef' must be a list of 2 numbers; got {coef!r}")
        a = spec_float({"coef[0]": coef[0]}, "coef[0]")
        b = spec_float({"coef[1]": coef[1]}, "coef[1]")
        parts = {
            part: scorer_from_payload(spec_mapping(spec, part), unnest(part, arrays))
            for part in ("classifier", "anomaly")
        }
        eps = spec_float(spec, "eps")
        if not 0.0 < eps < 0.5:
            raise BundleError(f"hybrid spec field 'eps' must be in (0, 0.5); got {eps}")
        d = spec_int(spec, "n_features", minimum=1)
        if any(part.n_features != d for part in parts.values()):
            raise BundleError(
                f"hybrid parts must read the spec's {d} features; got "
                f"{[part.n_features for part in parts.values()]}"
            )
        return cls(
            classifier=parts["classifier"],
            anomaly=parts["anomaly"],
            coef=(a, b),
            intercept=spec_float(spec, "intercept"),
            eps=eps,
        )
