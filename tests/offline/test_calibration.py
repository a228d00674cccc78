"""Fitting calibrators on out-of-fold scores; calibration metrics against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from offline.calibration import MIN_ISOTONIC_POSITIVES, calibration_report, fit_calibrator
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


def test_auto_compares_both_by_cross_validation_when_positives_allow() -> None:
    s, y = overconfident(4000, seed=2)
    _, how = fit_calibrator(s, y)
    assert set(how["cv_log_loss"]) == {"identity", "platt", "isotonic"}
    assert how["method"] == min(how["cv_log_loss"], key=how["cv_log_loss"].__getitem__)


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
    assert how["cv_log_loss"]["identity"] <= min(how["cv_log_loss"].values())
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
