"""Scorers: models compiled from fitted scikit-learn estimators into flat arrays.

A scorer maps a batch of feature rows to scores in [0, 1]; higher is more suspicious (see
:mod:`stream_detector.scoring.base`). Offline training compiles its fitted model with one of
the ``from_sklearn`` constructors; the bundle stores the scorer's payload (a JSON spec and named
arrays) and :func:`scorer_from_payload` rebuilds it at serving time, without scikit-learn.

- :class:`LinearScorer`: StandardScaler + LogisticRegression (``kind="linear"``).
- :class:`IsolationForestScorer`: IsolationForest anomaly score (``kind="isolation_forest"``).
- :class:`GradientBoostingScorer`: binary HistGradientBoostingClassifier (``kind="gbdt"``).
- :class:`HybridScorer`: a classifier and an anomaly scorer stacked (``kind="hybrid"``).
- :class:`BlendScorer`: a weighted mean of classifiers' probabilities (``kind="blend"``).
- :class:`CalibratedScorer`: any of them with a :class:`Calibrator` that turns its scores into
  probabilities (``kind="calibrated"``).
- :func:`top_reasons`: the features that moved each score most, with contributions that add
  up (:class:`~stream_detector.scoring.attribution.Attribution`).
"""

from __future__ import annotations

from stream_detector.scoring.attribution import Attribution
from stream_detector.scoring.base import PayloadKind, Scorer, check_rows, scorer_from_payload
from stream_detector.scoring.blend import BlendScorer
from stream_detector.scoring.calibration import CalibratedScorer, CalibrationMethod, Calibrator
from stream_detector.scoring.explain import top_reasons
from stream_detector.scoring.forest import IsolationForestScorer, average_path_length
from stream_detector.scoring.gbdt import GradientBoostingScorer
from stream_detector.scoring.hybrid import HybridScorer
from stream_detector.scoring.linear import LinearScorer

__all__ = [
    "Attribution",
    "BlendScorer",
    "CalibratedScorer",
    "CalibrationMethod",
    "Calibrator",
    "GradientBoostingScorer",
    "HybridScorer",
    "IsolationForestScorer",
    "LinearScorer",
    "PayloadKind",
    "Scorer",
    "average_path_length",
    "check_rows",
    "scorer_from_payload",
    "top_reasons",
]
