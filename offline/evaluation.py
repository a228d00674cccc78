"""Metrics for rare-event scores, and the evaluation of a trained bundle on new data.

PR-AUC (average precision) is the headline: with 1% positives a useless scorer already has a
ROC-AUC of 0.5 and looks respectable, while its PR-AUC equals the positive rate (0.01).
Threshold metrics (precision, recall, F1, alert rate) are taken at ``score >= threshold``;
precision@k looks only at the ``k`` highest scores (what a team with capacity for ``k``
reviews would see); with an amount column, the fraud amount caught and missed at the threshold.
Calibration (whether a score of 0.2 means one fraud in five): the Brier score, the log loss and
the expected calibration error over equal-mass bins (:mod:`offline.calibration`); the anomaly
scorer's scores are not probabilities, so its calibration figures only say how far they are.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from offline.calibration import CalibrationReport, calibration_report
from offline.config import DataSettings
from offline.data import Dataset, load_dataset
from offline.thresholds import parse_policy
from stream_detector.backfill import backfill
from stream_detector.bundle import ModelBundle, load_bundle
from stream_detector.errors import ConfigError, DataError
from stream_detector.features import FeatureEngine
from stream_detector.history import read_labels
from stream_detector.state import MemoryStore

__all__ = ["BundleEvaluation", "Metrics", "evaluate_bundle", "evaluate_scores", "precision_at_k"]


@dataclass(frozen=True)
class Metrics:
    """Ranking and threshold metrics of scores against labels."""

    pr_auc: float
    roc_auc: float
    precision: float
    recall: float
    f1: float
    threshold: float
    n: int
    positives: int
    flagged: int
    alert_rate: float
    k: int
    precision_at_k: float
    amount_caught: float | None = None
    amount_missed: float | None = None
    brier: float | None = None
    log_loss: float | None = None
    ece: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the keys of ``metrics.json``)."""
        return asdict(self)


def precision_at_k(y_true: npt.ArrayLike, scores: npt.ArrayLike, k: int) -> float:
    """Fraction of positives among the ``k`` highest scores (ties kept in input order).

    >>> precision_at_k([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.8], 2)
    0.5
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    k = min(int(k), y.size)
    if k <= 0:
        raise DataError(f"precision@k needs k >= 1 and at least one row; got k={k}")
    top = np.argsort(-s, kind="mergesort")[:k]
    return float(y[top].mean())


def evaluate_scores(
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float,
    *,
    k: int = 100,
    amount: npt.ArrayLike | None = None,
) -> Metrics:
    """All metrics of ``scores`` against ``y_true`` at ``threshold``.

    Examples
    --------
    >>> m = evaluate_scores([0, 0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.2], 0.3, k=2,
    ...                     amount=[5.0, 9.0, 20.0, 30.0, 1.0])
    >>> m.precision, m.recall, m.precision_at_k, m.amount_caught, m.amount_missed
    (0.6666666666666666, 1.0, 0.5, 50.0, 0.0)
    >>> round(m.pr_auc, 4), round(m.roc_auc, 4), round(m.brier, 4)
    (0.8333, 0.8333, 0.1345)
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "1" if n_pos else "0"
        raise DataError(
            f"all {y.size} rows are labelled {only}; PR-AUC, ROC-AUC and recall need both classes"
        )
    hit = s >= threshold
    flagged = int(hit.sum())
    tp = int(y[hit].sum())
    caught = missed = None
    if amount is not None:
        amt = np.asarray(amount, dtype=np.float64)
        caught = float(amt[hit & (y == 1)].sum())
        missed = float(amt[~hit & (y == 1)].sum())
    k_used = min(int(k), y.size)
    calibration = calibration_report(y, s)
    return Metrics(
        pr_auc=float(average_precision_score(y, s)),
        roc_auc=float(roc_auc_score(y, s)),
        precision=tp / flagged if flagged else 0.0,
        recall=tp / n_pos,
        f1=2 * tp / (flagged + n_pos),
        threshold=float(threshold),
        n=int(y.size),
        positives=n_pos,
        flagged=flagged,
        alert_rate=flagged / y.size,
        k=k_used,
        precision_at_k=precision_at_k(y, s, k_used),
        amount_caught=caught,
        amount_missed=missed,
        brier=calibration.brier,
        log_loss=calibration.log_loss,
        ece=calibration.ece,
    )


