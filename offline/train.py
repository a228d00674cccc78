"""Train a detector and write its bundle: the ``train`` command's work, callable from Python.

Steps:

1. load and check the data (:mod:`offline.data`);
2. with ``technique: auto``, compare the candidates (:mod:`offline.compare`) and take the
   winner; otherwise cross-validate the one candidate asked for; either way every candidate has
   out-of-fold validation scores;
3. calibrate a classifier, hybrid or blend: fit a calibrator on its out-of-fold scores
   (:mod:`offline.calibration`) so that its scores are probabilities of fraud, and calibrate
   them; choose the threshold on those (calibrated) out-of-fold scores with the configured
   policy (:mod:`offline.thresholds`); an infeasible policy falls back explicitly, with a
   warning in the log and in the manifest;
4. fit the final model on all rows, compile it to a run-time scorer, check that the compiled
   scorer reproduces scikit-learn's scores, wrap it with the calibrator, and write the bundle
   with the training medians as the reference for explanations.

``from_compare`` (``--from-compare DIR``) takes step 2 from a finished ``compare --report DIR``
on the same data (:mod:`offline.compare_record`): its winner and the winner's out-of-fold
scores.

The manifest records the contract's fields plus: ``model`` (logistic/hgb; a blend joins its
members' with ``+`` and lists them, each with its prior correction, under ``members``),
``class_prior_validation`` (positive rate of the validation rows), ``prior_correction`` (the
prior the classifier was fitted at and the log-odds offset applied), ``threshold_choice``,
``validation`` (split method and folds), ``data`` (rows, positives, dropped or imputed
columns), ``comparison`` (the ``auto`` ranking), ``calibration`` (method, positives, and the
out-of-fold Brier score, log loss and ECE before and after; null when not calibrated) and
``train_settings`` (with the technique, scorer and model actually trained).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline.calibration import calibrate_out_of_fold, calibration_report
from offline.compare import (
    RANKING_KEYS,
    Candidate,
    CandidateResult,
    Comparison,
    evaluate_candidate,
    measure,
    run_compare,
)
from offline.compare_record import read_compare_record
from offline.config import ScorerKind, TrainSettings
from offline.data import Dataset, load_dataset
from offline.models import BlendEstimator, FraudEstimator, SupervisedEstimator, check_combination
from offline.progress import Progress
from offline.thresholds import parse_policy
from offline.validation import Fold, make_folds, split_method, validated_rows
from stream_detector.bundle import Manifest, write_bundle
from stream_detector.errors import BundleError, DataError
from stream_detector.scoring import CalibratedScorer, Calibrator, Scorer

__all__ = ["TrainResult", "train_model"]

log = logging.getLogger(__name__)

_COMPILE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` produced."""

    manifest: Manifest
    estimator: FraudEstimator
    result: CandidateResult
    data: Dataset
    comparison: Comparison | None = None

    @property
    def candidate(self) -> Candidate:
        """The technique, scorer and model trained."""
        return self.result.candidate


def _candidate(settings: TrainSettings) -> Candidate:
    technique = settings.technique
    assert technique != "auto"
    check_combination(technique, settings.scorer)
    model = None if settings.scorer == "anomaly" else settings.model
    return Candidate(technique, settings.scorer, model)


def _check_policy(settings: TrainSettings, ds: Dataset) -> None:
    pol = parse_policy(settings.threshold_policy)
    if pol.needs_amount and ds.amount is None:
        column = settings.data.amount_column
        raise DataError(
            f"threshold policy {pol} needs a numeric, complete amount column "
            f"({column!r}); the data has none"
        )


@dataclass(frozen=True)
class _Selection:
    """How ``auto`` chose: the verdict, the ranking, and where the comparison came from."""

    verdict: str
    ranking: list[dict[str, Any]]
    source: str | None = None
    search: str | None = None
    costs: list[dict[str, Any]] | None = None


def _trained_settings(settings: TrainSettings, candidate: Candidate) -> dict[str, Any]:
    """The settings as used: the technique, scorer and model of the candidate trained."""
    used = settings.model_dump(mode="json")
    used.update(technique=candidate.technique, scorer=candidate.scorer, model=candidate.model)
    return used


