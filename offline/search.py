"""How ``compare`` spends its effort: successive halving over stratified samples, a budget.

Successive halving (Jamieson and Talwalkar 2016; Li et al., *Hyperband*, 2018) judges every
candidate cheaply and only the promising ones expensively. The search runs in *rungs*:

- rung 1 cross-validates every candidate on a stratified sample of the rows: **every
  positive** (the rare class is what the candidates differ on) and a share ``rate`` of the
  negatives, drawn with the seed and kept in their original (time) order;
- each next rung keeps the best ``1/eta`` of the candidates (by PR-AUC; the best logistic and
  the best gradient-boosting candidate too, when the blend is on, so that it can be built)
  and judges them on ``eta`` times as many negatives; the samples are nested, each rung's
  rows a superset of the previous one's;
- the last rung holds every row: the winner is always chosen, and its threshold set, on
  out-of-fold scores of all the data, as without halving.

A sample changes the class prior: with a share ``rate`` of the negatives kept, the odds of
fraud are ``1 / rate`` times the data's. The probabilities judged on a sample are mapped back
(``logit(p) + log(rate)``) and its PR-AUC is computed with each negative weighted ``1 / rate``,
an estimate of the PR-AUC on all the rows.

:func:`plan_rates` gives the rungs' rates: as many rungs as keep the first one at least
``min_rows`` rows (and at least as many negatives as positives), and no more than halving
needs to bring the candidates down to one. With one rung the search is exhaustive: every
candidate on every row.

:class:`SearchBudget` bounds the search in wall time or model fits, and :class:`Estimate`
predicts its time left from the time spent per row judged so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from offline.config import BudgetSettings, SearchMethod
from offline.data import Dataset

__all__ = ["Estimate", "RungCost", "SearchBudget", "Subsample", "plan_rates", "subsample"]


def plan_rates(
    n_pos: int,
    n_neg: int,
    *,
    method: SearchMethod,
    min_rows: int,
    eta: int,
    candidates: int,
) -> list[float]:
    """The share of the negatives each rung judges on, first rung first; the last is 1.0.

    Examples
    --------
    >>> plan_rates(17_000, 1_743_000, method="auto", min_rows=50_000, eta=3, candidates=18)
    [0.037037037037037035, 0.1111111111111111, 0.3333333333333333, 1.0]
    >>> plan_rates(300, 40_000, method="auto", min_rows=50_000, eta=3, candidates=18)
    [1.0]
    >>> plan_rates(300, 40_000, method="halving", min_rows=4_000, eta=3, candidates=18)
    [0.1111111111111111, 0.3333333333333333, 1.0]
    >>> plan_rates(300, 40_000, method="exhaustive", min_rows=100, eta=3, candidates=18)
    [1.0]
    """
    if method == "exhaustive" or candidates < 2:
        return [1.0]
    most = 1 + math.ceil(math.log(candidates) / math.log(eta) - 1e-9)
    rungs = 1
    while rungs < most:
        negatives = n_neg / eta**rungs
        if n_pos + negatives < min_rows or negatives < n_pos:
            break
        rungs += 1
    if method == "auto" and n_pos + n_neg < eta * min_rows:
        rungs = 1
    return [float(eta ** -(rungs - 1 - r)) for r in range(rungs)]


@dataclass(frozen=True)
class Subsample:
    """A rung's rows: ``data`` (the dataset itself at rate 1) and its negatives' ``rate``."""

    data: Dataset
    rate: float

    @property
    def weight(self) -> npt.NDArray[np.float64] | None:
        """Per-row weights estimating metrics of all the rows (None at rate 1)."""
        if self.rate >= 1.0:
            return None
        return np.where(self.data.y == 1, 1.0, 1.0 / self.rate)

    def correct(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities at the sample's prior mapped to the data's (odds times ``rate``)."""
        if self.rate >= 1.0:
            return scores
        p = np.clip(scores, 1e-15, 1.0 - 1e-15)
        return np.asarray(1.0 / (1.0 + (1.0 - p) / (p * self.rate)), dtype=np.float64)


