"""Configuration of ``train``, ``compare`` and ``evaluate``, read once: file, environment, flags.

One frozen :class:`TrainSettings` object per run. Sources, lowest priority first:

1. a YAML file (``configs/train.yaml``),
2. environment variables ``STREAM_DETECTOR_TRAIN_<KEY>`` or ``STREAM_DETECTOR_TRAIN_<SECTION>__<KEY>``
   (e.g. ``STREAM_DETECTOR_TRAIN_TECHNIQUE=smote``, ``STREAM_DETECTOR_TRAIN_VALIDATION__N_SPLITS=3``),
3. command-line flags.

Unknown keys and wrong types are errors that name the key:

>>> TrainSettings.load(overrides={"validation": {"n_split": 3}})
Traceback (most recent call last):
...
stream_detector.errors.ConfigError: config: unknown key 'validation.n_split'
>>> TrainSettings.load(overrides={"technique": "smote"}).technique
'smote'
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from stream_detector.config import LayeredSettings, SettingsSection
from stream_detector.errors import ConfigError
from stream_detector.features import FeatureSpec

__all__ = [
    "AnomalySettings",
    "BudgetSettings",
    "CompareSettings",
    "DataSettings",
    "EvaluationSettings",
    "HgbSettings",
    "HybridSettings",
    "LogisticSettings",
    "ResamplingSettings",
    "TrainSettings",
    "ValidationSettings",
]

Technique = Literal[
    "none",
    "class_weight",
    "random_over",
    "random_under",
    "smote",
    "borderline_smote",
    "adasyn",
    "smote_tomek",
]
"""How the class imbalance is handled while fitting the classifier."""
TechniqueChoice = Literal[Technique, "auto"]
"""A technique, or ``auto``: compare the candidates and train the winner."""
ScorerKind = Literal["classifier", "anomaly", "hybrid"]
ClassifierModel = Literal["logistic", "hgb"]
MissingPolicy = Literal["refuse", "impute_median"]
ConstantPolicy = Literal["drop", "refuse"]
SplitMethod = Literal["auto", "stratified", "time"]
SelectionRule = Literal["one_se", "best"]
CalibrationChoice = Literal["auto", "platt", "isotonic", "none"]
SearchMethod = Literal["auto", "halving", "exhaustive"]

TECHNIQUES: tuple[Technique, ...] = get_args(Technique)
SCORERS: tuple[ScorerKind, ...] = get_args(ScorerKind)
MODELS: tuple[ClassifierModel, ...] = get_args(ClassifierModel)


class DataSettings(SettingsSection):
    """How the data file becomes a feature matrix."""

    missing: MissingPolicy = "refuse"
    """Missing or infinite feature values: refuse the file, or fill with the column's median."""
    constant_columns: ConstantPolicy = "drop"
    """Columns with one value: drop them (logged) or refuse the file."""
    features: tuple[str, ...] | None = None
    """Feature columns to use, in order; default every numeric non-identifier column."""
    exclude: tuple[str, ...] = ()
    """Columns never used as features (e.g. a second label or a leaky field)."""
    amount_column: str | None = "amount"
    """Column holding money amounts, for amount-aware costs and metrics (if present)."""


class ValidationSettings(SettingsSection):
    """How out-of-fold validation predictions are made."""

    method: SplitMethod = "auto"
    """``auto``: time-ordered when the data has a ``timestamp`` column, else stratified K-fold."""
    n_splits: int = Field(default=5, ge=2, le=50)
    gap_days: float = Field(default=0.0, ge=0.0)
    """Time splits only: training rows this close before the validation period are left out."""


