"""The three scorers ``train`` can fit, as one scikit-learn-style estimator.

- ``classifier``: a supervised model inside an imbalanced-learn Pipeline. ``logistic`` is
  StandardScaler -> (sampler) -> LogisticRegression; ``hgb`` is (sampler) ->
  HistGradientBoostingClassifier. Its log-odds are shifted by the prior correction of
  :mod:`offline.resampling`, so its scores estimate ``P(fraud | x)`` at the true prior.
- ``anomaly``: an IsolationForest fitted on every training row or on the negatives only; its
  score is the paper's anomaly score ``2 ** (-E[h(x)] / c(n))`` in [0, 1].
- ``hybrid``: both, combined by a logistic regression (the stacker) fitted on out-of-fold
  ``[logit(classifier score), anomaly score]`` of the training rows, so that anomalies the
  labels never showed still raise the score.

:class:`BlendDetector` averages the (prior-corrected) probabilities of several of these,
each with its own model and technique: what ``train --technique auto`` builds from the best
logistic and the best gradient-boosting candidate (:mod:`offline.compare`).

:meth:`Detector.score` computes the scores with scikit-learn (the anomaly detector's with its
compiled forest, unless ``reference=True``); :meth:`Detector.to_scorer` compiles the fitted
model into a :mod:`stream_detector.scoring` scorer (plain arrays, no scikit-learn at run time)
that gives the same scores, which ``train`` checks against ``score(..., reference=True)``. Only
the compiled scorer is ever saved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from imblearn.pipeline import Pipeline as ImbPipeline
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from offline.config import ClassifierModel, ScorerKind, Technique, TrainSettings
from offline.resampling import (
    check_resampling,
    class_weight_for,
    effective_prior,
    make_sampler,
    prior_offset,
)
from stream_detector.errors import ConfigError, DataError
from stream_detector.scoring import (
    GradientBoostingScorer,
    HybridScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
)
from stream_detector.scoring.blend import BlendScorer
from stream_detector.scoring.link import clipped_logit

__all__ = ["BlendDetector", "Detector", "check_combination"]

Array = npt.NDArray[np.float64]


def check_combination(technique: str, scorer: ScorerKind) -> None:
    """Refuse a technique that does not apply to the scorer (the anomaly scorer uses no labels).

    >>> check_combination("smote", "anomaly")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: technique 'smote' does not apply to the anomaly scorer, which learns without labels; use --technique none, or the classifier or hybrid scorer
    """
    if scorer == "anomaly" and technique != "none":
        raise ConfigError(
            f"technique {technique!r} does not apply to the anomaly scorer, which learns without "
            "labels; use --technique none, or the classifier or hybrid scorer"
        )


_threads: list[ThreadpoolController] = []


def _limit_threads(limit: int | None) -> Any:
    """A context limiting native thread pools; the library scan is done once per process."""
    if not _threads:
        _threads.append(ThreadpoolController())
    return _threads[0].limit(limits=limit)


def _clip_logit(p: Array) -> Array:
    """The hybrid scorer's stacker input: ``logit(clip(p))`` exactly as it computes it."""
    return clipped_logit(p, HybridScorer.EPS)


