"""The River class-prior estimate against numpy on the same labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_detector.errors import ConfigError
from stream_detector.online import ClassPrior


def bernoulli(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(size=n) < rate).astype(np.int64)


def ew_oracle(labels: np.ndarray, a: float) -> tuple[float, float]:
    """Exponentially weighted mean and Kish effective size, from explicit weights."""
    n = labels.size
    w = a * (1 - a) ** np.arange(n - 1, -1, -1, dtype=np.float64)
    w[0] = (1 - a) ** (n - 1)  # River's EWMean starts at the first value
    return float(w @ labels / w.sum()), float(w.sum() ** 2 / (w**2).sum())


@pytest.mark.parametrize("n", [1, 7, 999, 1000, 1001, 12_345])
def test_rolling_window_equals_numpy(n: int) -> None:
    labels = bernoulli(n, 0.05, seed=n)
    prior = ClassPrior(reference=0.01, window="rolling", window_size=1000, strength=300)
    prior.update_many(labels.tolist())
    window = labels[-1000:]
    assert prior.window_rate == pytest.approx(window.mean(), abs=1e-12)
    assert prior.n_effective == window.size
    expected = (window.sum() + 300 * 0.01) / (window.size + 300)
    assert prior.get() == pytest.approx(expected, abs=1e-12)
    assert (prior.n_labels_, prior.n_positive_) == (n, int(labels.sum()))


@pytest.mark.parametrize("n", [1, 2, 50, 5_000])
def test_exponential_window_equals_numpy(n: int) -> None:
    labels = bernoulli(n, 0.1, seed=n)
    prior = ClassPrior(reference=0.02, window="ewm", fading_factor=0.01, strength=50)
    prior.update_many(labels.tolist())
    rate, n_eff = ew_oracle(labels, 0.01)
    assert prior.window_rate == pytest.approx(rate, abs=1e-9)
    assert prior.n_effective == pytest.approx(n_eff, rel=1e-9)
    assert prior.get() == pytest.approx((n_eff * rate + 50 * 0.02) / (n_eff + 50), abs=1e-9)


@pytest.mark.parametrize(("window", "rate"), [("rolling", 0.05), ("rolling", 0.002), ("ewm", 0.05)])
def test_estimate_converges_to_the_true_rate(window: str, rate: float) -> None:
    """After N = 60,000 labels the estimate is within 3 standard errors of the true rate.

    The rolling window holds 20,000 labels (ewm: effective size (2 - a) / a = 19,999); the
    standard error of a rate p over n labels is sqrt(p (1 - p) / n), and the smoothing bias
    toward the reference is at most strength / (n + strength) * |p - reference|.
    """
    labels = bernoulli(60_000, rate, seed=11)
    prior = ClassPrior(
        reference=0.01,
        window=window,
        window_size=20_000,  # type: ignore[arg-type]
        fading_factor=1e-4,
        strength=200,
    )
    prior.update_many(labels.tolist())
    n = prior.n_effective
    tolerance = 3 * math.sqrt(rate * (1 - rate) / n) + 200 / (n + 200) * abs(rate - 0.01)
    assert abs(prior.get() - rate) <= tolerance
    if window == "rolling":  # the window's rate is exactly numpy's
        assert prior.window_rate == pytest.approx(labels[-20_000:].mean(), abs=1e-12)


def test_a_handful_of_labels_cannot_swing_it() -> None:
    prior = ClassPrior(reference=0.01, window_size=20_000, strength=2_000, max_ratio=10)
    assert prior.get() == 0.01
    assert prior.log_odds_shift() == 0.0
    prior.update_many([1] * 5)
    assert prior.get() == pytest.approx((5 + 20) / 2005)  # 0.0125, not 1.0
    prior.update_many([1] * 50_000)
    assert prior.get() == pytest.approx(0.1)  # clamped at reference * max_ratio
    low = ClassPrior(reference=0.01, strength=0, max_ratio=4)
    low.update_many([0] * 100)
    assert low.get() == pytest.approx(0.0025)  # clamped at reference / max_ratio
    assert low.log_odds_shift() == pytest.approx(math.log(0.0025 / 0.9975) - math.log(0.01 / 0.99))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": 0.0}, r"reference prior must be in \(0, 1\); got 0.0"),
        ({"reference": 0.1, "window": "median"}, "window must be 'rolling' or 'ewm'; got 'median'"),
        ({"reference": 0.1, "window_size": 0}, "window_size must be >= 1"),
        ({"reference": 0.1, "max_ratio": 0.5}, "max_ratio >= 1; got 2000.0 and 0.5"),
    ],
)
def test_bad_parameters_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClassPrior(**kwargs)