def _manifest_extra(
    settings: TrainSettings,
    ds: Dataset,
    result: CandidateResult,
    final: FraudEstimator,
    selection: _Selection | None,
    mask: np.ndarray,
    calibration: dict[str, Any] | None,
) -> dict[str, Any]:
    choice = result.choice
    metrics = result.metrics
    assert choice is not None
    assert metrics is not None
    extra: dict[str, Any] = {
        "model": result.candidate.model,
        "class_prior_validation": float(ds.y[mask].mean()),
        "threshold_choice": {
            "policy": choice.policy,
            "feasible": choice.feasible,
            "note": choice.note,
            "alert_rate": choice.alert_rate,
            "f1": choice.f1,
        },
        "validation": {
            "method": split_method(ds, settings.validation),
            "n_splits": settings.validation.n_splits,
            "gap_days": settings.validation.gap_days,
            "rows": int(mask.sum()),
            "positives": int(ds.y[mask].sum()),
            "precision_at_k": metrics.precision_at_k,
            "k": metrics.k,
        },
        "data": {"rows": ds.n, "positives": ds.positives, **ds.notes},
        "calibration": calibration,
        "train_settings": _trained_settings(settings, result.candidate),
    }
    method = "logit_offset = logit(class_prior_train) - logit(fitted_prior)"
    if isinstance(final, BlendEstimator):
        extra["members"] = [
            {
                "scorer": part.kind,
                "model": part.model,
                "technique": part.technique,
                "prior_correction": {
                    "method": method,
                    "fitted_prior": part.fitted_prior_,
                    "logit_offset": part.logit_offset_,
                },
            }
            for part in final.members
        ]
    elif isinstance(final, SupervisedEstimator):
        extra["prior_correction"] = {
            "method": method,
            "fitted_prior": final.fitted_prior_,
            "logit_offset": final.logit_offset_,
        }
    if selection is not None:
        extra["selection"] = {
            "rule": settings.compare.selection,
            "verdict": selection.verdict,
        }
        if selection.search is not None:
            extra["selection"]["search"] = selection.search
        if selection.costs:
            extra["selection"]["rungs"] = selection.costs
        if selection.source is not None:
            extra["selection"]["from_compare"] = selection.source
        extra["comparison"] = selection.ranking
    return extra


def _calibrate(
    result: CandidateResult,
    ds: Dataset,
    mask: np.ndarray,
    folds: list[Fold],
    settings: TrainSettings,
) -> tuple[CandidateResult, Calibrator | None, dict[str, Any] | None]:
    """Calibrate a probability scorer's out-of-fold scores and measure them again (new
    threshold); the result unchanged for the anomaly scorer, ``calibration: none``, or when
    the scores as they are calibrate best (``identity``, recorded)."""
    if settings.calibration == "none" or result.candidate.scorer == "anomaly":
        return result, None, None
    assert result.scores is not None
    calibrator, how, calibrated = calibrate_out_of_fold(
        result.scores, mask, ds.y, method=settings.calibration, random_state=settings.seed
    )
    before = calibration_report(ds.y[mask], result.scores[mask])
    after = calibration_report(ds.y[mask], calibrated[mask])
    keys = ("brier", "log_loss", "ece")
    info = {
        **how,
        "out_of_fold_before": {k: getattr(before, k) for k in keys},
        "out_of_fold_after": {k: getattr(after, k) for k in keys},
    }
    if how["method"] == "identity":  # the scores are as good as any calibration of them
        return result, None, info
    measured = measure(result.candidate, calibrated, mask, ds, folds, settings, result.fit_seconds)
    return measured, calibrator, info


