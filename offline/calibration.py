"""Fitting a calibrator on out-of-fold scores, and measuring how well scores are calibrated.

:func:`fit_calibrator` fits Platt scaling and isotonic regression on out-of-fold scores and
keeps the one with the lower log loss over a stratified cross-validation of those scores, or
the scores as they are (``identity``) when neither beats them. Few positives do not support a
curve that bends wherever the data say: below :data:`MIN_ISOTONIC_POSITIVES` positives the
choice is between Platt, whose two parameters stay sound, and the identity.

:func:`calibration_report` measures calibration: the Brier score, the log loss and the
expected calibration error (ECE) over bins of equal mass (each holds as many rows, so the many
low scores of a rare-event model do not all land in the first of ten equal-width bins), with
the bins of the reliability diagram (mean score against observed fraud rate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.model_selection import RepeatedStratifiedKFold

from stream_detector.errors import DataError
from stream_detector.scoring import Calibrator
from stream_detector.scoring.link import clipped_logit, sigmoid

__all__ = [
    "MANY_POSITIVES",
    "MIN_ISOTONIC_POSITIVES",
    "REPEATS_FEW_POSITIVES",
    "SIMPLEST_FIRST",
    "CalibrationReport",
    "calibrate_out_of_fold",
    "calibration_report",
    "fit_calibrator",
    "platt_newton",
    "platt_targets",
]

Array = npt.NDArray[np.float64]
Method = Literal["auto", "platt", "isotonic"]

MIN_ISOTONIC_POSITIVES = 50
"""Fewer positives than this and ``auto`` does not try isotonic regression."""

MANY_POSITIVES = 500
"""From this many positives ``auto`` cross-validates once; below, :data:`REPEATS_FEW_POSITIVES`
times with other splits."""

REPEATS_FEW_POSITIVES = 5

SIMPLEST_FIRST: tuple[str, ...] = ("identity", "platt", "isotonic")
"""The methods ``auto`` compares, from the fewest parameters to the most."""

_LOGIT_EPS = 1e-15


def platt_newton(
    z: Array, y: npt.ArrayLike, *, max_iter: int = 100, tol: float = 1e-10
) -> tuple[float, float]:
    """Maximum-likelihood ``(slope, intercept)`` of ``P(y=1) = sigmoid(slope * z + intercept)``.

    ``y`` holds labels or targets in [0, 1] (:func:`platt_targets`).

    Newton's method from the identity ``(1, 0)``, halving a step that does not lower the log
    loss; a vanishing ridge (1e-9 per row on the slope) keeps the slope finite when the classes
    are separated.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=20000)
    >>> y = rng.uniform(size=20000) < 1 / (1 + np.exp(-(0.5 * z - 2.0)))
    >>> np.round(platt_newton(z, y), 1)
    array([ 0.5, -2. ])
    """
    x = np.asarray(z, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    ridge = 1e-9 * x.size

    def loss(w: Array) -> float:
        eta = w[0] * x + w[1]
        return float(np.sum(np.logaddexp(0.0, eta) - t * eta) + 0.5 * ridge * w[0] ** 2)

    w = np.array([1.0, 0.0])
    current = loss(w)
    for _ in range(max_iter):
        p = sigmoid(w[0] * x + w[1])
        r = p - t
        grad = np.array([r @ x + ridge * w[0], r.sum()])
        v = p * (1.0 - p)
        hess = np.array([[v @ (x * x) + ridge, v @ x], [v @ x, v.sum()]])
        hess += 1e-12 * np.eye(2)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = grad / max(float(np.trace(hess)), 1e-12)
        scale = 1.0
        while scale > 1e-10:
            trial = w - scale * step
            new = loss(trial)
            if new <= current:
                break
            scale *= 0.5
        else:
            break
        w, previous, current = trial, current, new
        if float(np.max(np.abs(scale * step))) < tol or previous - current < tol * 1e-3:
            break
    return float(w[0]), float(w[1])


def platt_targets(y: npt.ArrayLike) -> Array:
    """Platt's (1999) targets: ``(P + 1) / (P + 2)`` for a positive, ``1 / (N + 2)`` for a
    negative, out of ``P`` positives and ``N`` negatives.

    Fitted to these rather than to 0 and 1, the curve never promises certainty the rows do not
    show, and its slope stays finite when the scores separate the classes.

    >>> platt_targets([1, 0, 0, 0]).tolist()
    [0.6666666666666666, 0.2, 0.2, 0.2]
    """
    labels = np.asarray(y, dtype=np.float64)
    positives = float(labels.sum())
    negatives = labels.size - positives
    return np.where(labels > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))


def _platt(scores: Array, y: npt.NDArray[np.int64]) -> Calibrator:
    slope, intercept = platt_newton(clipped_logit(scores, _LOGIT_EPS), platt_targets(y))
    if not slope > 0:  # scores that do not rank: the rate of the data, whatever the score
        rate = float(np.clip(y.mean(), 1e-12, 1 - 1e-12))
        slope, intercept = 1e-9, float(np.log(rate / (1 - rate)))
    return Calibrator("platt", slope=slope, intercept=intercept)


def _isotonic(scores: Array, y: npt.NDArray[np.int64]) -> Calibrator:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
    x = np.asarray(model.X_thresholds_, dtype=np.float64)
    p = np.asarray(model.y_thresholds_, dtype=np.float64)
    # Keep the probabilities off 0 and 1 by half a row: a step of the training data that held
    # no fraud is not proof that none ever comes.
    half = 0.5 / (y.size + 1.0)
    p = np.clip(p, half, 1.0 - half)
    if x.size < 2:  # every score alike: a flat line across [0, 1]
        x, p = np.array([0.0, 1.0]), np.repeat(p[:1] if p.size else [y.mean()], 2)
    return Calibrator("isotonic", x=x, y=np.maximum.accumulate(p))


def _identity(scores: Array, y: npt.NDArray[np.int64]) -> Calibrator:
    return Calibrator("platt", slope=1.0, intercept=0.0)


def fit_calibrator(
    scores: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    method: Method = "auto",
    cv: int = 5,
    random_state: int = 0,
) -> tuple[Calibrator, dict[str, Any]]:
    """Fit a calibrator on out-of-fold scores and say how it was chosen.

    Parameters
    ----------
    scores
        Out-of-fold scores in [0, 1] of the training rows.
    y
        Their 0/1 labels.
    method
        ``"platt"``, ``"isotonic"``, or ``"auto"``: of the identity (the scores as they are),
        Platt and isotonic (from :data:`MIN_ISOTONIC_POSITIVES` positives), the simplest whose
        cross-validated log loss on ``(scores, y)`` is within one standard error of the lowest;
        with too few rows of a class for two folds, Platt.
    cv, random_state
        Folds of that cross-validation (repeated :data:`REPEATS_FEW_POSITIVES` times below
        :data:`MANY_POSITIVES` positives) and their seed.

    Returns
    -------
    (Calibrator, dict)
        The calibrator fitted on all the rows, and ``{"method", "positives", "cv_log_loss",
        "cv_log_loss_se", "cv_splits"}``: the cross-validated log loss of each method tried, its
        standard error over the splits, and the number of splits (empty and 0 when none was
        compared).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(size=4000)
    >>> y = (rng.uniform(size=4000) < 0.3 * (s > 0.5)).astype(int)  # a step: P(y) 0 or 0.3
    >>> calibrator, how = fit_calibrator(s, y)
    >>> how["method"], calibrator(np.array([0.25, 0.75])).round(1), how["cv_splits"]
    ('isotonic', array([0. , 0.3]), 5)
    >>> how = fit_calibrator(s[:200], y[:200])[1]  # few positives: no isotonic
    >>> how["method"], how["positives"], sorted(how["cv_log_loss"])
    ('platt', 36, ['identity', 'platt'])
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(y).astype(np.int64).ravel()
    if s.shape != labels.shape or s.size == 0:
        raise DataError(f"need one label per score; got {s.size} scores, {labels.size} labels")
    if not (np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0):
        raise DataError("calibration needs scores in [0, 1]")
    positives = int(labels.sum())
    if positives == 0 or positives == labels.size:
        raise DataError(f"calibration needs both classes; got {positives} positives of {s.size}")
    fitters = {"platt": _platt, "isotonic": _isotonic, "identity": _identity}
    tried: dict[str, float] = {}
    spread: dict[str, float] = {}
    n_splits = 0
    chosen: str = method
    if method == "auto":
        chosen = "platt"
        folds = min(cv, positives, labels.size - positives)
        if folds >= 2:
            names = [n for n in SIMPLEST_FIRST if n != "isotonic"]
            if positives >= MIN_ISOTONIC_POSITIVES:
                names.append("isotonic")
            repeats = 1 if positives >= MANY_POSITIVES else REPEATS_FEW_POSITIVES
            split = RepeatedStratifiedKFold(
                n_splits=folds, n_repeats=repeats, random_state=random_state
            )
            losses: dict[str, list[float]] = {name: [] for name in names}
            for train, test in split.split(s, labels):
                for name in names:
                    p = fitters[name](s[train], labels[train])(s[test])
                    losses[name].append(
                        log_loss(labels[test], np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])
                    )
            n_splits = folds * repeats
            for name in names:
                tried[name] = float(np.mean(losses[name]))
                spread[name] = float(np.std(losses[name], ddof=1) / np.sqrt(n_splits))
            best = min(tried, key=tried.__getitem__)
            bound = tried[best] + spread[best]
            chosen = next(name for name in names if tried[name] <= bound)
    elif method not in ("platt", "isotonic"):
        raise DataError(f"calibration method must be auto, platt or isotonic; got {method!r}")
    return fitters[chosen](s, labels), {
        "method": chosen,
        "positives": positives,
        "cv_log_loss": tried,
        "cv_log_loss_se": spread,
        "cv_splits": n_splits,
    }