class Detector(BaseEstimator):
    """A fraud scorer: classifier, anomaly detector, or both stacked.

    Parameters
    ----------
    scorer
        ``classifier``, ``anomaly`` or ``hybrid``.
    model
        The classifier: ``logistic`` or ``hgb``.
    technique
        How class imbalance is handled (see :mod:`offline.resampling`).
    settings
        Hyper-parameters; the defaults of :class:`~offline.config.TrainSettings` when None.
    random_state
        Seed of every random component.

    Attributes
    ----------
    pipeline_
        The fitted imbalanced-learn Pipeline (classifier).
    train_prior_, fitted_prior_, logit_offset_
        True positive rate, the rate the classifier saw, and the correction between them.
    iforest_
        The fitted IsolationForest (anomaly), and ``iforest_scorer_`` its compiled form, which
        :meth:`score` uses unless asked for the reference: the scores served, equal to
        scikit-learn's to 1e-15, at 1.6 times the speed of ``score_samples`` on large batches
        (cross-validation scores every row).
    classifier_, anomaly_, stacker_
        The fitted parts of the hybrid.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import roc_auc_score
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=600) > 1.8).astype(int)
    >>> det = Detector(technique="smote", random_state=0).fit(X, y)
    >>> det.train_prior_, det.fitted_prior_, round(det.logit_offset_, 4)
    (0.041666666666666664, 0.5, -3.1355)
    >>> round(float(roc_auc_score(y, det.score(X))), 3)
    0.983
    >>> float(np.abs(det.to_scorer().score(X) - det.score(X)).max()) < 1e-12
    True
    """

    def __init__(
        self,
        *,
        scorer: ScorerKind = "classifier",
        model: ClassifierModel = "logistic",
        technique: Technique = "none",
        settings: TrainSettings | None = None,
        random_state: int | None = None,
    ) -> None:
        self.scorer = scorer
        self.model = model
        self.technique = technique
        self.settings = settings
        self.random_state = random_state

    def effective_settings(self) -> TrainSettings:
        """The settings in force: ``settings``, or the defaults."""
        return self.settings if self.settings is not None else TrainSettings.model_construct()

    def _part(self, scorer: ScorerKind, technique: Technique) -> Detector:
        return Detector(
            scorer=scorer,
            model=self.model,
            technique=technique,
            settings=self.settings,
            random_state=self.random_state,
        )

    def _classifier_pipeline(self) -> ImbPipeline:
        s = self.effective_settings()
        tech = self.technique
        steps: list[tuple[str, Any]] = []
        if self.model == "logistic":
            steps.append(("scale", StandardScaler()))
        sampler = make_sampler(tech, s.resampling, random_state=self.random_state)
        if sampler is not None:
            steps.append(("resample", sampler))
        weight = class_weight_for(tech, s.resampling)
        if self.model == "logistic":
            est: Any = LogisticRegression(
                C=s.logistic.C,
                max_iter=s.logistic.max_iter,
                class_weight=weight,
                random_state=self.random_state,
            )
        elif self.model == "hgb":
            h = s.hgb
            est = HistGradientBoostingClassifier(
                max_iter=h.max_iter,
                learning_rate=h.learning_rate,
                max_leaf_nodes=h.max_leaf_nodes,
                min_samples_leaf=h.min_samples_leaf,
                l2_regularization=h.l2_regularization,
                early_stopping=h.early_stopping,
                class_weight=weight,
                random_state=self.random_state,
            )
        else:
            raise ConfigError(f"model must be 'logistic' or 'hgb'; got {self.model!r}")
        steps.append(("model", est))
        return ImbPipeline(steps)

    def check_labels(self, y: npt.NDArray[np.int64], *, where: str) -> None:
        """DataError when ``y`` has too few rows of a class for this detector's technique."""
        if self.scorer != "anomaly":
            check_resampling(self.technique, self.effective_settings().resampling, y, where=where)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Detector:
        """Fit on training rows ``X`` (float matrix) and labels ``y`` (0/1)."""
        with _limit_threads(self.effective_settings().threads):
            return self._fit(X, y)

    def _fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Detector:
        Xa = np.asarray(X, dtype=np.float64)
        ya = np.asarray(y, dtype=np.int64)
        s = self.effective_settings()
        check_combination(self.technique, self.scorer)
        where = f"a training set of {ya.size} rows"
        if self.scorer == "classifier":
            check_resampling(self.technique, s.resampling, ya, where=where)
            pipe = self._classifier_pipeline()
            try:
                pipe.fit(Xa, ya)
            except (ValueError, RuntimeError) as exc:
                if self.technique in ("none", "class_weight"):
                    raise
                first = str(exc).splitlines()[0]
                raise DataError(
                    f"{self.technique} cannot resample {where}: {first}; choose another technique"
                ) from exc
            self.pipeline_ = pipe
            self.train_prior_ = float(ya.mean())
            self.fitted_prior_ = effective_prior(self.technique, s.resampling, pipe, ya)
            self.logit_offset_ = prior_offset(self.train_prior_, self.fitted_prior_)
        elif self.scorer == "anomaly":
            a = s.anomaly
            rows = Xa[ya == 0] if a.fit_on == "negatives" else Xa
            if rows.shape[0] < 2:
                raise DataError(
                    f"the anomaly scorer needs at least 2 rows to fit; {where} has {rows.shape[0]}"
                )
            self.iforest_ = IsolationForest(
                n_estimators=a.n_estimators,
                max_samples=a.max_samples,
                contamination=a.contamination,
                random_state=self.random_state,
            ).fit(rows)
            self.iforest_scorer_ = IsolationForestScorer.from_sklearn(self.iforest_)
        elif self.scorer == "hybrid":
            self._fit_hybrid(Xa, ya, s)
        else:
            raise ConfigError(
                f"scorer must be 'classifier', 'anomaly' or 'hybrid'; got {self.scorer!r}"
            )
        self.n_features_in_ = Xa.shape[1]
        return self

    def _fit_hybrid(self, X: Array, y: npt.NDArray[np.int64], s: TrainSettings) -> None:
        k = s.hybrid.inner_splits
        n_pos = int(y.sum())
        if min(n_pos, y.size - n_pos) < k:
            raise DataError(
                f"the hybrid scorer's stacker needs at least {k} rows of each class per training "
                f"set (hybrid.inner_splits={k}); got {n_pos} positives of {y.size} rows: lower "
                "hybrid.inner_splits, use fewer validation folds, or choose the classifier scorer"
            )
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=self.random_state)
        stack = np.empty((y.size, 2))
        for train, val in folds.split(X, y):
            clf = self._part("classifier", self.technique).fit(X[train], y[train])
            anom = self._part("anomaly", "none").fit(X[train], y[train])
            stack[val, 0] = _clip_logit(clf.score(X[val]))
            stack[val, 1] = anom.score(X[val])
        self.stacker_ = LogisticRegression(C=s.hybrid.C, random_state=self.random_state).fit(
            stack, y
        )
        self.classifier_ = self._part("classifier", self.technique).fit(X, y)
        self.anomaly_ = self._part("anomaly", "none").fit(X, y)
        self.train_prior_ = float(y.mean())
        self.fitted_prior_ = self.classifier_.fitted_prior_
        self.logit_offset_ = self.classifier_.logit_offset_

    def score(self, X: npt.ArrayLike, *, reference: bool = False) -> Array:
        """Scores in [0, 1] for rows ``X``; higher is more suspicious.

        ``reference=True`` computes every score with scikit-learn itself, what the compiled
        scorer is checked against (otherwise the anomaly detector uses its compiled forest).
        """
        with _limit_threads(self.effective_settings().threads):
            return self._score(np.asarray(X, dtype=np.float64), reference)

    def _score(self, Xa: Array, reference: bool) -> Array:
        if self.scorer == "classifier":
            margin = np.asarray(self.pipeline_.decision_function(Xa), dtype=np.float64)
            return np.asarray(expit(margin + self.logit_offset_), dtype=np.float64)
        if self.scorer == "anomaly":
            if reference:
                return np.asarray(-self.iforest_.score_samples(Xa), dtype=np.float64)
            return self.iforest_scorer_.score(Xa)
        parts = (
            self.classifier_.score(Xa, reference=reference),
            self.anomaly_.score(Xa, reference=reference),
        )
        z = np.column_stack([_clip_logit(parts[0]), parts[1]])
        return np.asarray(expit(self.stacker_.decision_function(z)), dtype=np.float64)

    def to_scorer(self) -> Scorer:
        """Compile the fitted model into a run-time scorer giving the same scores."""
        if self.scorer == "classifier":
            est = self.pipeline_.named_steps["model"]
            if self.model == "logistic":
                linear = Pipeline([("scale", self.pipeline_.named_steps["scale"]), ("model", est)])
                return LinearScorer.from_sklearn(linear, logit_offset=self.logit_offset_)
            return GradientBoostingScorer.from_sklearn(est, logit_offset=self.logit_offset_)
        if self.scorer == "anomaly":
            return self.iforest_scorer_
        coef = self.stacker_.coef_[0]
        return HybridScorer(
            classifier=self.classifier_.to_scorer(),
            anomaly=self.anomaly_.to_scorer(),
            coef=(float(coef[0]), float(coef[1])),
            intercept=float(self.stacker_.intercept_[0]),
        )


