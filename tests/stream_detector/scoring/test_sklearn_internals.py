"""The scikit-learn private attributes the compilers read: present, pinned, refused when gone."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from stream_detector.errors import ConfigError
from stream_detector.scoring import GradientBoostingScorer, IsolationForestScorer
from stream_detector.scoring.sklearn_internals import PRIVATE_ATTRIBUTES, SUPPORTED_SKLEARN

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    X, y = make_classification(n_samples=300, n_features=4, random_state=0)
    return {
        "HistGradientBoostingClassifier": HistGradientBoostingClassifier(
            max_iter=5, random_state=0
        ).fit(X, y),
        "IsolationForest": IsolationForest(n_estimators=5, random_state=0).fit(X),
    }


def test_pyproject_pins_the_supported_range_and_the_installed_release_is_in_it() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert f"scikit-learn{SUPPORTED_SKLEARN}" in dependencies
    lower, upper = re.fullmatch(r">=([\d.]+),<([\d.]+)", SUPPORTED_SKLEARN).groups()  # type: ignore[union-attr]
    installed = _release(version("scikit-learn"))
    assert _release(lower) <= installed < _release(upper), (
        f"scikit-learn {version('scikit-learn')} is outside the supported {SUPPORTED_SKLEARN}"
    )
    # the upper bound is the minor after the installed one: the newest minor allowed is tested
    assert _release(upper)[:2] == (installed[0], installed[1] + 1)


@pytest.mark.parametrize(
    ("estimator", "name"),
    [(estimator, name) for estimator, names in PRIVATE_ATTRIBUTES.items() for name in names],
)
def test_the_installed_scikit_learn_has_every_attribute_read(
    fitted: dict[str, Any], estimator: str, name: str
) -> None:
    assert hasattr(fitted[estimator], name), (
        f"scikit-learn {version('scikit-learn')}: {estimator} no longer has {name}; "
        "update stream_detector/scoring/sklearn_internals.py and the pin in pyproject.toml"
    )


@pytest.mark.parametrize(
    ("estimator", "name", "compile"),
    [
        ("HistGradientBoostingClassifier", "_predictors", GradientBoostingScorer.from_sklearn),
        (
            "HistGradientBoostingClassifier",
            "_baseline_prediction",
            GradientBoostingScorer.from_sklearn,
        ),
        ("IsolationForest", "_max_features", IsolationForestScorer.from_sklearn),
    ],
)
def test_a_model_without_an_attribute_is_refused_by_name(
    fitted: dict[str, Any], estimator: str, name: str, compile: Any
) -> None:
    model = fitted[estimator]
    saved = getattr(model, name)
    delattr(model, name)
    try:
        with pytest.raises(ConfigError, match=rf"private attribute '{name}'.*scikit-learn>=1\.5"):
            compile(model)
    finally:
        setattr(model, name, saved)


def test_the_public_max_samples_stands_in_for_the_private_one(fitted: dict[str, Any]) -> None:
    forest = fitted["IsolationForest"]
    X = np.random.default_rng(0).normal(size=(50, 4))
    expected = IsolationForestScorer.from_sklearn(forest).score_samples(X)
    saved = forest._max_samples
    del forest._max_samples
    try:
        again = IsolationForestScorer.from_sklearn(forest).score_samples(X)
    finally:
        forest._max_samples = saved
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_allclose(expected, -forest.score_samples(X), rtol=0, atol=1e-12)
