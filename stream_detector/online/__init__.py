"""The online side of ``serve``, with River: class balance, thresholds, drift, cold start.

Fraud labels arrive late and the fraud rate moves. This package keeps the service's view of
the stream up to date as it runs:

- :class:`ClassPrior`: the positive-class rate from feedback labels (River rolling or
  exponentially weighted mean), smoothed toward the model's calibration prior and clamped;
- :class:`LabelParser`, :class:`Feedback`: label messages validated, joined to the decisions
  made (bounded memory by ``event_id``), live precision and recall of alerts;
- :class:`ThresholdController`: the threshold in force, ``fixed``, ``prior_corrected``
  (Saerens 2002 posterior correction to the live prior) or ``alert_rate`` (River streaming
  quantile of recent scores, to flag about a budget of the events);
- :class:`DriftMonitor`: River ADWIN on the scores, the feature means and the labels;
- :class:`HalfSpaceTreesScorer`, :func:`cold_start_bundle`: an online anomaly scorer for a
  service started without a trained model;
- :class:`OnlineMonitor`: all of the above around each batch of the run loop;
- :class:`AdminEndpoint`, :func:`reload_config`: live changes of the threshold (admin endpoint,
  SIGHUP).
"""

from __future__ import annotations

from stream_detector.online.coldstart import (
    COLD_START_SCORER,
    HalfSpaceTreesScorer,
    cold_start_bundle,
)
from stream_detector.online.control import (
    ADMIN_PATH,
    AdminEndpoint,
    ThresholdChange,
    reload_config,
)
from stream_detector.online.drift import DriftMonitor, DriftState
from stream_detector.online.feedback import Feedback
from stream_detector.online.labels import LabelParser, LabelReason
from stream_detector.online.monitor import LabelBatch, OnlineMonitor, reference_prior
from stream_detector.online.prior import ClassPrior
from stream_detector.online.thresholds import (
    ThresholdController,
    ThresholdState,
    corrected_threshold,
    prior_corrected,
)

__all__ = [
    "ADMIN_PATH",
    "COLD_START_SCORER",
    "AdminEndpoint",
    "ClassPrior",
    "DriftMonitor",
    "DriftState",
    "Feedback",
    "HalfSpaceTreesScorer",
    "LabelBatch",
    "LabelParser",
    "LabelReason",
    "OnlineMonitor",
    "ThresholdChange",
    "ThresholdController",
    "ThresholdState",
    "cold_start_bundle",
    "corrected_threshold",
    "prior_corrected",
    "reference_prior",
    "reload_config",
]
