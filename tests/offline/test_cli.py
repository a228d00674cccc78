"""The train, compare and evaluate commands, run in-process through the real entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from stream_detector.bundle import load_bundle
from stream_detector.cli import main

FAST = ["--folds", "3", "--seed", "1"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fast_config(tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(
        "hgb: {max_iter: 20, early_stopping: false}\nanomaly: {n_estimators: 15}\n"
        "hybrid: {inner_splits: 2}\nevaluation: {precision_at_k: 20}\n"
    )
    return path


def test_train_then_evaluate_with_report(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    data_csv: Path,
    make_data: Callable[..., pd.DataFrame],
) -> None:
    config = str(fast_config(tmp_path))
    code, out, err = run(
        capsys,
        "train",
        "--data",
        str(data_csv),
        "--label",
        "is_fraud",
        "--out",
        str(tmp_path / "model"),
        "--config",
        config,
        "--technique",
        "smote",
        "--scorer",
        "hybrid",
        "--threshold-policy",
        "recall:0.8",
        *FAST,
    )
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
    code, out, err = run(
        capsys,
        "evaluate",
        "--model",
        str(tmp_path / "model"),
        "--data",
        str(tmp_path / "new.csv"),
        "--label",
        "is_fraud",
        "--report",
        str(tmp_path / "report"),
    )
    assert code == 0, err
    assert "PR-AUC" in out
    assert "policy recall:0.8" in out
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
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data_csv: Path
) -> None:
    code, out, err = run(
        capsys,
        "compare",
        "--data",
        str(data_csv),
        "--label",
        "is_fraud",
        "--config",
        str(fast_config(tmp_path)),
        "--techniques",
        "none,random_under",
        "--models",
        "logistic",
        "--report",
        str(tmp_path / "cmp"),
        *FAST,
    )
    assert code == 0, err
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(rows) == 4  # 2 classifiers, anomaly, 1 hybrid
    assert [r["pr_auc"] for r in rows] == sorted((r["pr_auc"] for r in rows), reverse=True)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["rank", "candidate", "PR-AUC"]
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
    code, out, err = run(
        capsys,
        "compare",
        "--data",
        str(data_csv),
        "--label",
        "is_fraud",
        "--config",
        str(fast_config(tmp_path)),
        "--techniques",
        "none",
        "--models",
        "logistic",
        "--scorers",
        "classifier",
        "--quiet",
        *FAST,
    )
    assert code == 0
    assert err == ""


def test_train_auto_with_a_scorer_restricts_the_search(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data_csv: Path
) -> None:
    code, _out, err = run(
        capsys,
        "train",
        "--data",
        str(data_csv),
        "--label",
        "is_fraud",
        "--out",
        str(tmp_path / "model"),
        "--config",
        str(fast_config(tmp_path)),
        "--technique",
        "auto",
        "--scorer",
        "classifier",
        "--model",
        "hgb",
        "--quiet",
        *FAST,
    )
    assert code == 0, err
    manifest = load_bundle(tmp_path / "model").manifest.model_dump()
    assert manifest["scorer"] == "classifier"
    assert manifest["model"] == "hgb"
    assert {(r["scorer"], r["model"]) for r in manifest["comparison"]} == {("classifier", "hgb")}
    assert len(manifest["comparison"]) == 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--data", "{d}/none.csv", "--label", "is_fraud", "--out", "{d}/m"],
            "data file {d}/none.csv does not exist",
        ),
        (
            ["train", "--data", "{csv}", "--label", "fraud", "--out", "{d}/m"],
            "label column 'fraud' is not in data file",
        ),
        (
            ["train", "--data", "{csv}", "--label", "amount", "--out", "{d}/m"],
            "label column 'amount' must hold only 0 and 1; found values",
        ),
        (
            [
                "train",
                "--data",
                "{csv}",
                "--label",
                "is_fraud",
                "--out",
                "{d}/m",
                "--threshold-policy",
                "precision:2",
            ],
            "config key 'threshold_policy': Value error, threshold policy 'precision:2': P must be",
        ),
        (
            [
                "train",
                "--data",
                "{csv}",
                "--label",
                "is_fraud",
                "--out",
                "{d}/m",
                "--technique",
                "smote",
                "--scorer",
                "anomaly",
            ],
            "technique 'smote' does not apply to the anomaly scorer",
        ),
        (
            [
                "train",
                "--data",
                "{csv}",
                "--label",
                "is_fraud",
                "--out",
                "{d}/m",
                "--config",
                "{d}/bad.yaml",
            ],
            "config {d}/bad.yaml: unknown key 'validation.folds'",
        ),
        (
            ["train", "--data", "{csv}", "--label", "is_fraud", "--out", "{d}/m", "--folds", "500"],
            "config key 'validation.n_splits': Input should be less than or equal to 50",
        ),
        (
            [
                "train",
                "--data",
                "{csv}",
                "--label",
                "is_fraud",
                "--out",
                "{d}/m",
                "--sampling-strategy",
                "0.01",
                "--technique",
                "random_under",
            ],
            "resampling.sampling_strategy=0.01 is below the minority/majority ratio",
        ),
        (
            [
                "train",
                "--data",
                "{csv}",
                "--label",
                "is_fraud",
                "--technique",
                "bogus",
                "--out",
                "{d}/m",
            ],
            "argument --technique: invalid choice: 'bogus'",
        ),
        (
            ["train", "--data", "{csv}", "--label", "is_fraud"],
            "the following arguments are required: --out",
        ),
        (
            ["compare", "--data", "{csv}", "--label", "is_fraud", "--scorers", "svm"],
            "--scorers must be a comma-separated subset of classifier,anomaly,hybrid; got 'svm'",
        ),
        (
            ["compare", "--data", "{text}", "--label", "is_fraud"],
            "feature columns must be numeric; not numeric: ['merchant']",
        ),
        (
            ["evaluate", "--model", "{d}/none", "--data", "{csv}", "--label", "is_fraud"],
            "model bundle {d}/none is not a directory",
        ),
        (
            ["evaluate", "--model", "{d}", "--data", "{csv}", "--label", "is_fraud", "--k", "0"],
            "--k must be >= 1; got 0",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    data_csv: Path,
    make_data: Callable[..., pd.DataFrame],
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "bad.yaml").write_text("validation:\n  folds: 3\n")
    text = tmp_path / "text.csv"
    make_data(50).assign(merchant="shop").to_csv(text, index=False)
    subst = {"d": str(tmp_path), "csv": str(data_csv), "text": str(text)}
    code, _out, err = run(capsys, *[a.format(**subst) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stream-detector")
    assert "error: " in lines[0]
    assert message.format(**subst) in lines[0]
    assert not (tmp_path / "m").exists()
