"""Fitting calibrators on out-of-fold scores; calibration metrics against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss

from offline.calibration import (
    MANY_POSITIVES,
    MIN_ISOTONIC_POSITIVES,
    REPEATS_FEW_POSITIVES,
    SIMPLEST_FIRST,
    calibration_report,
    fit_calibrator,
    platt_newton,
    platt_targets,
)
from stream_detector.errors import DataError


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true fraud probability is their cube: far too high in the middle."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(size=n)
    return s, (rng.uniform(size=n) < s**3).astype(int)


@pytest.mark.parametrize("method", ["auto", "platt", "isotonic"])
def test_calibration_cuts_the_error_on_held_out_rows(method: str) -> None:
    s, y = overconfident(6000, seed=0)
    held_s, held_y = overconfident(6000, seed=1)
    calibrator, how = fit_calibrator(s, y, method=method)  # type: ignore[arg-type]
    before = calibration_report(held_y, held_s)
    after = calibration_report(held_y, calibrator(held_s))
    assert after.ece < 0.25 * before.ece
    assert after.brier < before.brier
    assert after.log_loss < before.log_loss
    assert how["method"] in ("platt", "isotonic")
    if method != "auto":
        assert how["method"] == method


def one_standard_error_choice(how: dict) -> str:
    """The simplest method within one standard error of the lowest cross-validated log loss."""
    loss, se = how["cv_log_loss"], how["cv_log_loss_se"]
    best = min(loss, key=loss.__getitem__)
    return next(m for m in SIMPLEST_FIRST if m in loss and loss[m] <= loss[best] + se[best])


def test_auto_compares_all_three_by_cross_validation_when_positives_allow() -> None:
    s, y = overconfident(4000, seed=2)
    _, how = fit_calibrator(s, y)
    assert set(how["cv_log_loss"]) == {"identity", "platt", "isotonic"}
    assert set(how["cv_log_loss_se"]) == set(how["cv_log_loss"])
    assert how["method"] == one_standard_error_choice(how)
    assert how["method"] != "identity"  # the cube is far from calibrated


def test_auto_keeps_the_simplest_within_one_standard_error() -> None:
    # Scores that a logistic curve calibrates exactly: isotonic may win the cross-validation
    # by a hair, but not by more than its noise, and Platt is kept.
    rng = np.random.default_rng(4)
    s = rng.uniform(size=3000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-(3 * np.log(s / (1 - s)) - 2)))).astype(int)
    _, how = fit_calibrator(s, y)
    assert how["method"] == one_standard_error_choice(how) == "platt"


@pytest.mark.parametrize(
    ("positives", "repeats"), [(60, REPEATS_FEW_POSITIVES), (MANY_POSITIVES, 1)]
)
def test_few_positives_repeat_the_cross_validation(positives: int, repeats: int) -> None:
    rng = np.random.default_rng(6)
    y = np.zeros(4 * MANY_POSITIVES, dtype=int)
    y[:positives] = 1
    s = np.clip(0.3 * y + rng.uniform(size=y.size) * 0.7, 0, 1)
    _, how = fit_calibrator(s, y, cv=5)
    assert how["cv_splits"] == 5 * repeats


def test_platt_is_the_maximum_likelihood_fit() -> None:
    """Newton's method against scikit-learn's unpenalised logistic regression (the oracle)."""
    rng = np.random.default_rng(7)
    z = rng.normal(scale=3.0, size=5000)
    y = (rng.uniform(size=5000) < 1 / (1 + np.exp(-(0.4 * z - 3.0)))).astype(int)
    oracle = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(z[:, None], y)
    slope, intercept = platt_newton(z, y)
    assert slope == pytest.approx(oracle.coef_[0, 0], abs=1e-6)
    assert intercept == pytest.approx(oracle.intercept_[0], abs=1e-6)


def test_platt_fits_targets_as_weighted_labels() -> None:
    """Soft targets t equal a label 1 of weight t and a label 0 of weight 1 - t (the oracle)."""
    rng = np.random.default_rng(8)
    z = rng.normal(size=300)
    y = (z + rng.normal(size=300) > 2.0).astype(int)
    t = platt_targets(y)
    oracle = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(
        np.concatenate([z, z])[:, None],
        np.repeat([1, 0], 300),
        sample_weight=np.concatenate([t, 1 - t]),
    )
    slope, intercept = platt_newton(z, t)
    assert slope == pytest.approx(oracle.coef_[0, 0], abs=1e-5)
    assert intercept == pytest.approx(oracle.intercept_[0], abs=1e-5)


def test_platt_stays_off_certainty_on_separated_classes() -> None:
    s = np.linspace(0.01, 0.99, 100)
    y = (s > 0.5).astype(int)
    calibrator, _ = fit_calibrator(s, y, method="platt")
    p = calibrator(s)
    assert np.isfinite([calibrator.slope, calibrator.intercept]).all()
    assert p.min() > 0.0
    assert p.max() < 1.0
    # At the two rows nearest the boundary the curve says what Platt's targets allow, no more.
    middle = calibrator(np.array([0.49, 0.51]))
    assert 0.2 < middle[0] < 0.5 < middle[1] < 0.8


def test_few_positives_get_platt() -> None:
    s, y = overconfident(4000, seed=3)
    keep = np.concatenate(
        [np.flatnonzero(y == 0), np.flatnonzero(y == 1)[: MIN_ISOTONIC_POSITIVES - 1]]
    )
    calibrator, how = fit_calibrator(s[keep], y[keep])
    assert how["method"] == "platt"
    assert how["positives"] == MIN_ISOTONIC_POSITIVES - 1
    assert set(how["cv_log_loss"]) == {"identity", "platt"}
    assert calibrator.method == "platt"


def test_scores_already_calibrated_are_kept() -> None:
    rng = np.random.default_rng(9)
    s = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < s).astype(int)
    calibrator, how = fit_calibrator(s, y)
    assert how["method"] == "identity"
    best = min(how["cv_log_loss"], key=how["cv_log_loss"].__getitem__)
    assert how["cv_log_loss"]["identity"] <= how["cv_log_loss"][best] + how["cv_log_loss_se"][best]
    np.testing.assert_allclose(calibrator(s), s, atol=1e-12)


def test_isotonic_keeps_probabilities_off_zero_and_one() -> None:
    s = np.linspace(0, 1, 200)
    y = (s > 0.5).astype(int)
    calibrator, _ = fit_calibrator(s, y, method="isotonic")
    p = calibrator(s)
    assert p.min() > 0.0
    assert p.max() < 1.0


def test_scores_that_do_not_rank_get_the_base_rate() -> None:
    s = np.linspace(0, 1, 400)
    y = (s < 0.1).astype(int)  # anti-ranked
    calibrator, _ = fit_calibrator(s, y, method="platt")
    np.testing.assert_allclose(calibrator(s), y.mean(), rtol=1e-6)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [0, 1, 1], "one label per score"),
        ([0.1, 1.2], [0, 1], "scores in [0, 1]"),
        ([0.1, 0.2], [0, 0], "needs both classes"),
    ],
)
def test_bad_inputs_are_data_errors(scores: list[float], labels: list[int], message: str) -> None:
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fit_calibrator(scores, labels)


def test_report_against_definitions() -> None:
    rng = np.random.default_rng(5)
    s = rng.uniform(size=1001)
    y = (rng.uniform(size=1001) < s).astype(int)
    r = calibration_report(y, s, n_bins=7)
    assert r.brier == pytest.approx(brier_score_loss(y, s), abs=1e-15)
    assert r.log_loss == pytest.approx(log_loss(y, s), abs=1e-12)
    assert sum(r.bin_count) == 1001
    assert max(r.bin_count) - min(r.bin_count) <= 1
    order = np.argsort(s, kind="mergesort")
    first = order[: r.bin_count[0]]
    assert r.bin_score[0] == pytest.approx(s[first].mean())
    assert r.bin_rate[0] == pytest.approx(y[first].mean())
    gaps = np.abs(np.array(r.bin_score) - np.array(r.bin_rate))
    assert r.ece == pytest.approx(float(np.dot(gaps, r.bin_count)) / 1001)
    assert r.bin_score == sorted(r.bin_score)


def test_perfectly_calibrated_constant_scores_have_no_error() -> None:
    y = np.array([1] + [0] * 9)
    r = calibration_report(y, np.full(10, 0.1), n_bins=1)
    assert r.ece == pytest.approx(0.0)
