"""Fixtures of the offline tests: small labelled data sets and fast settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from offline.config import TrainSettings

FEATURES = ("amount", "hour", "distance", "velocity")


def make_frame(n: int = 400, *, rate: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Transactions with ``rate`` frauds: larger amounts, far from home, fast, at night.

    Positives overlap the negatives (the classes are not separable) and are also unusual
    (the anomaly scorer can find them): a fair fixture for every technique and scorer.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    y[:4] = [1, 0, 1, 0]  # never without positives, whatever the seed
    amount = rng.gamma(2.0, 25.0, n) + y * rng.gamma(2.0, 60.0, n)
    hour = np.where(y == 1, rng.normal(3.0, 3.0, n), rng.normal(13.0, 4.0, n)) % 24
    distance = rng.exponential(2.0, n) + y * rng.exponential(6.0, n)
    velocity = rng.normal(0.0, 1.0, n) + y * rng.normal(1.5, 1.5, n)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "amount": amount.round(2),
            "hour": hour.round(3),
            "distance": distance.round(3),
            "velocity": velocity.round(3),
            "is_fraud": y,
        }
    )


def fast_settings(**overrides: Any) -> TrainSettings:
    """Settings that keep every fit well under a second on the small fixtures."""
    base: dict[str, Any] = {
        "validation": {"n_splits": 3},
        "hgb": {"max_iter": 20, "early_stopping": False},
        "anomaly": {"n_estimators": 15},
        "hybrid": {"inner_splits": 2},
        "evaluation": {"precision_at_k": 20},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return TrainSettings.load(overrides=base)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """``write_csv(frame, name="data.csv") -> Path`` in the test's temporary directory."""

    def write(frame: pd.DataFrame, name: str = "data.csv") -> Path:
        path = tmp_path / name
        if name.endswith((".parquet", ".pq")):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        return path

    return write


@pytest.fixture
def data_csv(write_csv: Callable[..., Path]) -> Path:
    """400 rows of :func:`make_frame` as CSV."""
    return write_csv(make_frame())


@pytest.fixture(scope="session")
def make_data() -> Callable[..., pd.DataFrame]:
    """:func:`make_frame`: ``make_data(n=400, rate=0.1, seed=0) -> DataFrame``."""
    return make_frame


@pytest.fixture(scope="session")
def make_settings() -> Callable[..., TrainSettings]:
    """:func:`fast_settings`: ``make_settings(**overrides) -> TrainSettings``."""
    return fast_settings


def cli_argv(command: str, **options: object) -> list[str]:
    """The command line ``[command, --name, value, ...]``: ``name_part=value`` is
    ``--name-part value``, ``name=True`` the bare flag ``--name``, ``name=None`` left out.

    >>> cli_argv("train", data="d.csv", threshold_policy="recall:0.8", quiet=True, out=None)
    ['train', '--data', 'd.csv', '--threshold-policy', 'recall:0.8', '--quiet']
    """
    argv = [command]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None:
            argv += [flag, str(value)]
    return argv


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(command, **options) -> (exit code, stdout, stderr)``: the command line of
    :func:`cli_argv`, run in-process through the real entry point."""
    from stream_detector.cli import main

    def run(command: str, **options: object) -> tuple[int, str, str]:
        code = main(cli_argv(command, **options))
        out, err = capsys.readouterr()
        return code, out, err

    return run