def train_model(
    data: str | os.PathLike[str],
    label: str,
    out: str | os.PathLike[str],
    settings: TrainSettings,
    *,
    scorers: tuple[ScorerKind, ...] | None = None,
    progress: Progress | None = None,
    from_compare: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train on ``data`` and write the bundle to ``out``; see the module docstring.

    Parameters
    ----------
    data, label
        The labelled CSV or Parquet file and its label column.
    out
        Bundle directory (created; must be empty or absent).
    settings
        The run's settings.
    scorers
        With ``technique: auto``, compare only these scorers (``--scorer`` given on the
        command line); default ``compare.scorers``.
    progress
        Progress display for the cross-validation.
    from_compare
        With ``technique: auto``, the report directory of a finished ``compare`` on the same
        data: its winner is trained without comparing again.
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise BundleError(f"--out {target} is a file; give a directory for the bundle")
    if target.exists() and any(target.iterdir()):
        raise BundleError(f"bundle directory {target} exists and is not empty")
    ds = load_dataset(data, label, settings.data, spec=settings.features)
    _check_policy(settings, ds)
    comparison = selection = None
    if from_compare is not None:
        if settings.technique != "auto":
            raise DataError(
                f"from_compare trains the winner of a comparison; it needs technique auto, "
                f"got {settings.technique!r}"
            )
        record = read_compare_record(from_compare, ds)
        folds = make_folds(ds, settings.validation, random_state=settings.seed)
        mask = record.mask
        result = measure(
            record.candidate, record.scores, mask, ds, folds, settings, record.fit_seconds
        )
        selection = _Selection(record.verdict, record.ranking, str(from_compare))
        log.info("auto takes the winner of %s: %s", from_compare, record.verdict)
    elif settings.technique == "auto":
        comparison = run_compare(ds, settings, scorers=scorers, progress=progress)
        result, mask, folds = comparison.winner, comparison.mask, comparison.folds
        selection = _Selection(
            comparison.verdict(),
            [{k: row[k] for k in RANKING_KEYS} for row in comparison.rows()],
            search=comparison.search,
            costs=[c.row() for c in comparison.costs],
        )
        log.info("auto selected %s", comparison.verdict())
    else:
        candidate = _candidate(settings)
        folds = make_folds(ds, settings.validation, random_state=settings.seed)
        if progress is not None:
            progress.total = 1
            progress.start(candidate.name)
        result = evaluate_candidate(candidate, ds, folds, settings, progress=progress)
        if progress is not None and result.metrics is not None:
            progress.done(f"PR-AUC {result.metrics.pr_auc:.4f}")
        mask = validated_rows(ds.n, folds)
    result, calibrator, calibration = _calibrate(result, ds, mask, folds, settings)
    choice, metrics = result.choice, result.metrics
    assert choice is not None
    assert metrics is not None
    if not choice.feasible:
        log.warning("%s", choice.note)
    final = result.candidate.estimator(settings)
    final.check_labels(ds.y, where="the training data")
    if progress is not None:
        progress.step(f"fitting {result.candidate.name} on all {ds.n:,} rows")
    final.fit(ds.X, ds.y)
    if progress is not None:
        progress.step("compiling the scorer and checking it against scikit-learn")
    scorer: Scorer = final.to_scorer()
    probe = ds.X[: min(ds.n, 2000)]
    gap = float(
        np.max(np.abs(scorer.score_samples(probe) - final.score_samples(probe, reference=True)))
    )
    if not gap <= _COMPILE_TOLERANCE:
        raise RuntimeError(f"compiled scorer differs from scikit-learn by {gap:.3g}")
    if calibrator is not None:
        scorer = CalibratedScorer(scorer, calibrator)
    if progress is not None:
        progress.step(f"writing the bundle to {out}")
    manifest = write_bundle(
        out,
        scorer=scorer,
        features=ds.features,
        label=label,
        technique=result.candidate.technique,
        scorer_name=result.candidate.scorer,
        threshold=choice.threshold,
        threshold_policy=choice.policy,
        class_prior_train=ds.prior,
        metrics={
            "pr_auc": metrics.pr_auc,
            "roc_auc": metrics.roc_auc,
            "precision": metrics.precision,
            "recall": metrics.recall,
            "f1": metrics.f1,
            "precision_at_k": metrics.precision_at_k,
            "alert_rate": metrics.alert_rate,
            "brier": metrics.brier,
            "log_loss": metrics.log_loss,
            "ece": metrics.ece,
        },
        # Column by column: the same medians, faster than axis=0 on a C-ordered matrix (README).
        reference=np.array([np.median(ds.X[:, j]) for j in range(ds.X.shape[1])]),
        extra=_manifest_extra(settings, ds, result, final, selection, mask, calibration),
        feature_spec=settings.features,
    )
    return TrainResult(manifest, final, result, ds, comparison)