class BlendDetector(BaseEstimator):
    """The mean of several probability detectors' scores (classifier or hybrid members).

    Each member keeps its own model, technique and prior correction; the blend's score is
    the equal-weight mean of their scores, compiled to a
    :class:`~stream_detector.scoring.BlendScorer`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=600) > 1.8).astype(int)
    >>> parts = [Detector(model="logistic", technique="smote", random_state=0),
    ...          Detector(model="hgb", technique="class_weight", random_state=0)]
    >>> blend = BlendDetector(parts).fit(X, y)
    >>> mean = (parts[0].score(X) + parts[1].score(X)) / 2
    >>> bool(np.allclose(blend.score(X), mean, rtol=0, atol=1e-15))
    True
    >>> float(np.abs(blend.to_scorer().score(X) - blend.score(X)).max()) < 1e-12
    True
    """

    scorer = "blend"

    def __init__(self, members: list[Detector]) -> None:
        self.members = members

    def _check(self) -> None:
        if len(self.members) < 2:
            raise ConfigError(f"a blend needs at least 2 members; got {len(self.members)}")
        anomaly = [m for m in self.members if m.scorer == "anomaly"]
        if anomaly:
            raise ConfigError(
                "blend members must give probabilities (classifier or hybrid); the anomaly "
                "scorer's score is not one"
            )

    def check_labels(self, y: npt.NDArray[np.int64], *, where: str) -> None:
        """DataError when ``y`` has too few rows of a class for a member's technique."""
        for member in self.members:
            member.check_labels(y, where=where)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> BlendDetector:
        """Fit every member on the same rows."""
        self._check()
        for member in self.members:
            member.fit(X, y)
        self.train_prior_ = self.members[0].train_prior_
        self.n_features_in_ = self.members[0].n_features_in_
        return self

    def score(self, X: npt.ArrayLike, *, reference: bool = False) -> Array:
        """The mean of the members' scores (see :meth:`Detector.score` for ``reference``)."""
        Xa = np.asarray(X, dtype=np.float64)
        total = self.members[0].score(Xa, reference=reference)
        for member in self.members[1:]:
            total = total + member.score(Xa, reference=reference)
        return np.asarray(total / len(self.members), dtype=np.float64)

    def to_scorer(self) -> Scorer:
        """Compile every member and blend them with equal weights."""
        return BlendScorer([m.to_scorer() for m in self.members])
