"""The scorers ``train`` can fit: one scikit-learn-style estimator class per kind.

Every class follows the contract of :class:`FraudEstimator`; :data:`ESTIMATORS` maps the
scorer names of the configuration to the classes, and :func:`make_estimator` builds one from
a name.

- :class:`ClassifierEstimator` (``classifier``): a supervised model inside an
  imbalanced-learn Pipeline. ``logistic`` is StandardScaler -> (sampler) -> LogisticRegression;
  ``hgb`` is (sampler) -> HistGradientBoostingClassifier. Its log-odds are shifted by the prior
  correction of :mod:`offline.resampling`, so its scores estimate ``P(fraud | x)`` at the true
  prior.
- :class:`AnomalyEstimator` (``anomaly``): an IsolationForest fitted on every training row or
  on the negatives only; its score is the paper's anomaly score ``2 ** (-E[h(x)] / c(n))`` in
  [0, 1].
- :class:`HybridEstimator` (``hybrid``): both, combined by a logistic regression (the stacker)
  fitted on out-of-fold ``[logit(classifier score), anomaly score]`` of the training rows, so
  that anomalies the labels never showed still raise the score.
- :class:`BlendEstimator` (``blend``): the mean of the (prior-corrected) probabilities of
  several classifier or hybrid estimators, each with its own model and technique: what
  ``train --technique auto`` builds from the best logistic and the best gradient-boosting
  candidate (:mod:`offline.compare`).

:meth:`FraudEstimator.score_samples` computes the scores with scikit-learn (the anomaly
estimator's with its compiled forest, unless ``reference=True``);
:meth:`FraudEstimator.to_scorer` compiles the fitted model into a
:mod:`stream_detector.scoring` scorer (plain arrays, no scikit-learn at run time) that gives
the same scores, which ``train`` checks against ``score_samples(..., reference=True)``. Only
the compiled scorer is ever saved.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

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

from offline.config import ClassifierModel, Technique, TrainSettings
from offline.resampling import (
    capped_settings,
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

__all__ = [
    "ESTIMATORS",
    "AnomalyEstimator",
    "BlendEstimator",
    "ClassifierEstimator",
    "FraudEstimator",
    "HybridEstimator",
    "SupervisedEstimator",
    "check_combination",
    "make_estimator",
]

Array = npt.NDArray[np.float64]

_threads: list[ThreadpoolController] = []


def _limit_threads(limit: int | None) -> Any:
    """A context limiting native thread pools; the library scan is done once per process."""
    if not _threads:
        _threads.append(ThreadpoolController())
    return _threads[0].limit(limits=limit)


def _clip_logit(p: Array) -> Array:
    """The hybrid scorer's stacker input: ``logit(clip(p))`` exactly as it computes it."""
    return clipped_logit(p, HybridScorer.EPS)


class FraudEstimator(BaseEstimator, ABC):
    """The contract of every scorer ``train`` fits.

    An estimator is built from keyword arguments that it only stores (scikit-learn's rule:
    ``clone`` and ``get_params`` work); :meth:`fit` learns from rows ``X`` and 0/1 labels
    ``y`` and returns the estimator, whose fitted state ends in ``_``; with the same
    ``random_state`` two fits give the same scores. :meth:`score_samples` maps rows to scores
    in [0, 1], higher meaning more suspicious, one per row. :meth:`to_scorer` compiles the
    fitted estimator into a run-time :class:`~stream_detector.scoring.Scorer` giving the same
    scores. ``kind`` is the scorer's name in the configuration and the bundle's manifest.

    Examples
    --------
    >>> {kind: cls.__name__ for kind, cls in ESTIMATORS.items()}
    {'classifier': 'ClassifierEstimator', 'anomaly': 'AnomalyEstimator', 'hybrid': 'HybridEstimator'}
    >>> BlendEstimator.kind
    'blend'
    """

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        """Fit on training rows ``X`` (float matrix) and labels ``y`` (0/1)."""

    @abstractmethod
    def score_samples(self, X: npt.ArrayLike, *, reference: bool = False) -> Array:
        """Scores in [0, 1] for rows ``X``; higher is more suspicious.

        ``reference=True`` computes every score with scikit-learn itself, what the compiled
        scorer is checked against (otherwise the anomaly estimator uses its compiled forest).
        """

    @abstractmethod
    def to_scorer(self) -> Scorer:
        """Compile the fitted model into a run-time scorer giving the same scores."""

    def check_labels(self, y: npt.NDArray[np.int64], *, where: str) -> None:
        """DataError when ``y`` has too few rows of a class for this estimator (none here)."""


