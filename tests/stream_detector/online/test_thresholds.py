"""Threshold modes: Saerens' correction, the streaming quantile, live changes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_detector.errors import ConfigError
from stream_detector.online import (
    ThresholdController,
    ThresholdState,
    corrected_threshold,
    prior_corrected,
)


def saerens(p: np.ndarray, old: float, new: float) -> np.ndarray:
    """Saerens et al. (2002), eq. 2.4, in its original form."""
    a, b = new / old * p, (1 - new) / (1 - old) * (1 - p)
    return a / (a + b)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.001, 0.999),
    st.floats(0.001, 0.5),
    st.floats(0.001, 0.5),
)
def test_threshold_in_score_space_flags_what_the_corrected_posterior_flags(
    t: float, old: float, new: float
) -> None:
    p = np.random.default_rng(0).uniform(size=2_000)
    corrected = saerens(p, old, new)
    np.testing.assert_allclose(
        [prior_corrected(x, reference_prior=old, live_prior=new) for x in p], corrected, rtol=1e-9
    )
    t_raw = corrected_threshold(t, reference_prior=old, live_prior=new)
    margin = np.abs(corrected - t) > 1e-9  # away from floating-point ties
    assert ((p >= t_raw) == (corrected >= t))[margin].all()


def test_corrected_threshold_keeps_the_edges() -> None:
    assert corrected_threshold(0.0, reference_prior=0.01, live_prior=0.2) == 0.0
    assert corrected_threshold(1.0, reference_prior=0.01, live_prior=0.2) == 1.0
    assert corrected_threshold(0.3, reference_prior=0.01, live_prior=0.01) == pytest.approx(0.3)


def controller(**kwargs: object) -> ThresholdController:
    base: dict = {
        "mode": "fixed",
        "threshold": 0.5,
        "budget": 0.05,
        "reference_prior": 0.01,
        "window_size": 2_000,
        "min_scores": 500,
    }
    return ThresholdController(**{**base, **kwargs})


def test_alert_rate_is_numpys_quantile_of_the_recent_scores() -> None:
    ctl = controller(mode="alert_rate")
    scores = np.random.default_rng(1).beta(1, 20, size=5_000)
    ctl.observe(scores[:400].tolist())
    assert ctl.in_force(live_prior=0.01) == (0.5, "alert_rate")  # fewer than min_scores
    ctl.observe(scores[400:].tolist())
    t, mode = ctl.in_force(live_prior=0.01)
    assert mode == "alert_rate"
    assert t == pytest.approx(np.quantile(scores[-2_000:], 0.95), abs=1e-12)
    ctl.set(budget=0.2, source="test")  # the window is kept, the quantile recomputed
    assert ctl.in_force(live_prior=0.01)[0] == pytest.approx(np.quantile(scores[-2_000:], 0.8))


def test_a_switch_to_alert_rate_starts_warm_and_equal_to_having_been_there() -> None:
    scores = np.random.default_rng(2).beta(1, 20, size=7_000)
    always, switched = controller(mode="alert_rate"), controller(mode="fixed")
    thresholds: list[tuple[float, float]] = []
    for start in range(0, scores.size, 700):
        batch = scores[start : start + 700]
        for ctl in (always, switched):
            ctl.observe(batch.tolist())
        if start == 2_800:
            switched.set(mode="alert_rate", source="test")
        if start >= 2_800:
            thresholds.append(
                (always.in_force(live_prior=0.01)[0], switched.in_force(live_prior=0.01)[0])
            )
        if start == 4_200:
            for ctl in (always, switched):
                ctl.set(budget=0.1, source="test")
    assert thresholds
    assert all(a == b for a, b in thresholds), thresholds
    assert thresholds[-1][0] == pytest.approx(np.quantile(scores[-2_000:], 0.9), abs=1e-12)
    switched.set(mode="fixed", source="test")  # and back: the fixed threshold again
    assert switched.in_force(live_prior=0.01) == (0.5, "fixed")


def test_alert_rate_holds_the_flagged_fraction_after_a_shift() -> None:
    """Scores move up by a lot mid-stream; after one window, flagging stays near the budget."""
    rng = np.random.default_rng(5)
    budget, batch = 0.02, 250
    stream = np.r_[rng.beta(1, 30, 20_000), rng.beta(3, 10, 20_000)]
    ctl = controller(mode="alert_rate", budget=budget, window_size=5_000, min_scores=1_000)
    flagged = []
    for start in range(0, stream.size, batch):
        t, _ = ctl.in_force(live_prior=0.01)
        scores = stream[start : start + batch]
        flagged.extend((scores >= t).tolist())
        ctl.observe(scores.tolist())
    after = np.asarray(flagged[20_000 + 5_000 :])  # once the window holds only new scores
    assert abs(after.mean() / budget - 1) < 0.2
    before = np.asarray(flagged[1_000:20_000])
    assert abs(before.mean() / budget - 1) < 0.2


def test_prior_corrected_follows_the_live_prior() -> None:
    ctl = controller(mode="prior_corrected", threshold=0.2)
    assert ctl.in_force(live_prior=0.01) == (pytest.approx(0.2), "prior_corrected")
    t, _ = ctl.in_force(live_prior=0.05)
    assert t == pytest.approx(corrected_threshold(0.2, reference_prior=0.01, live_prior=0.05))
    assert t < 0.2


def test_changes_are_validated_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[ThresholdState, ThresholdState, str]] = []
    ctl = controller(on_change=lambda old, new, source: seen.append((old, new, source)))
    with caplog.at_level(logging.INFO, logger="stream_detector.online.thresholds"):
        state = ctl.set(mode="alert_rate", threshold=0.7, source="admin")
    assert state == ThresholdState("alert_rate", 0.7, 0.05) == ctl.state
    assert seen == [(ThresholdState("fixed", 0.5, 0.05), state, "admin")]
    assert "threshold change source=admin mode=fixed->alert_rate threshold=0.5->0.7" in caplog.text
    for bad, message in [
        ({"threshold": 1.5}, r"threshold must be in \[0, 1\]; got 1.5"),
        ({"budget": 0.0}, r"alert budget must be in \(0, 1\); got 0.0"),
        ({"mode": "median"}, "threshold mode must be one of"),
    ]:
        with pytest.raises(ConfigError, match=message):
            ctl.set(source="admin", **bad)  # type: ignore[arg-type]
    assert ctl.state == state
    assert len(seen) == 1
    ctl.set(threshold=0.7, source="admin")  # no change: not reported
    assert len(seen) == 1


def test_prior_correction_needs_probabilities() -> None:
    with pytest.raises(ConfigError, match="prior_corrected needs scores that are calibrated"):
        controller(mode="prior_corrected", probabilities=False)
    ctl = controller(probabilities=False)
    with pytest.raises(ConfigError, match="anomaly scores"):
        ctl.set(mode="prior_corrected", source="sighup")
    assert ctl.state.mode == "fixed"
