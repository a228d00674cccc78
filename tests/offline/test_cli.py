"""The train, compare and evaluate commands, run in-process through the real entry point: their
user errors, and their quality on real data (River's Statlog Shuttle set)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from stream_detector.bundle import load_bundle


@pytest.fixture
def fast(tmp_path: Path, data_csv: Path) -> dict[str, object]:
    """The options every fast run on ``data_csv`` shares: its label, small models, 3 folds."""
    config = tmp_path / "train.yaml"
    config.write_text(
        "hgb: {max_iter: 20, early_stopping: false}\nanomaly: {n_estimators: 15}\n"
        "hybrid: {inner_splits: 2}\nevaluation: {precision_at_k: 20}\n"
    )
    return {"data": data_csv, "label": "is_fraud", "config": config, "folds": 3, "seed": 1}


@pytest.fixture
def train_fast(
    run_cli: Callable[..., tuple[int, str, str]], fast: dict[str, object], tmp_path: Path
) -> Callable[..., tuple[int, str, str]]:
    """``train_fast(**options) -> (exit code, stdout, stderr)``: ``train`` with the
    :func:`fast` options into ``tmp_path / "model"``."""

    def train(**options: object) -> tuple[int, str, str]:
        return run_cli("train", **fast, out=tmp_path / "model", **options)

    return train


def test_train_then_evaluate_with_report(
    train_fast: Callable[..., tuple[int, str, str]],
    run_cli: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
) -> None:
    code, out, err = train_fast(technique="smote", scorer="hybrid", threshold_policy="recall:0.8")
    assert code == 0, err
    assert "trained hybrid/logistic smote on 400 rows" in out
    assert "[1/1] hybrid/logistic smote  PR-AUC" in err
    manifest = load_bundle(tmp_path / "model").manifest
    assert (manifest.technique, manifest.scorer, manifest.threshold_policy) == (
        "smote",
        "hybrid",
        "recall:0.8",
    )
    assert manifest.model_dump()["train_settings"]["seed"] == 1

    make_data(300, seed=12).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_cli(
        "evaluate",
        model=tmp_path / "model",
        data=tmp_path / "new.csv",
        label="is_fraud",
        report=tmp_path / "report",
    )
    assert code == 0, err
    assert "PR-AUC" in out
    assert "policy recall:0.8" in out
    validation = manifest.metrics["alert_rate"]
    assert validation is not None
    assert f"(validation {validation:.4%})  Brier " in out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    for key in ("pr_auc", "roc_auc", "precision", "recall", "f1", "threshold", "n", "positives"):
        assert key in metrics
    assert metrics["n"] == 300
    assert metrics["threshold"] == manifest.threshold
    report = (tmp_path / "report" / "report.md").read_text()
    for png in ("pr_curve.png", "score_distribution.png", "threshold_curve.png"):
        assert f"]({png})" in report
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_prints_a_sorted_table_and_writes_the_report(
    run_cli: Callable[..., tuple[int, str, str]], fast: dict[str, object], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        "compare",
        **fast,
        techniques="none,random_under",
        models="logistic",
        report=tmp_path / "cmp",
    )
    assert code == 0, err
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(rows) == 4  # 2 classifiers, anomaly, 1 hybrid
    assert [r["pr_auc"] for r in rows] == sorted((r["pr_auc"] for r in rows), reverse=True)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["rank", "candidate", "PR-AUC"]
    assert lines[0].split()[-2:] == ["rows", "rung"]
    assert all(line.endswith(f" {400:,}   1/1") for line in lines[1:5])
    assert lines[6] == "search: exhaustive"
    assert {(r["rows"], r["rung"], r["rungs"]) for r in rows} == {(400, 1, 1)}
    names = [
        f"{r['scorer']}/{r['model']} {r['technique']}" if r["model"] else f"{r['scorer']} none"
        for r in rows
    ]
    assert lines[5].startswith("winner: ")
    assert any(lines[5].startswith(f"winner: {name} (PR-AUC") for name in names)
    if not lines[5].startswith(f"winner: {names[0]} "):  # one-standard-error rule
        assert lines[5].endswith(
            f"within one standard error of the best, {names[0]} (PR-AUC {rows[0]['pr_auc']:.4f})"
        )
    assert err.count("PR-AUC") == 4  # progress, one line per candidate
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "**Winner:" in report
    for png in ("pr_curves.png", "score_distributions.png", "threshold_curves.png"):
        assert f"]({png})" in report
        assert (tmp_path / "cmp" / png).stat().st_size > 1000
    # train --technique auto takes the winner from this report rather than comparing again.
    code, out, err = run_cli(
        "train",
        **fast,
        technique="auto",
        from_compare=tmp_path / "cmp",
        out=tmp_path / "model",
        quiet=True,
    )
    assert code == 0, err
    assert out.startswith(f"trained {lines[5].removeprefix('winner: ').split(' (PR-AUC')[0]} ")
    assert err == ""
    code, out, err = run_cli(
        "compare", **fast, techniques="none", models="logistic", scorers="classifier", quiet=True
    )
    assert code == 0
    assert err == ""


def test_train_auto_with_a_scorer_restricts_the_search(
    train_fast: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, _out, err = train_fast(technique="auto", scorer="classifier", model="hgb", quiet=True)
    assert code == 0, err
    manifest = load_bundle(tmp_path / "model").manifest.model_dump()
    assert manifest["scorer"] == "classifier"
    assert manifest["model"] == "hgb"
    assert {(r["scorer"], r["model"]) for r in manifest["comparison"]} == {("classifier", "hgb")}
    assert len(manifest["comparison"]) == 8


USUAL: dict[str, dict[str, object]] = {
    "train": {"data": "{csv}", "label": "is_fraud", "out": "{d}/m"},
    "compare": {"data": "{csv}", "label": "is_fraud"},
    "evaluate": {"model": "{d}", "data": "{csv}", "label": "is_fraud"},
}
"""The options of each command in the user-error cases, unless a case says otherwise."""


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("train", {"data": "{d}/none.csv"}, "data file {d}/none.csv does not exist"),
        ("train", {"label": "fraud"}, "label column 'fraud' is not in data file"),
        (
            "train",
            {"label": "amount"},
            "label column 'amount' must hold only 0 and 1; found values",
        ),
        (
            "train",
            {"threshold_policy": "precision:2"},
            "argument --threshold-policy: threshold policy 'precision:2': P must be in (0, 1]; "
            "got 2",
        ),
        (
            "train",
            {"technique": "smote", "scorer": "anomaly"},
            "technique 'smote' does not apply to the anomaly scorer",
        ),
        (
            "train",
            {"config": "{d}/bad.yaml"},
            "config {d}/bad.yaml: unknown key 'validation.folds'",
        ),
        (
            "train",
            {"folds": "500"},
            "config key 'validation.n_splits': Input should be less than or equal to 50",
        ),
        (
            "train",
            {"sampling_strategy": "0.01", "technique": "random_under"},
            "resampling.sampling_strategy=0.01 is below the minority/majority ratio",
        ),
        ("train", {"technique": "bogus"}, "argument --technique: invalid choice: 'bogus'"),
        ("train", {"calibration": "beta"}, "argument --calibration: invalid choice: 'beta'"),
        (
            "train",
            {"from_compare": "{d}"},
            "--from-compare trains the winner of a comparison: it needs --technique auto",
        ),
        (
            "train",
            {"from_compare": "{d}", "technique": "auto"},
            "{d} holds no finished comparison (winner.json, winner_scores.npy)",
        ),
        ("train", {"out": None}, "the following arguments are required: --out"),
        (
            "compare",
            {"scorers": "svm"},
            "--scorers must be a comma-separated subset of classifier,anomaly,hybrid; got 'svm'",
        ),
        (
            "compare",
            {"data": "{text}"},
            "feature columns must be numeric; not numeric: ['merchant']",
        ),
        (
            "train",
            {"config": "{d}/bad-window.yaml"},
            "key 'features.windows.0.windows.0': '7x' is not a duration",
        ),
        (
            "compare",
            {"config": "{d}/unknown-field.yaml"},
            "data.csv: the feature spec reads field 'timestamp', which is not a column; the "
            "columns are: event_id, amount",
        ),
        ("evaluate", {"model": "{d}/none"}, "model bundle {d}/none is not a directory"),
        ("evaluate", {"k": "0"}, "--k must be >= 1; got 0"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    run_cli: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    data_csv: Path,
    make_data: Callable[..., pd.DataFrame],
    command: str,
    options: dict[str, object],
    message: str,
) -> None:
    (tmp_path / "bad.yaml").write_text("validation:\n  folds: 3\n")
    window = "features:\n  windows:\n  - {key: %s, windows: [%s], field: amount, stats: [mean]}\n"
    (tmp_path / "bad-window.yaml").write_text(window % ("customer_id", "7x"))
    (tmp_path / "unknown-field.yaml").write_text(window % ("customer_id", "7d"))
    text = tmp_path / "text.csv"
    make_data(50).assign(merchant="shop").to_csv(text, index=False)
    subst = {"d": str(tmp_path), "csv": str(data_csv), "text": str(text)}
    options = {**USUAL[command], **options}
    code, _out, err = run_cli(
        command, **{k: v.format(**subst) if isinstance(v, str) else v for k, v in options.items()}
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stream-detector")
    assert "error: " in lines[0]
    assert message.format(**subst) in lines[0]
    assert not (tmp_path / "m").exists()


# -- on real data: River's Statlog Shuttle set, trained and evaluated through the command line --


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
    ("options", "floor"),
    [
        ({}, 0.85),  # the defaults: class weights + logistic regression
        ({"model": "hgb", "technique": "smote"}, 0.97),
    ],
)
def test_shuttle_held_out_pr_auc(
    run_cli: Callable[..., tuple[int, str, str]],
    shuttle_split: Path,
    options: dict[str, str],
    floor: float,
) -> None:
    root = shuttle_split
    name = "-".join(options.values())
    model, report = root / f"model-{name}", root / f"report-{name}"
    data, label = root / "train.csv", "anomaly"
    assert run_cli("train", data=data, label=label, out=model, quiet=True, **options)[0] == 0
    held_out = root / "test.parquet"
    assert run_cli("evaluate", model=model, data=held_out, label=label, report=report)[0] == 0
    metrics = json.loads((report / "metrics.json").read_text())
    positive_rate = metrics["positives"] / metrics["n"]
    assert metrics["n"] == 2400
    assert 0.06 < positive_rate < 0.08
    # Well above the positive rate (what a random ranking scores).
    assert metrics["pr_auc"] > floor > 10 * positive_rate
    assert metrics["recall"] > 0.8
    assert metrics["precision"] > 0.8


def test_train_and_evaluate_on_behavioural_features(
    run_cli: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
) -> None:
    """A raw history in shuffled row order; the bundle records the spec and its features."""
    frame = make_data(600).assign(
        customer_id=[f"c{i % 23}" for i in range(600)],
        timestamp=np.arange(600) * 3_600_000,
    )
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "raw.csv", index=False)
    (tmp_path / "f.yaml").write_text(
        "features:\n  numeric: [amount]\n  calendar: [hour]\n  windows:\n"
        "  - {key: customer_id, windows: [1d, 7d], field: amount, stats: [count, mean],"
        " relative: [ratio]}\n"
    )
    options = {"data": tmp_path / "raw.csv", "label": "is_fraud", "config": tmp_path / "f.yaml"}
    code, out, err = run_cli("train", out=tmp_path / "m", technique="class_weight", **options)
    assert code == 0, err
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["feature_spec"]["windows"][0]["key"] == "customer_id"
    assert "customer_id.amount.ratio.7d" in manifest["features"]
    code, out, err = run_cli(
        "evaluate", model=tmp_path / "m", data=tmp_path / "raw.csv", label="is_fraud"
    )
    assert code == 0, err
    assert "600 rows" in out