class _SingleModel(FraudEstimator):
    """One model fitted with ``settings`` and seeded by ``random_state``, its native threads
    limited to ``settings.threads``."""

    settings: TrainSettings | None
    random_state: int | None

    @classmethod
    @abstractmethod
    def build(
        cls,
        *,
        model: ClassifierModel,
        technique: Technique,
        settings: TrainSettings | None,
        random_state: int | None,
    ) -> _SingleModel:
        """The estimator of a candidate (see :func:`make_estimator`)."""

    def effective_settings(self) -> TrainSettings:
        """The settings in force: ``settings``, or the defaults."""
        return self.settings if self.settings is not None else TrainSettings.model_construct()

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        Xa = np.asarray(X, dtype=np.float64)
        ya = np.asarray(y, dtype=np.int64)
        with _limit_threads(self.effective_settings().threads):
            self._fit(Xa, ya, where=f"a training set of {ya.size} rows")
        self.n_features_in_ = Xa.shape[1]
        return self

    def score_samples(self, X: npt.ArrayLike, *, reference: bool = False) -> Array:
        with _limit_threads(self.effective_settings().threads):
            return self._score_samples(np.asarray(X, dtype=np.float64), reference)

    @abstractmethod
    def _fit(self, X: Array, y: npt.NDArray[np.int64], *, where: str) -> None: ...

    @abstractmethod
    def _score_samples(self, X: Array, reference: bool) -> Array: ...


class SupervisedEstimator(_SingleModel):
    """An estimator fitted on the labels, whose scores are probabilities at the true prior
    (the classifier and the hybrid).

    Parameters
    ----------
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
    train_prior_, fitted_prior_, logit_offset_
        True positive rate, the rate the classifier saw, and the correction between them.
    """

    def __init__(
        self,
        *,
        model: ClassifierModel = "logistic",
        technique: Technique = "none",
        settings: TrainSettings | None = None,
        random_state: int | None = None,
    ) -> None:
        self.model = model
        self.technique = technique
        self.settings = settings
        self.random_state = random_state

    @classmethod
    def build(
        cls,
        *,
        model: ClassifierModel,
        technique: Technique,
        settings: TrainSettings | None,
        random_state: int | None,
    ) -> SupervisedEstimator:
        return cls(model=model, technique=technique, settings=settings, random_state=random_state)

    def check_labels(self, y: npt.NDArray[np.int64], *, where: str) -> None:
        """DataError when ``y`` has too few rows of a class for this estimator's technique."""
        check_resampling(self.technique, self.effective_settings().resampling, y, where=where)


class ClassifierEstimator(SupervisedEstimator):
    """The classifier scorer: a resampled or weighted classifier, its log-odds corrected to
    the true prior.

    Parameters and attributes are those of :class:`SupervisedEstimator`, plus ``pipeline_``,
    the fitted imbalanced-learn Pipeline.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import roc_auc_score
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=600) > 1.8).astype(int)
    >>> est = ClassifierEstimator(technique="smote", random_state=0).fit(X, y)
    >>> est.train_prior_, est.fitted_prior_, round(est.logit_offset_, 4)
    (0.041666666666666664, 0.5, -3.1355)
    >>> round(float(roc_auc_score(y, est.score_samples(X))), 3)
    0.983
    >>> float(np.abs(est.to_scorer().score_samples(X) - est.score_samples(X)).max()) < 1e-12
    True
    """

    kind: ClassVar[str] = "classifier"

    def _pipeline(self, y: npt.NDArray[np.int64]) -> ImbPipeline:
        s = self.effective_settings()
        tech = self.technique
        steps: list[tuple[str, Any]] = []
        if self.model == "logistic":
            steps.append(("scale", StandardScaler()))
        resampling = capped_settings(tech, s.resampling, y)
        sampler = make_sampler(tech, resampling, random_state=self.random_state)
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

    def _fit(self, X: Array, y: npt.NDArray[np.int64], *, where: str) -> None:
        s = self.effective_settings()
        check_resampling(self.technique, s.resampling, y, where=where)
        pipe = self._pipeline(y)
        try:
            pipe.fit(X, y)
        except (ValueError, RuntimeError) as exc:
            if self.technique in ("none", "class_weight"):
                raise
            first = str(exc).splitlines()[0]
            raise DataError(
                f"{self.technique} cannot resample {where}: {first}; choose another technique"
            ) from exc
        self.pipeline_ = pipe
        self.train_prior_ = float(y.mean())
        self.fitted_prior_ = effective_prior(self.technique, s.resampling, pipe, y)
        self.logit_offset_ = prior_offset(self.train_prior_, self.fitted_prior_)

    def _score_samples(self, X: Array, reference: bool) -> Array:
        margin = np.asarray(self.pipeline_.decision_function(X), dtype=np.float64)
        return np.asarray(expit(margin + self.logit_offset_), dtype=np.float64)

    def to_scorer(self) -> Scorer:
        est = self.pipeline_.named_steps["model"]
        if self.model == "logistic":
            linear = Pipeline([("scale", self.pipeline_.named_steps["scale"]), ("model", est)])
            return LinearScorer.from_sklearn(linear, logit_offset=self.logit_offset_)
        return GradientBoostingScorer.from_sklearn(est, logit_offset=self.logit_offset_)


