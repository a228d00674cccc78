"""The private scikit-learn attributes the compilers read, named in one place.

Compiling a fitted model into flat arrays needs a few attributes scikit-learn does not
publish: a HistGradientBoostingClassifier's trees (``_predictors``), its initial log-odds
(``_baseline_prediction``) and its categorical preprocessor (``_preprocessor``); an
IsolationForest's feature and row subsampling (``_max_features``, ``_max_samples``). They may
change in any release, so:

- they are read here only (:data:`PRIVATE_ATTRIBUTES` lists them), and a model lacking one is
  refused with an error that names the attribute and the supported versions, never an
  ``AttributeError`` from deep inside a compiler;
- pyproject.toml pins scikit-learn to :data:`SUPPORTED_SKLEARN`, the releases whose newest
  minor the test suite runs against (``tests/stream_detector/scoring/test_sklearn_internals.py``
  checks the pin and the attributes);
- every compiled scorer is checked against scikit-learn's own scores before a bundle is
  written (``offline.train``), so a change that keeps the names but not the meaning is caught
  at training time, not in production.

>>> from sklearn.datasets import make_classification
>>> from sklearn.ensemble import IsolationForest
>>> X, _ = make_classification(n_samples=100, n_features=4, random_state=0)
>>> forest = IsolationForest(n_estimators=3, max_features=2, random_state=0).fit(X)
>>> max_features(forest), max_samples(forest)
(2, 100)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_detector.errors import ConfigError

__all__ = [
    "PRIVATE_ATTRIBUTES",
    "SUPPORTED_SKLEARN",
    "baseline_log_odds",
    "has_preprocessor",
    "max_features",
    "max_samples",
    "predictors",
]

SUPPORTED_SKLEARN = ">=1.5,<1.10"
"""The scikit-learn versions the compilers support (the same pin as pyproject.toml)."""

PRIVATE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "HistGradientBoostingClassifier": ("_predictors", "_baseline_prediction", "_preprocessor"),
    "IsolationForest": ("_max_features", "_max_samples"),
}
"""Every private attribute read, by the estimator class that holds it."""


def _read(model: Any, name: str) -> Any:
    try:
        return getattr(model, name)
    except AttributeError as exc:
        raise ConfigError(
            f"cannot compile {type(model).__name__}: expected scikit-learn's private attribute "
            f"{name!r}, which this scikit-learn version does not have; supported versions are "
            f"scikit-learn{SUPPORTED_SKLEARN}"
        ) from exc


def predictors(model: Any) -> list[Any]:
    """A fitted HistGradientBoostingClassifier's trees: one predictor per iteration (binary)."""
    return [predictor for (predictor,) in _read(model, "_predictors")]


def baseline_log_odds(model: Any) -> float:
    """A fitted binary HistGradientBoostingClassifier's initial log-odds."""
    return float(np.asarray(_read(model, "_baseline_prediction")).ravel()[0])


def has_preprocessor(model: Any) -> bool:
    """True when a HistGradientBoostingClassifier encodes categorical features itself.

    Releases without the attribute had no such preprocessor.
    """
    return getattr(model, "_preprocessor", None) is not None


def max_features(iforest: Any) -> int:
    """The number of features each tree of a fitted IsolationForest was grown on."""
    return int(_read(iforest, "_max_features"))


def max_samples(iforest: Any) -> int:
    """The number of rows each tree of a fitted IsolationForest was grown on.

    ``_max_samples`` is what scikit-learn's ``score_samples`` normalises path lengths by; the
    public ``max_samples_`` holds the same number and stands in where the private one is gone.
    """
    private = getattr(iforest, "_max_samples", None)
    return int(private if private is not None else iforest.max_samples_)