@dataclass(frozen=True)
class BundleEvaluation:
    """A bundle's scores on labelled data, its metrics, and how its threshold policy held."""

    bundle: ModelBundle
    data: Dataset
    scores: npt.NDArray[np.float64]
    metrics: Metrics
    policy: dict[str, Any]

    @property
    def calibration(self) -> CalibrationReport:
        """Calibration of the scores on this data, with the reliability diagram's bins."""
        return calibration_report(self.data.y, self.scores)

    def as_dict(self) -> dict[str, Any]:
        """``metrics.json``: the contract's keys first, then the rest."""
        manifest = self.bundle.manifest
        return {
            **self.metrics.as_dict(),
            "model_version": manifest.model_version,
            "technique": manifest.technique,
            "scorer": manifest.scorer,
            "threshold_policy": manifest.threshold_policy,
            "policy": self.policy,
            "validation": dict(manifest.metrics),
            "reliability": {
                key: value
                for key, value in self.calibration.as_dict().items()
                if key.startswith("bin_")
            },
        }


def _policy_check(bundle: ModelBundle, metrics: Metrics) -> dict[str, Any]:
    """How the bundle's threshold policy held on the new data (target vs achieved)."""
    spec = bundle.manifest.threshold_policy
    pol = parse_policy(spec)
    out: dict[str, Any] = {"policy": spec, "validation": dict(bundle.manifest.metrics)}
    bound = pol.bound
    if bound is not None:
        achieved = float(getattr(metrics, bound.metric))
        out.update(target=bound.target, achieved=achieved)
        sign = 1 if bound.at_least else -1
        out["held"] = bool(sign * (achieved - bound.target) >= -1e-12)
    return out


def evaluate_bundle(
    model_dir: str | os.PathLike[str],
    data: str | os.PathLike[str],
    label: str,
    *,
    settings: DataSettings | None = None,
    k: int = 100,
    history: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
) -> BundleEvaluation:
    """Score labelled data with a trained bundle and measure it at the bundle's threshold.

    The data must hold every feature the bundle names, or, for a bundle with a feature spec,
    the raw fields the spec reads (its features are computed over this file alone, each label
    known from its event's time). With ``missing: impute_median`` missing values are filled
    with the bundle's training medians.

    For a bundle with a feature spec, ``history`` (a raw history, as ``score --history``
    reads) is computed into the state first, and ``labels`` (a label file, as ``score
    --labels`` reads) says when each of the data's labels became known: the data's features
    are then those ``score --history --labels`` computes, and events too late for the
    history's state are left out, as ``score`` skips them.
    """
    bundle = load_bundle(model_dir)
    cfg = settings or DataSettings()
    engine: FeatureEngine | None = None
    known = None
    if history is not None or labels is not None:
        if bundle.spec is None:
            raise ConfigError(
                f"--history and --labels need a bundle with a feature spec; {model_dir} has none"
            )
        engine = FeatureEngine(bundle.spec, MemoryStore())
        if history is not None:
            backfill(engine, bundle, history)
        if labels is not None:
            known = read_labels(labels)
    ds = load_dataset(
        data,
        label,
        cfg,
        features=bundle.features,
        fill_values=bundle.reference,
        spec=bundle.spec,
        engine=engine,
        labels=known,
    )
    scores = bundle.score_samples(ds.X)
    metrics = evaluate_scores(ds.y, scores, bundle.threshold, k=k, amount=ds.amount)
    return BundleEvaluation(bundle, ds, scores, metrics, _policy_check(bundle, metrics))
