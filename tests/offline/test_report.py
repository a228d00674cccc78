"""Reports: JSON that stays valid, markdown that names what happened, real PNG plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offline.compare import run_compare
from offline.config import TrainSettings
from offline.data import Dataset
from offline.evaluation import evaluate_bundle
from offline.report import write_compare_report, write_evaluation_report, write_json
from offline.train import train_model

PNG = b"\x89PNG\r\n\x1a\n"


def test_write_json_turns_nan_into_null(tmp_path: Path) -> None:
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": "s"})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.0, None], "c": "s"}


def test_compare_report_lists_skipped_candidates(
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Callable[..., TrainSettings],
) -> None:
    frame = make_data(300, seed=2)
    features = ("amount", "hour", "distance", "velocity")
    y = np.zeros(300, dtype=np.int64)
    y[::30] = 1  # 10 positives: too few for k_neighbors=8 in 3 folds
    ds = Dataset(X=frame[list(features)].to_numpy(float), y=y, features=features, label="y")
    settings = make_settings(
        resampling={"k_neighbors": 8},
        compare={"techniques": ["none", "smote"], "models": ["logistic"]},
    )
    cmp = run_compare(ds, settings)
    write_compare_report(tmp_path / "r", cmp, title="My comparison")
    report = (tmp_path / "r" / "report.md").read_text()
    assert report.startswith("# My comparison\n")
    assert "Skipped:" in report
    assert "- classifier/logistic smote: class 1 has" in report
    assert f"**Winner: {cmp.verdict()}.**" in report
    rows = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert [r["technique"] for r in rows if r.get("error")] == ["smote"]
    for png in (
        "pr_curves.png",
        "score_distributions.png",
        "threshold_curves.png",
        "reliability.png",
    ):
        assert (tmp_path / "r" / png).read_bytes()[:8] == PNG
    assert "| Brier | ECE |" in report
    assert f"({int(cmp.mask.sum())} rows, " in report


def test_compare_report_marks_the_rows_and_rung_of_every_candidate(
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Callable[..., TrainSettings],
) -> None:
    frame = make_data(3000, rate=0.05, seed=3)
    features = ("amount", "hour", "distance", "velocity")
    ds = Dataset(
        X=frame[list(features)].to_numpy(float),
        y=frame["is_fraud"].to_numpy(),
        features=features,
        label="y",
    )
    settings = make_settings(
        compare={
            "techniques": ["none", "class_weight"],
            "scorers": ["classifier", "anomaly"],
            "search": "halving",
            "min_rows": 100,
        },
    )
    cmp = run_compare(ds, settings)
    write_compare_report(tmp_path / "r", cmp)
    rows = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert len(rows) == len(cmp.results) == 6  # 2 x 2 classifiers, anomaly, the blend
    assert {r["rows"] for r in rows if r["rung"] == r["rungs"]} == {3000}
    assert any(r["rows"] < 3000 for r in rows)
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"Search: {cmp.search}." in report
    for r in cmp.results:
        assert f"| {r.rows:,} | {r.rung + 1}/{r.rungs} |" in report
    assert (tmp_path / "r" / "pr_curves.png").read_bytes()[:8] == PNG


def test_evaluation_report_says_when_the_policy_did_not_hold(
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Callable[..., TrainSettings],
) -> None:
    make_data(400, seed=1).to_csv(tmp_path / "train.csv", index=False)
    train_model(
        tmp_path / "train.csv",
        "is_fraud",
        tmp_path / "model",
        make_settings(threshold_policy="alert_rate:0.05"),
    )
    # New data with four times the fraud: far more than 5% of events get flagged.
    make_data(400, rate=0.4, seed=2).to_csv(tmp_path / "new.csv", index=False)
    ev = evaluate_bundle(tmp_path / "model", tmp_path / "new.csv", "is_fraud")
    assert ev.policy["held"] is False
    write_evaluation_report(tmp_path / "r", ev)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Policy `alert_rate:0.05`: target 0.05, achieved" in report
    assert "the policy did NOT hold on this data" in report
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["policy"]["held"] is False
    assert metrics["alert_rate"] == pytest.approx(ev.metrics.alert_rate)
    validation = ev.bundle.manifest.metrics["alert_rate"]
    assert validation is not None
    assert f"| alert_rate | {validation:.4f} | {ev.metrics.alert_rate:.4f} |" in report
    assert f"the k = {ev.metrics.k} highest scores" in report
    assert sum(metrics["reliability"]["bin_count"]) == ev.metrics.n
    assert metrics["brier"] == pytest.approx(ev.calibration.brier)
    assert (tmp_path / "r" / "reliability.png").read_bytes()[:8] == PNG
