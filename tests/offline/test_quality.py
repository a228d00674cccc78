"""On real data: River's Statlog Shuttle set, trained and evaluated through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from stream_detector.cli import main


@pytest.fixture(scope="module")
def shuttle_split(shuttle_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stratified 8,000-row sample, 70% to train on and 30% held out."""
    sample, _ = train_test_split(
        shuttle_frame, train_size=8000, stratify=shuttle_frame["anomaly"], random_state=0
    )
    train, test = train_test_split(
        sample, test_size=0.3, stratify=sample["anomaly"], random_state=0
    )
    root = tmp_path_factory.mktemp("shuttle")
    train.to_csv(root / "train.csv", index=False)
    test.to_parquet(root / "test.parquet", index=False)
    return root


@pytest.mark.parametrize(
    ("flags", "floor"),
    [
        ([], 0.85),  # the defaults: class weights + logistic regression
        (["--model", "hgb", "--technique", "smote"], 0.97),
    ],
)
def test_shuttle_held_out_pr_auc(shuttle_split: Path, flags: list[str], floor: float) -> None:
    root = shuttle_split
    model = root / ("model" + "-".join(flags))
    report = root / ("report" + "-".join(flags))
    assert (
        main(
            [
                "train",
                "--data",
                str(root / "train.csv"),
                "--label",
                "anomaly",
                "--out",
                str(model),
                "--quiet",
                *flags,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model),
                "--data",
                str(root / "test.parquet"),
                "--label",
                "anomaly",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    metrics = json.loads((report / "metrics.json").read_text())
    positive_rate = metrics["positives"] / metrics["n"]
    assert metrics["n"] == 2400
    assert 0.06 < positive_rate < 0.08
    # Well above the positive rate (what a random ranking scores).
    assert metrics["pr_auc"] > floor > 10 * positive_rate
    assert metrics["recall"] > 0.8
    assert metrics["precision"] > 0.8