class AnomalyEstimator(_SingleModel):
    """The anomaly scorer: an IsolationForest, which learns without labels.

    Parameters
    ----------
    settings
        Hyper-parameters (``anomaly``); the defaults of
        :class:`~offline.config.TrainSettings` when None.
    random_state
        Seed of the forest.

    Attributes
    ----------
    iforest_
        The fitted IsolationForest, and ``iforest_scorer_`` its compiled form, which
        :meth:`score_samples` uses unless asked for the reference: the scores served, equal to
        scikit-learn's to 1e-15 and faster on large batches (cross-validation scores every
        row).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(300, 2)), [[6.0, 6.0]]])
    >>> est = AnomalyEstimator(random_state=0).fit(X, np.zeros(len(X)))
    >>> int(np.argmax(est.score_samples(X)))
    300
    >>> float(np.abs(est.score_samples(X) - est.score_samples(X, reference=True)).max()) < 1e-12
    True
    """

    kind: ClassVar[str] = "anomaly"

    def __init__(
        self, *, settings: TrainSettings | None = None, random_state: int | None = None
    ) -> None:
        self.settings = settings
        self.random_state = random_state

    @classmethod
    def build(
        cls,
        *,
        model: ClassifierModel,
        technique: Technique,
        settings: TrainSettings | None,
        random_state: int | None,
    ) -> AnomalyEstimator:
        return cls(settings=settings, random_state=random_state)

    def _fit(self, X: Array, y: npt.NDArray[np.int64], *, where: str) -> None:
        a = self.effective_settings().anomaly
        rows = X[y == 0] if a.fit_on == "negatives" else X
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

    def _score_samples(self, X: Array, reference: bool) -> Array:
        if reference:
            return np.asarray(-self.iforest_.score_samples(X), dtype=np.float64)
        return self.iforest_scorer_.score_samples(X)

    def to_scorer(self) -> Scorer:
        return self.iforest_scorer_


class HybridEstimator(SupervisedEstimator):
    """The hybrid scorer: a classifier and an anomaly estimator, stacked.

    Parameters are those of :class:`SupervisedEstimator` (``model`` and ``technique`` are the
    classifier's).

    Attributes
    ----------
    classifier_, anomaly_, stacker_
        The fitted :class:`ClassifierEstimator`, :class:`AnomalyEstimator` and the logistic
        regression combining them; ``train_prior_``, ``fitted_prior_`` and ``logit_offset_``
        are the classifier's.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=600) > 1.8).astype(int)
    >>> est = HybridEstimator(technique="class_weight", random_state=0).fit(X, y)
    >>> est.stacker_.coef_.shape
    (1, 2)
    >>> float(np.abs(est.to_scorer().score_samples(X) - est.score_samples(X)).max()) < 1e-12
    True
    """

    kind: ClassVar[str] = "hybrid"

    def _classifier(self) -> ClassifierEstimator:
        return ClassifierEstimator(
            model=self.model,
            technique=self.technique,
            settings=self.settings,
            random_state=self.random_state,
        )

    def _anomaly(self) -> AnomalyEstimator:
        return AnomalyEstimator(settings=self.settings, random_state=self.random_state)

    def _fit(self, X: Array, y: npt.NDArray[np.int64], *, where: str) -> None:
        s = self.effective_settings()
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
            clf = self._classifier().fit(X[train], y[train])
            anom = self._anomaly().fit(X[train], y[train])
            stack[val, 0] = _clip_logit(clf.score_samples(X[val]))
            stack[val, 1] = anom.score_samples(X[val])
        self.stacker_ = LogisticRegression(C=s.hybrid.C, random_state=self.random_state).fit(
            stack, y
        )
        self.classifier_ = self._classifier().fit(X, y)
        self.anomaly_ = self._anomaly().fit(X, y)
        self.train_prior_ = float(y.mean())
        self.fitted_prior_ = self.classifier_.fitted_prior_
        self.logit_offset_ = self.classifier_.logit_offset_

    def _score_samples(self, X: Array, reference: bool) -> Array:
        parts = (
            self.classifier_.score_samples(X, reference=reference),
            self.anomaly_.score_samples(X, reference=reference),
        )
        z = np.column_stack([_clip_logit(parts[0]), parts[1]])
        return np.asarray(expit(self.stacker_.decision_function(z)), dtype=np.float64)

    def to_scorer(self) -> Scorer:
        coef = self.stacker_.coef_[0]
        return HybridScorer(
            classifier=self.classifier_.to_scorer(),
            anomaly=self.anomaly_.to_scorer(),
            coef=(float(coef[0]), float(coef[1])),
            intercept=float(self.stacker_.intercept_[0]),
        )


