"""Plots: the alert-rate curve against counting by hand."""

from __future__ import annotations

import numpy as np
import pytest

from offline.plots import alert_rate_curve


def test_alert_rate_curve_against_counting() -> None:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=500) < 0.05).astype(int)
    s = np.round(rng.uniform(size=500), 2)  # ties
    rate, precision, recall, t = alert_rate_curve(y, s)
    for r, p, q, threshold in zip(rate, precision, recall, t, strict=True):
        hit = s >= threshold
        assert r == pytest.approx(hit.mean())
        assert p == pytest.approx(y[hit].mean())
        assert q == pytest.approx(y[hit].sum() / y.sum())
    assert np.all(np.diff(rate) > 0)
