"""The threshold in force, in one of three modes, changeable live.

- ``fixed``: the operator's threshold (or the bundle's), as it is.
- ``prior_corrected``: the model's scores are probabilities calibrated at a reference prior
  :math:`\\pi_0` (the bundle's validation prior). When the live prior :math:`\\pi` differs,
  the posterior is corrected to it (Saerens, Latinne & Decaestecker 2002; Elkan 2001):

  .. math::

      \\operatorname{logit} p' = \\operatorname{logit} p + \\operatorname{logit} \\pi
      - \\operatorname{logit} \\pi_0

  and an event is flagged when :math:`p' \\ge t`. The correction is monotone, so the same rule
  reads in the model's own score space as :math:`p \\ge t'` with
  :math:`t' = \\sigma(\\operatorname{logit} t - \\operatorname{logit} \\pi +
  \\operatorname{logit} \\pi_0)`: the decision keeps ``flagged = score >= threshold`` with
  :math:`t'` as the threshold in force. If :math:`t` is the cost-optimal threshold
  :math:`c_{FP} / (c_{FP} + c_{FN})` on calibrated probabilities, the corrected rule stays
  cost-optimal under a pure prior shift.
- ``alert_rate``: the threshold is River's streaming quantile
  (``river.stats.RollingQuantile``) of the recent scores at ``1 - budget``, so about
  ``budget`` of the events are flagged whatever the score distribution does. Until
  ``min_scores`` scores were seen, the fixed threshold is in force.

:class:`ThresholdController` is shared between the run loop (which reads the threshold before
each batch and feeds it the batch's scores after) and the live-control channels (which change
the mode, threshold or budget from other threads); every change is logged with its old and new
values.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import get_args

from river import stats

from stream_detector.config import ThresholdMode
from stream_detector.errors import ConfigError

__all__ = ["ThresholdController", "ThresholdState", "corrected_threshold", "prior_corrected"]

log = logging.getLogger(__name__)

MODES: tuple[ThresholdMode, ...] = get_args(ThresholdMode)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def prior_corrected(score: float, *, reference_prior: float, live_prior: float) -> float:
    """A posterior calibrated at ``reference_prior`` corrected to ``live_prior`` (Saerens 2002).

    >>> round(prior_corrected(0.5, reference_prior=0.01, live_prior=0.05), 4)
    0.839
    """
    if score <= 0.0 or score >= 1.0:
        return score
    shift = _logit(live_prior) - _logit(reference_prior)
    return 1.0 / (1.0 + math.exp(-(_logit(score) + shift)))


def corrected_threshold(threshold: float, *, reference_prior: float, live_prior: float) -> float:
    """The score threshold that flags exactly the events whose corrected posterior is >= ``threshold``.

    >>> t = corrected_threshold(0.5, reference_prior=0.01, live_prior=0.05)
    >>> round(t, 4), round(prior_corrected(t, reference_prior=0.01, live_prior=0.05), 4)
    (0.161, 0.5)
    """
    if threshold <= 0.0 or threshold >= 1.0:
        return threshold
    shift = _logit(live_prior) - _logit(reference_prior)
    return 1.0 / (1.0 + math.exp(-(_logit(threshold) - shift)))


def _check_state(mode: str, threshold: float, budget: float) -> None:
    if mode not in MODES:
        raise ConfigError(f"threshold mode must be one of {list(MODES)}; got {mode!r}")
    if not (0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold must be in [0, 1]; got {threshold}")
    if not (0.0 < budget < 1.0):
        raise ConfigError(f"alert budget must be in (0, 1); got {budget}")


@dataclass(frozen=True, slots=True)
class ThresholdState:
    """What the operator set: the mode, the threshold and the alert budget."""

    mode: ThresholdMode
    threshold: float
    budget: float


class ThresholdController:
    """Decides the threshold in force for each batch.

    Parameters
    ----------
    mode
        ``"fixed"``, ``"prior_corrected"`` or ``"alert_rate"``.
    threshold
        The fixed threshold; in ``prior_corrected`` mode the threshold on corrected
        posteriors; in ``alert_rate`` mode the fallback until enough scores were seen.
    budget
        ``alert_rate``: the share of events to flag.
    reference_prior
        The prior the scores are calibrated at.
    window_size
        ``alert_rate``: recent scores the quantile is taken over.
    min_scores
        ``alert_rate``: scores to see before the quantile is used.
    probabilities
        Whether scores are calibrated probabilities; ``prior_corrected`` is refused otherwise.
    on_change
        Called with ``(old, new, source)`` after every change.

    Examples
    --------
    >>> import numpy as np
    >>> ctl = ThresholdController(mode="alert_rate", threshold=0.5, budget=0.1,
    ...                           reference_prior=0.01, window_size=1000, min_scores=100)
    >>> ctl.in_force(live_prior=0.01)       # too few scores yet: the fixed threshold
    (0.5, 'alert_rate')
    >>> ctl.observe(np.linspace(0, 1, 1001)[1:].tolist())
    >>> round(ctl.in_force(live_prior=0.01)[0], 4)   # the 90% quantile of the last 1000
    0.9001
    >>> ctl.set(mode="prior_corrected", source="admin").mode
    'prior_corrected'
    >>> round(ctl.in_force(live_prior=0.05)[0], 4)
    0.161
    """

    def __init__(
        self,
        *,
        mode: ThresholdMode,
        threshold: float,
        budget: float,
        reference_prior: float,
        window_size: int = 10_000,
        min_scores: int = 1_000,
        probabilities: bool = True,
        on_change: Callable[[ThresholdState, ThresholdState, str], None] | None = None,
    ) -> None:
        _check_state(mode, threshold, budget)
        if not (0.0 < reference_prior < 1.0):
            raise ConfigError(f"reference prior must be in (0, 1); got {reference_prior}")
        if mode == "prior_corrected" and not probabilities:
            raise ConfigError(_NOT_PROBABILITIES)
        self.reference_prior = reference_prior
        self.window_size = window_size
        self.min_scores = min_scores
        self.probabilities = probabilities
        self.on_change = on_change
        self._lock = threading.Lock()
        self._state = ThresholdState(mode, float(threshold), float(budget))
        # The last window_size scores, kept in every mode so a switch to alert_rate starts
        # warm; River's quantile is fed only in alert_rate mode and rebuilt from them when
        # needed (a rolling quantile depends on its window alone, so nothing differs).
        self._recent: deque[float] = deque(maxlen=window_size)
        self._quantile: stats.RollingQuantile | None = None

    @property
    def state(self) -> ThresholdState:
        """The mode, threshold and budget set."""
        return self._state

    def in_force(self, *, live_prior: float) -> tuple[float, ThresholdMode]:
        """The score threshold for the next batch, and the mode it comes from."""
        with self._lock:
            state = self._state
            if state.mode == "prior_corrected":
                t = corrected_threshold(
                    state.threshold, reference_prior=self.reference_prior, live_prior=live_prior
                )
            elif state.mode == "alert_rate" and len(self._recent) >= self.min_scores:
                quantile = self._warm_quantile().get()
                t = state.threshold if quantile is None else float(quantile)
            else:
                t = state.threshold
        return min(max(t, 0.0), 1.0), state.mode

    def observe(self, scores: Iterable[float]) -> None:
        """Remember a batch's scores (in every mode, so a switch to ``alert_rate`` starts
        warm) and, in ``alert_rate`` mode, feed them to the streaming quantile."""
        scores = scores if isinstance(scores, list) else list(scores)
        with self._lock:
            self._recent.extend(scores)
            if self._quantile is not None:
                update = self._quantile.update
                for s in scores:
                    update(s)

    def _warm_quantile(self) -> stats.RollingQuantile:
        """The streaming quantile over the recent scores (built from them when stale)."""
        if self._quantile is None:
            self._quantile = stats.RollingQuantile(
                q=1.0 - self._state.budget, window_size=self.window_size
            )
            for s in self._recent:
                self._quantile.update(s)
        return self._quantile

    def set(
        self,
        *,
        mode: ThresholdMode | None = None,
        threshold: float | None = None,
        budget: float | None = None,
        source: str,
    ) -> ThresholdState:
        """Change any of mode, threshold and budget; the next batch uses them.

        Raises ConfigError, changing nothing, if a value is invalid.
        """
        with self._lock:
            old = self._state
            new = replace(
                old,
                mode=old.mode if mode is None else mode,
                threshold=old.threshold if threshold is None else float(threshold),
                budget=old.budget if budget is None else float(budget),
            )
            _check_state(new.mode, new.threshold, new.budget)
            if new.mode == "prior_corrected" and not self.probabilities:
                raise ConfigError(_NOT_PROBABILITIES)
            if new.budget != old.budget or new.mode != "alert_rate":
                self._quantile = None  # rebuilt from the recent scores when next needed
            self._state = new
        if new != old:
            log.info(
                "threshold change source=%s mode=%s->%s threshold=%g->%g budget=%g->%g",
                source,
                old.mode,
                new.mode,
                old.threshold,
                new.threshold,
                old.budget,
                new.budget,
            )
            if self.on_change is not None:
                self.on_change(old, new, source)
        return new


_NOT_PROBABILITIES = (
    "threshold mode prior_corrected needs scores that are calibrated probabilities; "
    "this model's scores are anomaly scores"
)