class BlendEstimator(FraudEstimator):
    """The mean of several supervised estimators' scores (classifier or hybrid members).

    Each member keeps its own model, technique and prior correction; the blend's score is
    the equal-weight mean of their scores, compiled to a
    :class:`~stream_detector.scoring.BlendScorer`.

    Parameters
    ----------
    members
        At least two :class:`SupervisedEstimator`; fitting fits each of them.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=600) > 1.8).astype(int)
    >>> parts = [ClassifierEstimator(model="logistic", technique="smote", random_state=0),
    ...          ClassifierEstimator(model="hgb", technique="class_weight", random_state=0)]
    >>> blend = BlendEstimator(members=parts).fit(X, y)
    >>> mean = (parts[0].score_samples(X) + parts[1].score_samples(X)) / 2
    >>> bool(np.allclose(blend.score_samples(X), mean, rtol=0, atol=1e-15))
    True
    >>> float(np.abs(blend.to_scorer().score_samples(X) - blend.score_samples(X)).max()) < 1e-12
    True
    """

    kind: ClassVar[str] = "blend"

    def __init__(self, *, members: Sequence[SupervisedEstimator]) -> None:
        self.members = members

    def _check(self) -> None:
        if len(self.members) < 2:
            raise ConfigError(f"a blend needs at least 2 members; got {len(self.members)}")
        if not all(isinstance(m, SupervisedEstimator) for m in self.members):
            raise ConfigError(
                "blend members must give probabilities (classifier or hybrid); the anomaly "
                "scorer's score is not one"
            )

    def check_labels(self, y: npt.NDArray[np.int64], *, where: str) -> None:
        """DataError when ``y`` has too few rows of a class for a member's technique."""
        for member in self.members:
            member.check_labels(y, where=where)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        """Fit every member on the same rows."""
        self._check()
        for member in self.members:
            member.fit(X, y)
        self.train_prior_ = self.members[0].train_prior_
        self.n_features_in_ = self.members[0].n_features_in_
        return self

    def score_samples(self, X: npt.ArrayLike, *, reference: bool = False) -> Array:
        """The mean of the members' scores (see :meth:`FraudEstimator.score_samples`)."""
        Xa = np.asarray(X, dtype=np.float64)
        total = self.members[0].score_samples(Xa, reference=reference)
        for member in self.members[1:]:
            total = total + member.score_samples(Xa, reference=reference)
        return np.asarray(total / len(self.members), dtype=np.float64)

    def to_scorer(self) -> Scorer:
        """Compile every member and blend them with equal weights."""
        return BlendScorer([m.to_scorer() for m in self.members])


ESTIMATORS: dict[str, type[_SingleModel]] = {
    cls.kind: cls for cls in (ClassifierEstimator, AnomalyEstimator, HybridEstimator)
}
"""The estimator class of each scorer of the configuration (``scorer:``, ``--scorer``)."""


def _estimator_class(scorer: str) -> type[_SingleModel]:
    cls = ESTIMATORS.get(scorer)
    if cls is None:
        names = ", ".join(repr(name) for name in ESTIMATORS)
        raise ConfigError(f"scorer must be one of {names}; got {scorer!r}")
    return cls


def check_combination(technique: str, scorer: str) -> None:
    """Refuse a technique that does not apply to the scorer (the anomaly scorer uses no labels).

    >>> check_combination("smote", "anomaly")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: technique 'smote' does not apply to the anomaly scorer, which learns without labels; use --technique none, or the classifier or hybrid scorer
    """
    uses_labels = issubclass(_estimator_class(scorer), SupervisedEstimator)
    if not uses_labels and technique != "none":
        raise ConfigError(
            f"technique {technique!r} does not apply to the {scorer} scorer, which learns "
            "without labels; use --technique none, or the classifier or hybrid scorer"
        )


def make_estimator(
    scorer: str,
    *,
    model: ClassifierModel = "logistic",
    technique: Technique = "none",
    settings: TrainSettings | None = None,
    random_state: int | None = None,
) -> FraudEstimator:
    """The unfitted estimator of ``scorer`` (a key of :data:`ESTIMATORS`).

    ``model`` and ``technique`` apply to the scorers that use labels; the anomaly scorer
    refuses any technique but ``none``.

    Examples
    --------
    >>> make_estimator("hybrid", model="hgb", technique="smote", random_state=0)
    HybridEstimator(model='hgb', random_state=0, technique='smote')
    >>> make_estimator("svm")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: scorer must be one of 'classifier', 'anomaly', 'hybrid'; got 'svm'
    """
    check_combination(technique, scorer)
    return _estimator_class(scorer).build(
        model=model, technique=technique, settings=settings, random_state=random_state
    )
