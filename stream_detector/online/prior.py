"""The positive-class rate, tracked with River from feedback labels.

Fraud labels arrive late and the fraud rate moves. :class:`ClassPrior` keeps the rate of the
recent labels with a River statistic, over a rolling window (``river.utils.Rolling`` of a
``river.stats.Mean``) or exponentially weighted (``river.stats.EWMean``), and smooths it toward
the reference prior the model was calibrated at, so that a handful of labels cannot swing it:

.. math::

    \\hat\\pi = \\operatorname{clip}\\left(\\frac{n\\,r + s\\,\\pi_0}{n + s},\\;
    \\frac{\\pi_0}{m},\\; m\\,\\pi_0\\right)

where :math:`r` is the window's positive rate, :math:`n` the number of labels it holds (for
the exponential window, Kish's effective sample size of its weights), :math:`\\pi_0` the
reference prior, :math:`s` the pseudo-count ``strength`` and :math:`m` the ``max_ratio`` clamp.
With no labels the estimate is the reference; as labels accumulate it follows their rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from river import stats, utils

from stream_detector.config import PriorWindow
from stream_detector.errors import ConfigError

__all__ = ["ClassPrior"]


class ClassPrior:
    """Positive-class rate from a stream of 0/1 labels, smoothed toward a reference prior.

    Parameters
    ----------
    reference
        The prior the model's scores are calibrated at (the bundle's validation prior), in
        (0, 1); the estimate starts there.
    window
        ``"rolling"``: the last ``window_size`` labels count equally. ``"ewm"``: every label
        counts, the newest with weight ``fading_factor``.
    window_size
        Labels in the rolling window.
    fading_factor
        Weight of the newest label in the exponentially weighted mean, in (0, 1].
    strength
        Pseudo-labels at ``reference`` mixed into the estimate (0: none).
    max_ratio
        The estimate stays within ``[reference / max_ratio, reference * max_ratio]``.

    Attributes
    ----------
    n_labels_ : int
        Labels seen.
    n_positive_ : int
        Positive labels seen.

    Examples
    --------
    >>> import numpy as np
    >>> prior = ClassPrior(reference=0.01, window_size=5_000, strength=500)
    >>> prior.get()
    0.01
    >>> labels = (np.random.default_rng(0).uniform(size=20_000) < 0.05).astype(int)
    >>> prior.update_many(labels.tolist())
    >>> round(prior.window_rate, 4), round(float(labels[-5_000:].mean()), 4)
    (0.0452, 0.0452)
    >>> round(prior.get(), 4)  # (226 positives + 500 * 0.01) / (5000 + 500)
    0.042
    """

    def __init__(
        self,
        *,
        reference: float,
        window: PriorWindow = "rolling",
        window_size: int = 20_000,
        fading_factor: float = 0.0002,
        strength: float = 2_000.0,
        max_ratio: float = 10.0,
    ) -> None:
        self.reference = reference
        self.window = window
        self.window_size = window_size
        self.fading_factor = fading_factor
        self.strength = strength
        self.max_ratio = max_ratio
        self._check()
        self._stat: Any = (  # utils.Rolling(stats.Mean) or stats.EWMean
            utils.Rolling(stats.Mean, window_size=window_size)
            if window == "rolling"
            else stats.EWMean(fading_factor=fading_factor)
        )
        self._sum_sq_weights = 0.0
        self.n_labels_ = 0
        self.n_positive_ = 0

    def _check(self) -> None:
        if not (0.0 < self.reference < 1.0):
            raise ConfigError(f"reference prior must be in (0, 1); got {self.reference}")
        if self.window not in ("rolling", "ewm"):
            raise ConfigError(f"window must be 'rolling' or 'ewm'; got {self.window!r}")
        if self.window_size < 1 or not (0.0 < self.fading_factor <= 1.0):
            raise ConfigError(
                f"window_size must be >= 1 and fading_factor in (0, 1]; "
                f"got {self.window_size} and {self.fading_factor}"
            )
        if self.strength < 0 or self.max_ratio < 1:
            raise ConfigError(
                f"strength must be >= 0 and max_ratio >= 1; "
                f"got {self.strength} and {self.max_ratio}"
            )

    def update(self, label: int) -> None:
        """Learn one 0/1 label."""
        y = 1 if label else 0
        self._stat.update(y)
        a = self.fading_factor
        # Sum of squared normalised weights of River's EWMean (the first label weighs 1).
        self._sum_sq_weights = (
            1.0 if self.n_labels_ == 0 else (1 - a) ** 2 * self._sum_sq_weights + a * a
        )
        self.n_labels_ += 1
        self.n_positive_ += y

    def update_many(self, labels: Iterable[int]) -> None:
        """Learn labels in order."""
        for label in labels:
            self.update(label)

    @property
    def window_rate(self) -> float | None:
        """The window's positive rate, unsmoothed; None before the first label."""
        if self.n_labels_ == 0:
            return None
        return float(self._stat.get())

    @property
    def n_effective(self) -> float:
        """How many labels the window's rate rests on."""
        if self.n_labels_ == 0:
            return 0.0
        if self.window == "rolling":
            return float(min(self.n_labels_, self.window_size))
        return 1.0 / self._sum_sq_weights

    def get(self) -> float:
        """The smoothed, clamped estimate of the positive-class rate."""
        rate = self.window_rate
        if rate is None:
            return self.reference
        n = self.n_effective
        estimate = (n * rate + self.strength * self.reference) / (n + self.strength)
        low, high = self.reference / self.max_ratio, min(self.reference * self.max_ratio, 1.0)
        return min(max(estimate, low), high)

    def log_odds_shift(self) -> float:
        """``logit(estimate) - logit(reference)``: what prior correction adds to a score's logit."""
        p, q = self.get(), self.reference
        return math.log(p / (1 - p)) - math.log(q / (1 - q))
