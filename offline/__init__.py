"""Training, evaluation, comparison and reports for stream-detector (the offline half).

The steps, one module each: :mod:`~offline.data` (load and check a labelled file),
:mod:`~offline.resampling` (the techniques for imbalanced classes and the prior correction),
:mod:`~offline.models` (the classifier, anomaly and hybrid scorers),
:mod:`~offline.validation` (time-aware folds, out-of-fold scores),
:mod:`~offline.thresholds` (threshold policies), :mod:`~offline.evaluation` (metrics),
:mod:`~offline.calibration` (calibrators fitted on out-of-fold scores, calibration metrics),
:mod:`~offline.compare` (every technique x scorer on the same folds),
:mod:`~offline.search` (successive halving over stratified samples, the search's budget),
:mod:`~offline.compare_record` (a finished comparison kept for ``train --from-compare``),
:mod:`~offline.train` (the bundle), :mod:`~offline.report` (``report.md``) with
:mod:`~offline.plots`, and
:mod:`~offline.cli` (the ``train``, ``compare`` and ``evaluate`` commands).

Public names are importable from here; they load on first use, so the command line does not
pay for scikit-learn and matplotlib unless an offline command runs.

>>> from offline import parse_policy
>>> str(parse_policy("recall:0.90"))
'recall:0.9'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC: dict[str, tuple[str, ...]] = {
    "calibration": ("CalibrationReport", "calibration_report", "fit_calibrator"),
    "compare": ("Candidate", "CandidateResult", "Comparison", "run_compare"),
    "config": ("TrainSettings",),
    "data": ("Dataset", "load_dataset"),
    "evaluation": ("BundleEvaluation", "Metrics", "evaluate_bundle", "evaluate_scores"),
    "models": ("FraudEstimator", "make_estimator"),
    "report": ("write_compare_report", "write_evaluation_report"),
    "search": ("SearchBudget", "plan_rates", "subsample"),
    "thresholds": ("ThresholdChoice", "ThresholdPolicy", "choose_threshold", "parse_policy"),
    "train": ("TrainResult", "train_model"),
    "validation": ("Fold", "cross_val_scores", "make_folds"),
}
"""Each public name under the module that defines it, imported on first use."""

__all__ = sorted(name for names in _PUBLIC.values() for name in names)

_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

# The same names for type checkers; tests/offline/test_package.py keeps the two in step.
# (The imports are the re-exports: __all__ is derived from _PUBLIC, hence the noqa.)
if TYPE_CHECKING:
    from offline.calibration import CalibrationReport, calibration_report, fit_calibrator  # noqa: F401
    from offline.compare import Candidate, CandidateResult, Comparison, run_compare  # noqa: F401
    from offline.config import TrainSettings  # noqa: F401
    from offline.data import Dataset, load_dataset  # noqa: F401
    from offline.evaluation import BundleEvaluation, Metrics, evaluate_bundle, evaluate_scores  # noqa: F401
    from offline.models import FraudEstimator, make_estimator  # noqa: F401
    from offline.report import write_compare_report, write_evaluation_report  # noqa: F401
    from offline.search import SearchBudget, plan_rates, subsample  # noqa: F401
    from offline.thresholds import ThresholdChoice, ThresholdPolicy, choose_threshold, parse_policy  # noqa: F401
    from offline.train import TrainResult, train_model  # noqa: F401
    from offline.validation import Fold, cross_val_scores, make_folds  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"offline.{_HOME[name]}"), name)
    raise AttributeError(f"module 'offline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