def calibrate_out_of_fold(
    scores: npt.ArrayLike,
    mask: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    method: Method = "auto",
    random_state: int = 0,
) -> tuple[Calibrator, dict[str, Any], Array]:
    """Fit a calibrator on the out-of-fold scores and calibrate them.

    Parameters
    ----------
    scores
        Out-of-fold scores of every row (meaningful where ``mask``).
    mask
        Rows that have an out-of-fold score.
    y
        Labels of every row.
    method, random_state
        As :func:`fit_calibrator`.

    Returns
    -------
    (Calibrator, dict, ndarray)
        The calibrator, how it was chosen, and the calibrated scores (rows outside ``mask``
        keep their value).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> s = rng.uniform(size=3000); y = (rng.uniform(size=3000) < s ** 4).astype(int)
    >>> mask = np.arange(3000) >= 500
    >>> calibrator, how, calibrated = calibrate_out_of_fold(s, mask, y)
    >>> bool(np.array_equal(calibrated[:500], s[:500])), how["positives"] == int(y[mask].sum())
    (True, True)
    """
    s = np.array(scores, dtype=np.float64)
    rows = np.asarray(mask, dtype=bool)
    labels = np.asarray(y)
    calibrator, how = fit_calibrator(
        s[rows], labels[rows], method=method, random_state=random_state
    )
    s[rows] = calibrator(s[rows])
    return calibrator, how, s


