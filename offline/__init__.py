"""Training, evaluation, comparison and reports for stream-detector (the offline half).

The steps, one module each: :mod:`~offline.data` (load and check a labelled file),
:mod:`~offline.resampling` (the techniques for imbalanced classes and the prior correction),
:mod:`~offline.models` (the classifier, anomaly and hybrid scorers),
:mod:`~offline.validation` (time-aware folds, out-of-fold scores),
:mod:`~offline.thresholds` (threshold policies), :mod:`~offline.evaluation` (metrics),
:mod:`~offline.compare` (every technique x scorer on the same folds),
:mod:`~offline.train` (the bundle), :mod:`~offline.report` (``report.md`` with plots), and
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

if TYPE_CHECKING:
    from offline.compare import Candidate, CandidateResult, Comparison, run_compare
    from offline.config import TrainSettings
    from offline.data import Dataset, load_dataset
    from offline.evaluation import BundleEvaluation, Metrics, evaluate_bundle, evaluate_scores
    from offline.models import Detector
    from offline.report import write_compare_report, write_evaluation_report
    from offline.thresholds import ThresholdChoice, ThresholdPolicy, choose_threshold, parse_policy
    from offline.train import TrainResult, train_model
    from offline.validation import Fold, cross_val_scores, make_folds

__all__ = [
    "BundleEvaluation",
    "Candidate",
    "CandidateResult",
    "Comparison",
    "Dataset",
    "Detector",
    "Fold",
    "Metrics",
    "ThresholdChoice",
    "ThresholdPolicy",
    "TrainResult",
    "TrainSettings",
    "choose_threshold",
    "cross_val_scores",
    "evaluate_bundle",
    "evaluate_scores",
    "load_dataset",
    "make_folds",
    "parse_policy",
    "run_compare",
    "train_model",
    "write_compare_report",
    "write_evaluation_report",
]

_HOME = {
    "Candidate": "compare",
    "CandidateResult": "compare",
    "Comparison": "compare",
    "run_compare": "compare",
    "TrainSettings": "config",
    "Dataset": "data",
    "load_dataset": "data",
    "BundleEvaluation": "evaluation",
    "Metrics": "evaluation",
    "evaluate_bundle": "evaluation",
    "evaluate_scores": "evaluation",
    "Detector": "models",
    "write_compare_report": "report",
    "write_evaluation_report": "report",
    "ThresholdChoice": "thresholds",
    "ThresholdPolicy": "thresholds",
    "choose_threshold": "thresholds",
    "parse_policy": "thresholds",
    "TrainResult": "train",
    "train_model": "train",
    "Fold": "validation",
    "cross_val_scores": "validation",
    "make_folds": "validation",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"offline.{_HOME[name]}"), name)
    raise AttributeError(f"module 'offline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
