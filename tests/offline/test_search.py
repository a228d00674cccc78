"""The search's pieces: rungs, stratified nested samples, the prior mapped back, the budget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score

from offline.config import BudgetSettings
from offline.data import Dataset
from offline.search import Estimate, SearchBudget, plan_rates, subsample


def dataset(n: int = 5000, rate: float = 0.02, *, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    y[:2] = [1, 0]
    X = np.column_stack([np.arange(n, dtype=float), rng.normal(size=n) + 2 * y])
    return Dataset(
        X=X,
        y=y,
        features=("i", "x"),
        label="y",
        timestamps=np.arange(n, dtype=np.int64) * 1000,
        amount=rng.gamma(2.0, 10.0, n),
    )


@settings(max_examples=200, deadline=None)
@given(
    n_pos=st.integers(1, 100_000),
    n_neg=st.integers(1, 5_000_000),
    min_rows=st.integers(100, 200_000),
    eta=st.integers(2, 10),
    candidates=st.integers(1, 60),
    method=st.sampled_from(["auto", "halving", "exhaustive"]),
)
def test_rungs_obey_their_limits(
    n_pos: int, n_neg: int, min_rows: int, eta: int, candidates: int, method: str
) -> None:
    rates = plan_rates(
        n_pos,
        n_neg,
        method=method,
        min_rows=min_rows,
        eta=eta,
        candidates=candidates,  # type: ignore[arg-type]
    )
    assert rates[-1] == 1.0
    assert rates == sorted(rates)
    if method == "exhaustive" or candidates < 2:
        assert rates == [1.0]
    if method == "auto" and n_pos + n_neg < eta * min_rows:
        assert rates == [1.0]
    for prev, rate in itertools.pairwise(rates):
        assert rate == pytest.approx(prev * eta)
    first = rates[0]
    if len(rates) > 1:
        # The first rung keeps min_rows rows, never fewer negatives than positives, and there
        # are no more rungs than halving needs to bring the candidates down to one.
        assert n_pos + n_neg * first >= min_rows
        assert n_neg * first >= n_pos
        assert eta ** (len(rates) - 2) < candidates


def test_a_sample_keeps_every_positive_and_the_order() -> None:
    ds = dataset()
    sample = subsample(ds, 0.1, random_state=3)
    part = sample.data
    assert part.positives == ds.positives
    negatives = ds.n - ds.positives
    assert part.n - part.positives == round(negatives * 0.1)
    assert sample.rate == (part.n - part.positives) / negatives
    rows = part.X[:, 0].astype(int)  # column 0 is the row number
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(part.y, ds.y[rows])
    assert part.timestamps is not None
    assert ds.timestamps is not None
    assert part.amount is not None
    assert ds.amount is not None
    np.testing.assert_array_equal(part.timestamps, ds.timestamps[rows])
    np.testing.assert_array_equal(part.amount, ds.amount[rows])
    # Nested: each larger rate's sample holds the smaller one's rows.
    bigger = subsample(ds, 0.3, random_state=3).data.X[:, 0]
    assert set(rows) <= set(bigger.astype(int))
    other = subsample(ds, 0.1, random_state=4).data.X[:, 0].astype(int)
    assert set(rows) != set(other)


def test_probabilities_are_mapped_back_to_the_data_prior() -> None:
    sample = subsample(dataset(), 0.25, random_state=0)
    p = np.array([0.01, 0.2, 0.5, 0.9, 0.999])
    # Keeping a share r of the negatives multiplies the odds by 1/r: the inverse is
    # logit(p) + log(r).
    expected = expit(logit(p) + np.log(sample.rate))
    np.testing.assert_allclose(sample.correct(p), expected, rtol=1e-12)
    whole = subsample(dataset(), 1.0, random_state=0)
    assert whole.correct(p) is p
    assert whole.weight is None


def test_the_weighted_pr_auc_of_a_sample_estimates_the_data_one() -> None:
    ds = dataset(200_000, 0.01)
    scores = ds.X[:, 1]
    full = average_precision_score(ds.y, scores)
    sample = subsample(ds, 0.05, random_state=0)
    weighted = average_precision_score(
        sample.data.y, sample.data.X[:, 1], sample_weight=sample.weight
    )
    raw = average_precision_score(sample.data.y, sample.data.X[:, 1])
    assert weighted == pytest.approx(full, abs=0.02)
    assert raw > full + 0.1  # unweighted, the sample's higher prior inflates it


def test_budget_in_fits_and_in_seconds() -> None:
    now = [0.0]
    timed = SearchBudget(BudgetSettings(seconds=10.0), clock=lambda: now[0])
    assert timed.allows(5)
    now[0] = 9.9
    assert timed.allows(100)
    now[0] = 10.0
    assert not timed.allows(1)
    assert timed.reason() == "budget of 10 s spent"
    fits = SearchBudget(BudgetSettings(fits=7))
    assert fits.allows(7)
    fits.spend(3)
    assert not fits.allows(5)
    assert fits.allows(4)
    unlimited = SearchBudget(BudgetSettings())
    unlimited.spend(10**6)
    assert unlimited.allows(10**6)


def test_time_left_scales_with_the_rows_left() -> None:
    e = Estimate()
    e.add(rows=1000, seconds=1.0)
    e.add(rows=3000, seconds=7.0)
    assert e.left(4000) == pytest.approx(8.0)
    assert e.left(0) == 0.0
