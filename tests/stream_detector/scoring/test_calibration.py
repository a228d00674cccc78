"""The compiled calibrator against scikit-learn's, the calibrated scorer, its payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from stream_detector.errors import BundleError
from stream_detector.scoring import CalibratedScorer, Calibrator, LinearScorer, Scorer
from stream_detector.scoring.link import clipped_logit

from .conftest import refusal

RNG = np.random.default_rng(7)
SCORES = RNG.uniform(size=3000) ** 2
LABELS = (RNG.uniform(size=3000) < np.sqrt(SCORES) * 0.4).astype(int)


def test_platt_equals_scikit_learn_logistic_regression_on_the_log_odds() -> None:
    z = clipped_logit(SCORES, 1e-15)[:, None]
    model = LogisticRegression(C=1e6).fit(z, LABELS)
    calibrator = Calibrator(
        "platt", slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0])
    )
    np.testing.assert_allclose(calibrator(SCORES), model.predict_proba(z)[:, 1], rtol=0, atol=1e-12)


def test_isotonic_equals_scikit_learn_isotonic_regression() -> None:
    model = IsotonicRegression(out_of_bounds="clip").fit(SCORES, LABELS)
    calibrator = Calibrator("isotonic", x=model.X_thresholds_, y=model.y_thresholds_)
    grid = np.linspace(-0.1, 1.1, 2001)
    np.testing.assert_allclose(
        calibrator(np.clip(grid, 0, 1)), model.predict(grid), rtol=0, atol=1e-12
    )


def test_calibrated_scorer_maps_the_inner_scores(
    roundtrip: Callable[[Scorer], Scorer],
) -> None:
    inner = LinearScorer(coef=[1.0, -0.5], intercept=-2.0)
    calibrator = Calibrator("isotonic", x=[0.0, 0.2, 1.0], y=[0.01, 0.1, 0.9])
    scorer = CalibratedScorer(inner, calibrator)
    X = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_array_equal(scorer.score_samples(X), calibrator(inner.score_samples(X)))
    np.testing.assert_array_equal(roundtrip(scorer).score_samples(X), scorer.score_samples(X))
    a = scorer.attribute(X, np.zeros(2))
    np.testing.assert_allclose(a.phi.sum(axis=1), scorer.score_samples(X) - a.base, atol=1e-12)


def test_calibrating_twice_is_refused() -> None:
    inner = CalibratedScorer(LinearScorer(coef=[1.0], intercept=0.0), Calibrator("platt"))
    with pytest.raises(ValueError, match="cannot be calibrated again"):
        CalibratedScorer(inner, Calibrator("platt"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "platt", "slope": 0.0}, "slope > 0"),
        ({"method": "platt", "intercept": np.nan}, "finite intercept"),
        ({"method": "platt", "x": [0.0, 1.0], "y": [0.0, 1.0]}, "takes no points"),
        ({"method": "isotonic", "x": [0.5], "y": [0.5]}, "needs 2 to"),
        ({"method": "isotonic", "x": [0.5, 0.4], "y": [0.1, 0.2]}, "strictly increasing"),
        ({"method": "isotonic", "x": [0.1, 0.4], "y": [0.3, 0.2]}, "non-decreasing"),
        ({"method": "isotonic", "x": [0.1, 1.4], "y": [0.1, 0.2]}, "in [0, 1]"),
        ({"method": "beta"}, "must be 'platt' or 'isotonic'"),
    ],
)
def test_invalid_calibrators_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Calibrator(**kwargs)


def _payload() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    inner = LinearScorer(coef=[1.0], intercept=0.0)
    calibrator = Calibrator("isotonic", x=[0.0, 1.0], y=[0.1, 0.2])
    return CalibratedScorer(inner, calibrator).to_payload()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s, a: s["calibrator"].update(method="beta"), "must be 'platt' or 'isotonic'"),
        (lambda s, a: a.update({"calibrator.y": np.array([0.3, 0.2])}), "non-decreasing"),
        (lambda s, a: a.pop("calibrator.x"), "'x' is missing"),
        (lambda s, a: a.update({"calibrator.z": np.zeros(2)}), "arrays x, y only"),
        (
            lambda s, a: s["calibrator"].update(method="platt", slope=1.0, intercept=0.0),
            "platt calibration has no arrays",
        ),
        (lambda s, a: s.update(n_features=2), "must read the spec's 2 features"),
        (lambda s, a: s.update(scorer=dict(s)), "cannot wrap another calibrated scorer"),
    ],
)
def test_malformed_payloads_are_bundle_errors(
    edit: Callable[[dict[str, Any], dict[str, Any]], Any], message: str
) -> None:
    assert message in refusal(_payload(), edit)


def test_platt_payload_round_trips() -> None:
    calibrator = Calibrator("platt", slope=0.7, intercept=-3.0)
    again = Calibrator.from_payload(*calibrator.to_payload())
    np.testing.assert_array_equal(again(SCORES), calibrator(SCORES))
    with pytest.raises(BundleError, match="'slope' must be a finite number"):
        Calibrator.from_payload({"method": "platt", "intercept": 0.0}, {})
