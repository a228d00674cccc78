"""Feature attributions that add up: how each feature moved a score away from a baseline.

An :class:`Attribution` holds, for each row, the contributions ``phi`` of the features, the
model's ``output`` and a ``base``, in one *space* (log-odds, log2 of an anomaly score, or the
score itself), with ``phi.sum(axis=1) == output - base`` up to rounding. Each scorer computes
one in the space where it is additive (see ``Scorer.attribute``):

- a linear scorer, exactly: ``coef_j * (x_j - reference_j)`` on the standardised features, in
  log-odds, against the log-odds of the reference row;
- a tree ensemble, with path-dependent TreeSHAP (:mod:`stream_detector.scoring.treeshap`), in
  log-odds (gradient boosting) or in ``log2`` of the anomaly score, i.e. minus the mean path
  length over ``c(n)`` (isolation forest), against the expectation over the training data;
- a hybrid or a blend, from its members' attributions carried through its link.

A monotone map ``f`` (a sigmoid, a clip, a calibrator) is carried through by
:meth:`Attribution.through`: the new contributions are the old ones scaled by one factor per
row, ``(f(output) - f(base)) / (output - base)``, so they keep their signs and proportions and
add up exactly to ``f(output) - f(base)``. Sums and scalings (a stacker's weights, a blend's
mean) are exact as they stand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from stream_detector.scoring.link import clipped_logit, sigmoid

__all__ = ["Attribution", "Space"]

Array = npt.NDArray[np.float64]
Space = Literal["logit", "log2", "score"]

_EPS = 1e-300  # below this, probabilities are read as 0 or 1 when taking log-odds


def _logit(p: Array) -> Array:
    """Log-odds of a score, finite for every score (0 and 1 are moved in by a hair)."""
    return clipped_logit(p, _EPS)


def _exp2(z: Array) -> Array:
    return np.asarray(np.exp2(z), dtype=np.float64)


@dataclass(frozen=True)
class Attribution:
    """Per-row feature contributions that add up to ``output - base`` in one space.

    Attributes
    ----------
    phi : ndarray of shape (n_rows, n_features)
        Contribution of each feature.
    output : ndarray of shape (n_rows,)
        The model's output in this space.
    base : ndarray of shape (n_rows,)
        The baseline output the contributions are measured from.
    space : {"logit", "log2", "score"}
        Log-odds of a probability, ``log2`` of an anomaly score, or the score itself.

    Examples
    --------
    >>> a = Attribution(phi=np.array([[1.0, -0.5]]), output=np.array([0.5]),
    ...                 base=np.array([0.0]), space="logit")
    >>> s = a.scores()
    >>> s.phi.round(4), round(float(s.phi.sum()), 6) == round(float(s.output[0] - 0.5), 6)
    (array([[ 0.2449, -0.1225]]), True)
    """

    phi: Array
    output: Array
    base: Array
    space: Space

    def through(self, f: Callable[[Array], Array], space: Space) -> Attribution:
        """The attribution of ``f(output)``: contributions scaled per row so they add up.

        ``f`` must be monotone (non-decreasing); where the contributions add up to nothing,
        they are scaled by ``f``'s slope at the output.
        """
        # Rows at the edge of the float range (finite values near 1.8e308 are valid events)
        # overflow here: their factors become 0, so such a row has no reasons, never an error.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            output, base = f(self.output), f(self.base)
            total = self.phi.sum(axis=1)
            size = np.abs(self.phi).sum(axis=1)
            flat = np.abs(total) <= 1e-12 * (size + np.abs(self.output) + 1.0)
            factor = np.where(flat, 0.0, (output - base) / np.where(flat, 1.0, total))
            if flat.any():
                h = 1e-6 * (1.0 + np.abs(self.output[flat]))
                x = self.output[flat]
                factor[flat] = (f(x + h) - f(x - h)) / (2.0 * h)
            factor = np.where(np.isfinite(factor), factor, 0.0)
            phi = self.phi * factor[:, None]
            phi[~np.isfinite(phi)] = 0.0
        return Attribution(phi, output, base, space)

    def scaled(self, weight: float) -> Attribution:
        """The attribution of ``weight * output`` (same space)."""
        return Attribution(weight * self.phi, weight * self.output, weight * self.base, self.space)

    def plus(self, other: Attribution, constant: float = 0.0) -> Attribution:
        """The attribution of ``self.output + other.output + constant``, in ``self``'s space.

        The two need not share a space: a stacker adds log-odds and anomaly scores.
        """
        return Attribution(
            self.phi + other.phi,
            self.output + other.output + constant,
            self.base + other.base + constant,
            self.space,
        )

    def scores(self) -> Attribution:
        """In the units of the score: log-odds through the sigmoid, log2 through ``2**z``."""
        if self.space == "logit":
            return self.through(sigmoid, "score")
        if self.space == "log2":
            return self.through(_exp2, "score")
        return self

    def logits(self) -> Attribution:
        """In the log-odds of the score (of the anomaly score, for an isolation forest)."""
        if self.space == "logit":
            return self
        return self.scores().through(_logit, "logit")