class ResamplingSettings(SettingsSection):
    """Parameters of the resampling and weighting techniques."""

    sampling_strategy: float | Literal["auto"] = "auto"
    """Minority/majority ratio after resampling, in (0, 1]; ``auto`` balances the classes."""
    k_neighbors: int = Field(default=5, ge=1)
    """Neighbours of the SMOTE family (and ADASYN's ``n_neighbors``)."""
    class_weight: Literal["balanced"] | dict[int, float] = "balanced"
    max_new_rows: int | None = Field(default=1_000_000, ge=1)
    """Most rows an over-sampler may add to one training set: above it the minority/majority
    ratio is lowered to what adds this many (logged); None adds what the ratio asks."""

    @field_validator("sampling_strategy")
    @classmethod
    def _ratio(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError(f"must be 'auto' or a ratio in (0, 1]; got {value}")
        return value

    @field_validator("class_weight")
    @classmethod
    def _weights(cls, value: str | dict[int, float]) -> str | dict[int, float]:
        if isinstance(value, dict) and (
            set(value) != {0, 1} or any(not w > 0 for w in value.values())
        ):
            raise ValueError(f"must be 'balanced' or positive weights for 0 and 1; got {value}")
        return value


class LogisticSettings(SettingsSection):
    """StandardScaler + LogisticRegression."""

    C: float = Field(default=1.0, gt=0.0)
    max_iter: int = Field(default=1000, ge=10)


class HgbSettings(SettingsSection):
    """HistGradientBoostingClassifier."""

    max_iter: int = Field(default=100, ge=1)
    learning_rate: float = Field(default=0.1, gt=0.0)
    max_leaf_nodes: int = Field(default=31, ge=2)
    min_samples_leaf: int = Field(default=20, ge=1)
    l2_regularization: float = Field(default=0.0, ge=0.0)
    early_stopping: bool | Literal["auto"] = "auto"
    """``auto``: on above 10,000 training rows (scikit-learn's default)."""


class AnomalySettings(SettingsSection):
    """IsolationForest."""

    n_estimators: int = Field(default=100, ge=1)
    max_samples: int | float | Literal["auto"] = "auto"
    contamination: float | Literal["auto"] = "auto"
    fit_on: Literal["all", "negatives"] = "all"
    """Fit on every training row, or only on the rows labelled 0."""


class HybridSettings(SettingsSection):
    """The stacker combining the classifier's and the anomaly scorer's outputs."""

    inner_splits: int = Field(default=3, ge=2, le=20)
    """Folds inside each training set that produce the stacker's out-of-fold inputs."""
    C: float = Field(default=1.0, gt=0.0)


class EvaluationSettings(SettingsSection):
    """Metrics beyond the contract's."""

    precision_at_k: int = Field(default=100, ge=1)


class BudgetSettings(SettingsSection):
    """Limits of the search of ``compare`` and ``train --technique auto`` (None: no limit).

    When a limit is reached, the candidates not yet tried are recorded as not run and the
    best one so far goes straight to the last rung, on every row: the winner is always
    cross-validated on all the data, whatever the budget.
    """

    seconds: float | None = Field(default=None, gt=0.0)
    """Wall time of the search, in seconds."""
    fits: int | None = Field(default=None, ge=1)
    """Model fits of the search (a candidate cross-validated on K folds counts K)."""


class CompareSettings(SettingsSection):
    """The candidates ``compare`` and ``train --technique auto`` try."""

    techniques: tuple[Technique, ...] = TECHNIQUES
    scorers: tuple[ScorerKind, ...] = SCORERS
    models: tuple[ClassifierModel, ...] = MODELS
    hybrid: Literal["best", "all"] = "best"
    """``best``: one hybrid, built on the best classifier found; ``all``: every combination."""
    blend: bool = True
    """Also try the blend of the best logistic and the best gradient-boosting candidate
    (first in selection order; see :mod:`offline.compare`)."""
    selection: SelectionRule = "one_se"
    """How the winner is chosen: ``one_se`` (the first candidate in run order within one
    standard error of the best, see :mod:`offline.compare`) or ``best`` (the highest
    PR-AUC)."""
    search: SearchMethod = "auto"
    """``halving``: successive halving (every candidate on a sample of the rows, the best on
    more, the last on all; see :mod:`offline.search`); ``exhaustive``: every candidate on all
    rows; ``auto``: halving when the data holds at least ``eta`` times ``min_rows`` rows."""
    min_rows: int = Field(default=3_000, ge=100)
    """Rows of the first round of halving at least: every positive plus a sample of the
    negatives."""
    eta: int = Field(default=3, ge=2, le=10)
    """Halving keeps the best 1/eta of the candidates for the next round, on eta times the
    rows."""
    sample_folds: int = Field(default=3, ge=2, le=50)
    """Validation folds of halving's rungs before the last (on samples); the last rung, on
    every row, uses ``validation.n_splits``."""
    close_calls: int = Field(default=1, ge=0)
    """Halving also promotes up to this many candidates just below a rung's cut, when they
    trail the last one kept by no more than one standard error (per-fold PR-AUC, paired)."""
    budget: BudgetSettings = BudgetSettings()

    @field_validator("techniques", "scorers", "models")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one value")
        return tuple(dict.fromkeys(value))


class TrainSettings(LayeredSettings):
    """Everything ``train``, ``compare`` and ``evaluate`` need, frozen once read.

    Examples
    --------
    >>> s = TrainSettings.load(overrides={"scorer": "hybrid", "anomaly": {"n_estimators": 50}})
    >>> s.scorer, s.anomaly.n_estimators, s.threshold_policy
    ('hybrid', 50, 'max_f1')
    """

    model_config = SettingsConfigDict(
        env_prefix="STREAM_DETECTOR_TRAIN_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    technique: TechniqueChoice = "class_weight"
    scorer: ScorerKind = "classifier"
    model: ClassifierModel = "logistic"
    """The classifier of the ``classifier`` and ``hybrid`` scorers."""
    threshold_policy: str = "max_f1"
    """See :func:`offline.thresholds.parse_policy`."""
    calibration: CalibrationChoice = "auto"
    """How classifier, hybrid and blend scores become probabilities, fitted on out-of-fold
    scores (:func:`offline.calibration.fit_calibrator`); ``none`` keeps them as they are."""
    seed: int = 0
    threads: int | None = Field(default=1, ge=1)
    """Native threads (OpenMP, BLAS) while fitting and scoring; None lets the libraries use
    every core. One is the default: on small or busy machines scikit-learn's OpenMP models
    slow down many times over when their threads compete for cores."""
    data: DataSettings = DataSettings()
    features: FeatureSpec | None = None
    """Behavioural features computed from the raw history (``stream_detector.features``),
    recorded in the bundle; None: the data's numeric columns as they are (``data``)."""
    validation: ValidationSettings = ValidationSettings()
    resampling: ResamplingSettings = ResamplingSettings()
    logistic: LogisticSettings = LogisticSettings()
    hgb: HgbSettings = HgbSettings()
    anomaly: AnomalySettings = AnomalySettings()
    hybrid: HybridSettings = HybridSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    compare: CompareSettings = CompareSettings()

    @field_validator("threshold_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        from offline.thresholds import parse_policy

        try:
            return str(parse_policy(value))
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
