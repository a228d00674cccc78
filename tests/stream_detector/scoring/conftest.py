"""Fixtures of the scorer tests: models fitted on River's shuttle data, payload round trips."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from stream_detector.errors import BundleError
from stream_detector.scoring import Scorer, scorer_from_payload

SHUTTLE_FEATURES = [f"f{i}" for i in range(1, 10)]


def payload_through_files(
    spec: dict[str, Any], arrays: dict[str, np.ndarray]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The payload as a bundle stores it: JSON text and an ``.npz`` read without pickle."""
    text = json.dumps(spec, allow_nan=False)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        loaded = {name: npz[name] for name in npz.files}
    return json.loads(text), loaded


def refusal(
    payload: tuple[dict[str, Any], dict[str, np.ndarray]],
    edit: Callable[[dict[str, Any], dict[str, Any]], Any],
) -> str:
    """The BundleError message for ``payload`` after ``edit(spec, arrays)`` changed it."""
    spec, arrays = payload
    edit(spec, arrays)
    with pytest.raises(BundleError) as info:
        scorer_from_payload(spec, arrays)
    return str(info.value)


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread() -> Iterator[None]:
    """scikit-learn's OpenMP threads crawl when the cores are busy; these tests need one."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture
def roundtrip() -> Callable[[Scorer], Scorer]:
    """Rebuild a scorer from its payload after a trip through JSON and ``.npz``."""

    def rebuild(scorer: Scorer) -> Scorer:
        return scorer_from_payload(*payload_through_files(*scorer.to_payload()))

    return rebuild


@pytest.fixture(scope="session")
def shuttle(shuttle_frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Shuttle features (49,097 x 9, float64) and 0/1 labels."""
    X = shuttle_frame[SHUTTLE_FEATURES].to_numpy(dtype=np.float64)
    y = shuttle_frame["anomaly"].to_numpy()
    return X, y


@pytest.fixture(scope="session")
def shuttle_iforest(shuttle: tuple[np.ndarray, np.ndarray]) -> IsolationForest:
    X, _ = shuttle
    return IsolationForest(n_estimators=100, random_state=0).fit(X)


@pytest.fixture(scope="session")
def shuttle_hgb(shuttle: tuple[np.ndarray, np.ndarray]) -> HistGradientBoostingClassifier:
    X, y = shuttle
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0)
    with threadpool_limits(limits=1, user_api="openmp"):
        return model.fit(X[::2], y[::2])


@pytest.fixture(scope="session")
def shuttle_linear(shuttle: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    X, y = shuttle
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
