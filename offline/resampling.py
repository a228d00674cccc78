"""The techniques for imbalanced classes: resamplers, class weights, and the prior they imply.

Every technique is applied *inside* a training set through an imbalanced-learn
:class:`~imblearn.pipeline.Pipeline`, whose samplers act only during ``fit``: validation and
test rows are scored, never resampled.

Resampling (and class weighting) changes the class prior the classifier sees. The fitted model
then estimates ``P(fraud | x)`` at that *effective* prior ``pi'`` instead of the true prior
``pi``, which inflates every probability (a 0.5% fraud rate balanced to 50/50 makes ordinary
events look like coin flips). :func:`effective_prior` reports ``pi'``; the scorers add
``logit(pi) - logit(pi')`` to their log-odds, the standard prior-shift correction (Saerens,
Latinne and Decaestecker 2002; Elkan 2001), which maps the scores back to the true prior.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from imblearn.base import BaseSampler
from imblearn.combine import SMOTETomek
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

from offline.config import TECHNIQUES, ResamplingSettings, Technique
from stream_detector.errors import ConfigError, DataError

__all__ = [
    "NEIGHBOUR_TECHNIQUES",
    "TECHNIQUES",
    "capped_settings",
    "check_resampling",
    "class_weight_for",
    "effective_prior",
    "logit",
    "make_sampler",
    "prior_offset",
]

NEIGHBOUR_TECHNIQUES: frozenset[str] = frozenset(
    {"smote", "borderline_smote", "adasyn", "smote_tomek"}
)
"""Techniques that interpolate between minority-class neighbours."""

_OVER = frozenset({"random_over", "smote", "borderline_smote", "adasyn", "smote_tomek"})

log = logging.getLogger(__name__)


def logit(p: float) -> float:
    """Log-odds of a probability in (0, 1).

    >>> round(logit(0.5), 6), round(logit(0.01), 4)
    (0.0, -4.5951)
    """
    return math.log(p / (1.0 - p))


def make_sampler(
    technique: Technique, settings: ResamplingSettings, *, random_state: int | None
) -> BaseSampler | None:
    """The imbalanced-learn sampler of a technique, or None (``none``, ``class_weight``).

    Examples
    --------
    >>> make_sampler("smote", ResamplingSettings(k_neighbors=3), random_state=0)
    SMOTE(k_neighbors=3, random_state=0)
    >>> make_sampler("class_weight", ResamplingSettings(), random_state=0) is None
    True
    """
    strategy: Any = settings.sampling_strategy
    k = settings.k_neighbors
    if technique in ("none", "class_weight"):
        return None
    if technique == "random_over":
        return RandomOverSampler(sampling_strategy=strategy, random_state=random_state)
    if technique == "random_under":
        return RandomUnderSampler(sampling_strategy=strategy, random_state=random_state)
    if technique == "smote":
        return SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=random_state)
    if technique == "borderline_smote":
        return BorderlineSMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=random_state)
    if technique == "adasyn":
        return ADASYN(sampling_strategy=strategy, n_neighbors=k, random_state=random_state)
    if technique == "smote_tomek":
        smote = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=random_state)
        return SMOTETomek(smote=smote, random_state=random_state)
    raise ConfigError(f"technique must be one of {', '.join(TECHNIQUES)}; got {technique!r}")


def capped_settings(
    technique: Technique, settings: ResamplingSettings, y: npt.ArrayLike
) -> ResamplingSettings:
    """``settings`` with the ratio lowered so that an over-sampler adds at most
    ``settings.max_new_rows`` rows to the training set ``y`` (unchanged otherwise).

    At 1:1 on a million legitimate rows an over-sampler would add a million rows (a copy of
    the matrix and more): the ratio becomes ``(minority + max_new_rows) / majority`` instead,
    and the prior correction follows the ratio actually used.

    Examples
    --------
    >>> y = [0] * 1000 + [1] * 10
    >>> capped_settings("smote", ResamplingSettings(max_new_rows=90), y).sampling_strategy
    0.1
    >>> capped_settings("smote", ResamplingSettings(max_new_rows=5000), y).sampling_strategy
    'auto'
    >>> capped_settings("random_under", ResamplingSettings(max_new_rows=90), y).sampling_strategy
    'auto'
    """
    cap = settings.max_new_rows
    if cap is None or technique not in _OVER:
        return settings
    labels = np.asarray(y)
    n_pos = int((labels == 1).sum())
    n_min, n_maj = sorted((n_pos, int(labels.size - n_pos)))
    ratio = 1.0 if settings.sampling_strategy == "auto" else float(settings.sampling_strategy)
    if n_maj == 0 or ratio * n_maj - n_min <= cap:
        return settings
    capped = (n_min + cap) / n_maj
    log.info(
        "%s at ratio %.4g would add %d rows to %d; ratio lowered to %.4g "
        "(resampling.max_new_rows=%d)",
        technique,
        ratio,
        round(ratio * n_maj - n_min),
        labels.size,
        capped,
        cap,
    )
    return settings.model_copy(update={"sampling_strategy": capped})


def class_weight_for(
    technique: Technique, settings: ResamplingSettings
) -> str | dict[int, float] | None:
    """The ``class_weight`` argument of the classifier for a technique."""
    return settings.class_weight if technique == "class_weight" else None


def check_resampling(
    technique: Technique,
    settings: ResamplingSettings,
    y: npt.ArrayLike,
    *,
    where: str = "the training data",
) -> None:
    """Refuse, with the counts and the fix, a training set the technique cannot handle.

    Examples
    --------
    >>> check_resampling("smote", ResamplingSettings(), [0] * 50 + [1] * 4, where="fold 1")
    Traceback (most recent call last):
    ...
    stream_detector.errors.DataError: class 1 has 4 rows in fold 1; smote with k_neighbors=5 needs at least 6: lower resampling.k_neighbors (to 3 at most), use fewer validation folds, or choose class_weight or random_over
    """
    labels = np.asarray(y)
    n_pos = int((labels == 1).sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        missing = 1 if n_pos == 0 else 0
        raise DataError(
            f"{where} has no rows of class {missing}; training needs both classes "
            "(use fewer validation folds, or more data)"
        )
    minority, n_min, n_maj = (1, n_pos, n_neg) if n_pos <= n_neg else (0, n_neg, n_pos)
    k = settings.k_neighbors
    if technique in NEIGHBOUR_TECHNIQUES and n_min <= k:
        raise DataError(
            f"class {minority} has {n_min} rows in {where}; {technique} with k_neighbors={k} "
            f"needs at least {k + 1}: lower resampling.k_neighbors"
            f"{f' (to {n_min - 1} at most)' if n_min > 1 else ''}, use fewer validation folds, "
            "or choose class_weight or random_over"
        )
    ratio = settings.sampling_strategy
    if technique in _OVER | {"random_under"} and isinstance(ratio, float) and ratio < n_min / n_maj:
        raise ConfigError(
            f"resampling.sampling_strategy={ratio} is below the minority/majority ratio of "
            f"{where} ({n_min / n_maj:.4f}); {technique} needs a larger ratio, or 'auto'"
        )


def effective_prior(
    technique: Technique, settings: ResamplingSettings, pipeline: Any, y: npt.ArrayLike
) -> float:
    """The positive rate the classifier saw after the technique was applied to ``y``.

    For samplers it is read from the fitted sampler's ``sampling_strategy_`` (the planned
    counts; ADASYN rounds per row and Tomek links remove a few rows afterwards, so there it is
    a close approximation); for class weights it is the positives' share of the total weight.
    """
    labels = np.asarray(y)
    counts = {0: float((labels == 0).sum()), 1: float((labels == 1).sum())}
    if technique == "class_weight":
        weights = settings.class_weight
        if weights == "balanced":
            return 0.5
        assert isinstance(weights, dict)
        w1 = counts[1] * weights[1]
        return w1 / (w1 + counts[0] * weights[0])
    if technique != "none":
        sampler = pipeline.named_steps["resample"]
        if isinstance(sampler, SMOTETomek):
            sampler = sampler.smote_
        plan = {int(c): float(n) for c, n in sampler.sampling_strategy_.items()}
        if technique == "random_under":
            counts.update(plan)
        else:
            for c, n in plan.items():
                counts[c] += n
    return counts[1] / (counts[0] + counts[1])


def prior_offset(true_prior: float, fitted_prior: float) -> float:
    """``logit(true_prior) - logit(fitted_prior)``: add it to the model's log-odds.

    >>> round(prior_offset(0.01, 0.5), 4)
    -4.5951
    >>> prior_offset(0.2, 0.2)
    0.0
    """
    if fitted_prior == true_prior:
        return 0.0
    return logit(true_prior) - logit(fitted_prior)