@dataclass(frozen=True)
class CalibrationReport:
    """How well scores estimate the probability of fraud.

    Attributes
    ----------
    brier : float
        Mean squared difference between score and label (0 is perfect).
    log_loss : float
        Mean negative log-likelihood of the labels (scores clipped to ``[1e-15, 1 - 1e-15]``).
    ece : float
        Expected calibration error: over bins of equal mass, the row-weighted mean of
        ``|mean score - fraud rate|``.
    bin_score, bin_rate : list of float
        Mean score and observed fraud rate of each bin (the reliability diagram).
    bin_count : list of int
        Rows in each bin.
    """

    brier: float
    log_loss: float
    ece: float
    bin_score: list[float]
    bin_rate: list[float]
    bin_count: list[int]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


def calibration_report(
    y_true: npt.ArrayLike, scores: npt.ArrayLike, *, n_bins: int = 10
) -> CalibrationReport:
    """Brier score, log loss, ECE over ``n_bins`` equal-mass bins, and the reliability bins.

    Rows are sorted by score and cut into bins of (nearly) equal size; rows with equal scores
    may fall into neighbouring bins.

    Examples
    --------
    >>> r = calibration_report([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9], n_bins=2)
    >>> round(r.brier, 4), round(r.ece, 4), r.bin_score, r.bin_rate
    (0.0675, 0.225, [0.2, 0.75], [0.0, 1.0])
    """
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape or y.size == 0:
        raise DataError(f"need one label per score; got {s.size} scores, {y.size} labels")
    if n_bins < 1:
        raise DataError(f"n_bins must be >= 1; got {n_bins}")
    order = np.argsort(s, kind="mergesort")
    bins = [b for b in np.array_split(order, min(n_bins, s.size)) if b.size]
    mean_score = [float(s[b].mean()) for b in bins]
    rate = [float(y[b].mean()) for b in bins]
    count = [int(b.size) for b in bins]
    ece = float(
        sum(c * abs(m - r) for c, m, r in zip(count, mean_score, rate, strict=True)) / s.size
    )
    return CalibrationReport(
        brier=float(brier_score_loss(y, s)),
        log_loss=float(log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1])),
        ece=ece,
        bin_score=mean_score,
        bin_rate=rate,
        bin_count=count,
    )
