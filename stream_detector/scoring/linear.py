"""Linear scorer: standardise, take a weighted sum, apply the sigmoid.

``p = sigmoid(z . coef + intercept + logit_offset)`` with ``z = (x - mean) / scale``: a fitted
``StandardScaler`` + ``LogisticRegression`` (scikit-learn or imbalanced-learn Pipeline, or a bare
``LogisticRegression``), evaluated with numpy.

Finite values so extreme that the log-odds overflow give 0 or 1, and 1 when they overflow
both ways (``inf - inf``): such an event is flagged rather than given an undefined score.

A single row (what a quiet stream scores) skips numpy: a handful of numpy calls would cost
several times the arithmetic. Its weighted sum is then added up in feature order, with the
scaling folded into the weights, where numpy hands the batch to BLAS, so the two may differ in
the last bits, as BLAS results for one row already do between batch sizes; both agree with
scikit-learn to 1e-12.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from stream_detector.errors import BundleError, ConfigError
from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.base import Array, Payload, Scorer
from stream_detector.scoring.link import sigmoid, sigmoid_of
from stream_detector.scoring.payload import get_array, spec_float, spec_int

__all__ = ["LinearScorer"]


class LinearScorer(Scorer):
    """Logistic regression on standardised features, compiled from scikit-learn.

    Parameters
    ----------
    coef
        Weights of the standardised features, shape ``(n_features,)``.
    intercept
        Bias of the log-odds.
    mean, scale
        Standardisation ``z = (x - mean) / scale``; zeros and ones (no scaling) when None.
    logit_offset
        Added to the log-odds before the sigmoid: the prior correction after resampling,
        ``logit(true prior) - logit(resampled prior)``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.metrics import roc_auc_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = make_classification(n_samples=1000, n_features=5, weights=[0.9], random_state=0)
    >>> model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:500], y[:500])
    >>> scorer = LinearScorer.from_sklearn(model)
    >>> float(np.abs(scorer.score_samples(X) - model.predict_proba(X)[:, 1]).max()) < 1e-6
    True
    >>> round(float(roc_auc_score(y[500:], scorer.score_samples(X[500:]))), 3)  # held out
    0.955
    """

    kind = "linear"

    def __init__(
        self,
        *,
        coef: npt.ArrayLike,
        intercept: float,
        mean: npt.ArrayLike | None = None,
        scale: npt.ArrayLike | None = None,
        logit_offset: float = 0.0,
    ) -> None:
        self.coef = np.array(coef, dtype=np.float64).ravel()
        d = self.coef.shape[0]
        self.mean = np.zeros(d) if mean is None else np.array(mean, dtype=np.float64)
        self.scale = np.ones(d) if scale is None else np.array(scale, dtype=np.float64)
        self.intercept = float(intercept)
        self.logit_offset = float(logit_offset)
        if d == 0 or self.mean.shape != (d,) or self.scale.shape != (d,):
            raise ValueError(
                f"coef, mean and scale must be 1-D of one length >= 1; got shapes "
                f"{self.coef.shape}, {self.mean.shape}, {self.scale.shape}"
            )
        finite = np.isfinite(np.concatenate([self.coef, self.mean, self.scale]))
        if not (finite.all() and np.all(self.scale > 0)):
            raise ValueError("coef and mean must be finite, scale finite and positive")
        if not (np.isfinite(self.intercept) and np.isfinite(self.logit_offset)):
            raise ValueError(
                f"intercept and logit_offset must be finite; got {intercept}, {logit_offset}"
            )
        self.n_features = d
        # The one-row path's constants, as Python floats: each feature's mean and weight.
        self._means = self.mean.tolist()
        self._weights = (self.coef / self.scale).tolist()
        self._bias = self.intercept + self.logit_offset

    def __repr__(self) -> str:
        return f"LinearScorer(n_features={self.n_features}, logit_offset={self.logit_offset})"

    @classmethod
    def from_sklearn(cls, model: Any, *, logit_offset: float = 0.0) -> Self:
        """Compile a fitted LogisticRegression, alone or after a StandardScaler in a Pipeline.

        Resampling steps of an imbalanced-learn Pipeline (they act only while fitting) and
        ``"passthrough"`` steps are skipped.

        Raises
        ------
        ConfigError
            If the model is not a fitted binary LogisticRegression, optionally preceded by one
            StandardScaler.
        """
        steps = _predict_steps(model)
        names = [type(step).__name__ for step in steps]
        if names not in (["LogisticRegression"], ["StandardScaler", "LogisticRegression"]):
            raise ConfigError(f"expected [StandardScaler,] LogisticRegression; got steps {names}")
        lr = steps[-1]
        if not hasattr(lr, "coef_") or lr.coef_.shape[0] != 1:
            raise ConfigError("expected a fitted binary LogisticRegression")
        mean = scale = None
        if len(steps) == 2:
            scaler = steps[0]
            if not hasattr(scaler, "n_features_in_"):
                raise ConfigError("expected a fitted StandardScaler")
            mean = scaler.mean_ if scaler.with_mean else None
            scale = scaler.scale_ if scaler.with_std else None
        return cls(
            coef=lr.coef_[0],
            intercept=float(lr.intercept_[0]),
            mean=mean,
            scale=scale,
            logit_offset=logit_offset,
        )

    def score_samples(self, X: npt.ArrayLike) -> Array:
        """Scores of the rows of ``X``; see :meth:`Scorer.score_samples`.

        One float64 row of the right width is scored in plain Python (see the module
        docstring); anything else, or a row whose log-odds are not finite (a NaN or infinite
        value, refused with the usual error; an overflow), takes the general path.
        """
        if type(X) is np.ndarray and X.shape == (1, self.n_features) and X.dtype == np.float64:
            z = self._bias
            for x, mean, weight in zip(X[0].tolist(), self._means, self._weights, strict=True):
                z += (x - mean) * weight
            if math.isfinite(z):
                return np.array([sigmoid_of(z)])
        return super().score_samples(X)

    def _score_samples(self, X: Array) -> Array:
        with np.errstate(over="ignore", invalid="ignore"):
            logit = ((X - self.mean) / self.scale) @ self.coef + self._bias
        undefined = np.isnan(logit)
        if undefined.any():
            # Finite values so large that the log-odds overflow both ways (inf - inf): the
            # event is as far outside the training data as a float allows; flag it.
            logit[undefined] = np.inf
        return sigmoid(logit)

    def _attribute(self, X: Array, reference: Array) -> Attribution:
        """Exact: ``coef_j * (x_j - reference_j) / scale_j`` in log-odds, from the reference."""
        weight = self.coef / self.scale
        with np.errstate(over="ignore", invalid="ignore"):
            phi = (X - reference) * weight
            logit = ((X - self.mean) / self.scale) @ self.coef + self._bias
        base = float(((reference - self.mean) / self.scale) @ self.coef + self._bias)
        return Attribution(phi, logit, np.full(X.shape[0], base), "logit")

    def to_payload(self) -> Payload:
        """Spec ``{kind, n_features, intercept, logit_offset}``; arrays coef, mean, scale."""
        spec = {
            "kind": self.kind,
            "n_features": self.n_features,
            "intercept": self.intercept,
            "logit_offset": self.logit_offset,
        }
        arrays = {"coef": self.coef.copy(), "mean": self.mean.copy(), "scale": self.scale.copy()}
        return spec, arrays

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        """Rebuild from :meth:`to_payload` output; BundleError if it is not valid."""
        cls._check_kind(spec)
        d = spec_int(spec, "n_features", minimum=1)
        coef, mean, scale = (
            get_array(arrays, n, "float", length=d) for n in ("coef", "mean", "scale")
        )
        if not np.isfinite(np.concatenate([coef, mean])).all():
            raise BundleError("linear scorer arrays coef and mean must be finite")
        if not (np.isfinite(scale).all() and np.all(scale > 0)):
            raise BundleError("linear scorer array scale must be finite and positive")
        return cls(
            coef=coef,
            intercept=spec_float(spec, "intercept"),
            mean=mean,
            scale=scale,
            logit_offset=spec_float(spec, "logit_offset"),
        )


def _predict_steps(model: Any) -> list[Any]:
    """The steps of a (possibly imbalanced-learn) Pipeline that act at prediction time."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return [model]
    kept = []
    for _, step in steps:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        kept.extend(_predict_steps(step))
    return kept