def subsample(ds: Dataset, rate: float, *, random_state: int | None) -> Subsample:
    """Every positive of ``ds`` and a share ``rate`` of its negatives, in the original order.

    The negatives are the first ``rate`` of one seeded permutation, so that the samples of
    increasing rates are nested. At rate 1 the dataset itself is returned (no copy).

    Examples
    --------
    >>> ds = Dataset(X=np.arange(20.0).reshape(10, 2), y=np.array([0] * 8 + [1, 1]),
    ...              features=("a", "b"), label="y")
    >>> sample = subsample(ds, 0.5, random_state=0)
    >>> sample.data.n, sample.data.positives, sample.data.X[:, 0].tolist()
    (6, 2, [4.0, 6.0, 8.0, 12.0, 16.0, 18.0])
    >>> set(sample.data.X[:, 0]) <= set(subsample(ds, 0.75, random_state=0).data.X[:, 0])
    True
    >>> subsample(ds, 1.0, random_state=0).data is ds
    True
    """
    if rate >= 1.0:
        return Subsample(ds, 1.0)
    negatives = np.flatnonzero(ds.y == 0)
    keep = np.random.default_rng(random_state).permutation(negatives.size)
    chosen = negatives[np.sort(keep[: max(1, round(negatives.size * rate))])]
    rows = np.sort(np.concatenate([np.flatnonzero(ds.y == 1), chosen]))
    part = Dataset(
        X=ds.X[rows],
        y=ds.y[rows],
        features=ds.features,
        label=ds.label,
        timestamps=ds.timestamps[rows] if ds.timestamps is not None else None,
        amount=ds.amount[rows] if ds.amount is not None else None,
        notes=ds.notes,
    )
    return Subsample(part, chosen.size / negatives.size)


@dataclass(frozen=True)
class RungCost:
    """What one rung cost: its rows, the candidates it judged, wall and CPU seconds.

    Examples
    --------
    >>> RungCost(rows=9_000, candidates=18, seconds=12.5, cpu_seconds=12.0).row()
    {'rows': 9000, 'candidates': 18, 'seconds': 12.5, 'cpu_seconds': 12.0}
    """

    rows: int
    candidates: int
    seconds: float
    cpu_seconds: float

    def row(self) -> dict[str, int | float]:
        """One entry of the manifest's ``selection.rungs``."""
        return {
            "rows": self.rows,
            "candidates": self.candidates,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
        }


class SearchBudget:
    """The limits of :class:`~offline.config.BudgetSettings`, counted from construction.

    Examples
    --------
    >>> b = SearchBudget(BudgetSettings(fits=10))
    >>> b.allows(5), b.spend(5), b.allows(5), b.spend(5), b.allows(5)
    (True, None, True, None, False)
    >>> b.reason()
    'budget of 10 fits spent'
    """

    def __init__(
        self, settings: BudgetSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.started = clock()
        self.fits = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the search began."""
        return self.clock() - self.started

    def allows(self, fits: int) -> bool:
        """Whether a candidate of ``fits`` more fits may start."""
        s = self.settings
        if s.fits is not None and self.fits + fits > s.fits:
            return False
        return s.seconds is None or self.elapsed < s.seconds

    def spend(self, fits: int) -> None:
        """Count ``fits`` fits done."""
        self.fits += fits

    def reason(self) -> str:
        """Which limit stopped the search."""
        s = self.settings
        if s.fits is not None and self.fits >= s.fits:
            return f"budget of {s.fits} fits spent"
        return f"budget of {s.seconds:g} s spent"


class Estimate:
    """Time left of a search, from the seconds spent per row judged so far.

    Examples
    --------
    >>> e = Estimate()
    >>> e.left(1000) is None
    True
    >>> e.add(rows=500, seconds=2.0)
    >>> e.left(2000)
    8.0
    """

    def __init__(self) -> None:
        self.rows = 0
        self.seconds = 0.0

    def add(self, *, rows: int, seconds: float) -> None:
        """One candidate judged on ``rows`` rows took ``seconds``."""
        self.rows += rows
        self.seconds += seconds

    def left(self, rows: int) -> float | None:
        """Seconds to judge ``rows`` more candidate-rows; None before any measurement."""
        if self.rows == 0:
            return None
        return self.seconds / self.rows * rows
