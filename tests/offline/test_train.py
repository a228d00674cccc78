"""train: threshold on out-of-fold scores, the bundle's fields, auto, explicit fallbacks."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offline.calibration import calibration_report, fit_calibrator
from offline.compare import Candidate, evaluate_candidate, run_compare
from offline.compare_record import write_compare_record
from offline.config import TrainSettings
from offline.data import load_dataset
from offline.thresholds import choose_threshold
from offline.train import train_model
from offline.validation import make_folds
from stream_detector.bundle import load_bundle
from stream_detector.errors import BundleError, DataError
from stream_detector.scoring import CalibratedScorer, IsolationForestScorer

Settings = Callable[..., TrainSettings]


def test_train_writes_a_complete_bundle(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    settings = make_settings()
    result = train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    bundle = load_bundle(tmp_path / "model")
    m = bundle.manifest
    ds = load_dataset(data_csv, "is_fraud")
    assert m.features == ["amount", "hour", "distance", "velocity"]
    assert (m.label, m.technique, m.scorer) == ("is_fraud", "class_weight", "classifier")
    assert m.class_prior_train == ds.prior
    assert set(m.metrics) >= {"pr_auc", "roc_auc", "precision", "recall"}
    np.testing.assert_array_equal(bundle.reference, np.median(ds.X, axis=0))
    # The threshold is the policy's choice on the out-of-fold scores, which on this data no
    # calibration improves (identity has the lowest cross-validated log loss).
    folds = make_folds(ds, settings.validation, random_state=settings.seed)
    oof = evaluate_candidate(
        Candidate("class_weight", "classifier", "logistic"), ds, folds, settings
    )
    assert oof.scores is not None
    _, how = fit_calibrator(oof.scores, ds.y)
    assert how["method"] == "identity"
    choice = choose_threshold("max_f1", ds.y, oof.scores)
    assert m.threshold == choice.threshold
    assert m.threshold_policy == "max_f1"
    assert m.metrics["precision"] == pytest.approx(choice.precision)
    assert m.metrics["recall"] == pytest.approx(choice.recall)
    # Extras: priors and how the threshold was chosen.
    extra = m.model_dump()
    assert extra["class_prior_validation"] == pytest.approx(ds.prior)
    assert extra["prior_correction"]["fitted_prior"] == 0.5
    assert extra["prior_correction"]["logit_offset"] == pytest.approx(
        np.log(ds.prior / (1 - ds.prior))
    )
    assert extra["threshold_choice"]["feasible"] is True
    assert extra["validation"]["method"] == "stratified"
    assert extra["train_settings"]["seed"] == 0
    assert extra["model"] == "logistic"
    assert extra["calibration"] == {
        **how,
        "out_of_fold_before": extra["calibration"]["out_of_fold_before"],
        "out_of_fold_after": extra["calibration"]["out_of_fold_after"],
    }
    assert m.metrics["ece"] == pytest.approx(calibration_report(ds.y, oof.scores).ece)
    # The bundle scores what the fitted estimator scores.
    assert bundle.scorer.kind == "linear"
    np.testing.assert_allclose(
        bundle.score_samples(ds.X), result.estimator.score_samples(ds.X), atol=1e-9
    )


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_calibrated_bundle_scores_through_its_calibrator(
    data_csv: Path, tmp_path: Path, make_settings: Settings, method: str
) -> None:
    settings = make_settings(calibration=method, technique="random_over", model="hgb")
    result = train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    bundle = load_bundle(tmp_path / "model")
    ds = load_dataset(data_csv, "is_fraud")
    folds = make_folds(ds, settings.validation, random_state=settings.seed)
    oof = evaluate_candidate(Candidate("random_over", "classifier", "hgb"), ds, folds, settings)
    assert oof.scores is not None
    calibrator, how = fit_calibrator(oof.scores, ds.y, method=method)  # type: ignore[arg-type]
    calibrated = calibrator(oof.scores)
    # The threshold is chosen on the calibrated out-of-fold scores.
    assert bundle.manifest.threshold == choose_threshold("max_f1", ds.y, calibrated).threshold
    extra = bundle.manifest.model_dump()["calibration"]
    assert extra["method"] == how["method"] == method
    after = calibration_report(ds.y, calibrated)
    assert extra["out_of_fold_after"]["brier"] == pytest.approx(after.brier)
    before = calibration_report(ds.y, oof.scores)
    assert extra["out_of_fold_before"]["brier"] == pytest.approx(before.brier)
    assert after.log_loss < before.log_loss  # fitted on these very scores
    assert isinstance(bundle.scorer, CalibratedScorer)
    np.testing.assert_allclose(
        bundle.score_samples(ds.X), calibrator(result.estimator.score_samples(ds.X)), atol=1e-9
    )


def test_without_calibration_the_bundle_scores_as_the_estimator(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    settings = make_settings(calibration="none")
    result = train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    bundle = load_bundle(tmp_path / "model")
    ds = load_dataset(data_csv, "is_fraud")
    folds = make_folds(ds, settings.validation, random_state=settings.seed)
    oof = evaluate_candidate(
        Candidate("class_weight", "classifier", "logistic"), ds, folds, settings
    )
    assert oof.scores is not None
    assert bundle.manifest.threshold == choose_threshold("max_f1", ds.y, oof.scores).threshold
    assert bundle.manifest.model_dump()["calibration"] is None
    assert bundle.scorer.kind == "linear"
    np.testing.assert_allclose(
        bundle.score_samples(ds.X), result.estimator.score_samples(ds.X), atol=1e-9
    )


def test_infeasible_policy_falls_back_explicitly(
    write_csv: Callable[..., Path],
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = make_data(400, seed=3)
    # A legitimate event that looks like the worst fraud gets the highest out-of-fold score:
    # no threshold flags only frauds, so precision 1 cannot be met.
    frame.loc[5, ["amount", "hour", "distance", "velocity", "is_fraud"]] = [9e4, 3.0, 80.0, 9.0, 0]
    settings = make_settings(threshold_policy="precision:1")
    with caplog.at_level(logging.WARNING):
        train_model(write_csv(frame), "is_fraud", tmp_path / "model", settings)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    note = manifest["threshold_choice"]["note"]
    assert manifest["threshold_choice"]["feasible"] is False
    assert note.startswith("threshold policy precision:1 cannot be met on validation")
    assert note.endswith("fell back to max_f1")
    assert note in caplog.text
    assert manifest["threshold_policy"] == "precision:1"


def test_auto_trains_the_comparison_winner(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    settings = make_settings(
        technique="auto",
        compare={"techniques": ["none", "class_weight", "smote"], "models": ["logistic", "hgb"]},
    )
    result = train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    assert result.comparison is not None
    winner = result.comparison.winner
    assert result.candidate == winner.candidate
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["technique"] == winner.candidate.technique
    assert manifest["scorer"] == winner.candidate.scorer
    assert result.result.metrics is not None
    assert manifest["metrics"]["pr_auc"] == pytest.approx(result.result.metrics.pr_auc)
    # What was trained, not the defaults of the settings.
    assert manifest["train_settings"]["technique"] == winner.candidate.technique
    assert manifest["train_settings"]["model"] == winner.candidate.model
    assert manifest["train_settings"]["scorer"] == winner.candidate.scorer
    assert len(manifest["comparison"]) == len(result.comparison.results)
    best = max(r["pr_auc"] for r in manifest["comparison"])
    assert manifest["selection"]["rule"] == "one_se"
    assert manifest["selection"]["verdict"] == result.comparison.verdict()
    assert manifest["selection"]["search"] == "exhaustive"  # 400 rows: every candidate, all rows
    assert {(r["rows"], r["rung"]) for r in manifest["comparison"]} == {(400, 1)}
    [rung] = manifest["selection"]["rungs"]  # what the one rung cost
    assert (rung["rows"], rung["candidates"]) == (400, len(manifest["comparison"]) - 1)
    assert rung["seconds"] > 0
    assert rung["cpu_seconds"] > 0
    if manifest["metrics"]["pr_auc"] < best:
        assert "within one standard error of the best" in manifest["selection"]["verdict"]


def test_anomaly_scorer_bundle(data_csv: Path, tmp_path: Path, make_settings: Settings) -> None:
    settings = make_settings(technique="none", scorer="anomaly", threshold_policy="alert_rate:0.1")
    train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    bundle = load_bundle(tmp_path / "model")
    assert (bundle.manifest.scorer, bundle.manifest.technique) == ("anomaly", "none")
    assert "prior_correction" not in bundle.manifest.model_dump()
    assert bundle.manifest.model_dump()["threshold_choice"]["alert_rate"] <= 0.1
    assert bundle.manifest.model_dump()["calibration"] is None  # not a probability
    assert bundle.scorer.kind == "isolation_forest"


def test_a_compiled_forest_that_strays_from_scikit_learn_stops_training(
    data_csv: Path, tmp_path: Path, make_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The anomaly detector scores with its compiled forest; the check before writing the
    # bundle must still compare that forest with scikit-learn itself.
    real = IsolationForestScorer._score_samples
    monkeypatch.setattr(
        IsolationForestScorer, "_score_samples", lambda self, X: real(self, X) * 0.99
    )
    settings = make_settings(technique="none", scorer="anomaly", threshold_policy="alert_rate:0.1")
    with pytest.raises(RuntimeError, match="compiled scorer differs from scikit-learn by"):
        train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    assert not (tmp_path / "model" / "manifest.json").exists()


def test_time_ordered_data_uses_time_splits(
    write_csv: Callable[..., Path],
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Settings,
) -> None:
    frame = make_data(400, seed=6)
    frame["timestamp"] = 1_700_000_000_000 + np.arange(400)[::-1] * 60_000
    train_model(write_csv(frame), "is_fraud", tmp_path / "model", make_settings())
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["validation"]["method"] == "time"
    assert manifest["validation"]["rows"] == 300  # 3 folds: the first of 4 blocks unvalidated


def test_amount_aware_cost_policy(
    write_csv: Callable[..., Path],
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Settings,
) -> None:
    frame = make_data(400, seed=7)
    train_model(
        write_csv(frame),
        "is_fraud",
        tmp_path / "a",
        make_settings(threshold_policy="cost:5,amount"),
    )
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["threshold_policy"] == (
        "cost:5,amount"
    )
    no_amount = frame.rename(columns={"amount": "value"})
    with pytest.raises(DataError, match="cost:5,amount needs a numeric, complete amount column"):
        train_model(
            write_csv(no_amount, "b.csv"),
            "is_fraud",
            tmp_path / "b",
            make_settings(threshold_policy="cost:5,amount"),
        )
    assert not (tmp_path / "b").exists()


def test_dropped_columns_are_recorded(
    write_csv: Callable[..., Path],
    tmp_path: Path,
    make_data: Callable[..., pd.DataFrame],
    make_settings: Settings,
) -> None:
    frame = make_data(400, seed=8).assign(currency=978)
    train_model(write_csv(frame), "is_fraud", tmp_path / "model", make_settings())
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["data"]["dropped_constant_columns"] == ["currency"]
    assert "currency" not in manifest["features"]


def test_non_empty_output_directory_is_refused_before_training(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(BundleError, match="exists and is not empty"):
        train_model(tmp_path / "missing.csv", "is_fraud", out, make_settings())


def test_a_blend_winner_is_bundled_with_its_members(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    settings = make_settings(
        technique="auto",
        compare={"techniques": ["none", "smote"], "models": ["logistic", "hgb"]},
    )
    ds = load_dataset(data_csv, "is_fraud")
    result = train_model(data_csv, "is_fraud", tmp_path / "model", settings)
    # On this seeded data no single candidate beats the blend by more than one standard error.
    assert result.candidate.scorer == "blend"
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["scorer"] == "blend"
    assert manifest["model"] == "logistic+hgb"
    members = manifest["members"]
    assert [m["model"] for m in members] == ["logistic", "hgb"]
    assert "+".join(dict.fromkeys(m["technique"] for m in members)) == manifest["technique"]
    for member in members:
        assert set(member["prior_correction"]) == {"method", "fitted_prior", "logit_offset"}
    assert manifest["selection"]["verdict"].startswith("blend(")
    bundle = load_bundle(tmp_path / "model")
    assert manifest["calibration"]["method"] == "identity"  # no calibration beats the blend's
    assert bundle.scorer.kind == "blend"
    np.testing.assert_allclose(
        bundle.score_samples(ds.X), result.estimator.score_samples(ds.X), atol=1e-9
    )


def test_auto_from_a_finished_compare_trains_its_winner_without_comparing(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    settings = make_settings(
        technique="auto",
        compare={"techniques": ["none", "class_weight"], "models": ["logistic", "hgb"]},
    )
    ds = load_dataset(data_csv, "is_fraud")
    cmp = run_compare(ds, settings)
    (tmp_path / "cmp").mkdir()
    write_compare_record(tmp_path / "cmp", cmp)
    again = train_model(data_csv, "is_fraud", tmp_path / "again", settings)
    reused = train_model(
        data_csv, "is_fraud", tmp_path / "reused", settings, from_compare=tmp_path / "cmp"
    )
    assert reused.comparison is None
    assert reused.candidate == again.candidate == cmp.winner.candidate
    first = json.loads((tmp_path / "again" / "manifest.json").read_text())
    second = json.loads((tmp_path / "reused" / "manifest.json").read_text())
    assert second["threshold"] == first["threshold"]
    assert second["metrics"] == first["metrics"]
    assert second["comparison"] == first["comparison"]
    assert second["selection"]["from_compare"] == str(tmp_path / "cmp")
    assert second["train_settings"]["model"] == cmp.winner.candidate.model
    np.testing.assert_array_equal(
        load_bundle(tmp_path / "reused").score_samples(ds.X),
        load_bundle(tmp_path / "again").score_samples(ds.X),
    )


def test_from_compare_needs_auto(data_csv: Path, tmp_path: Path, make_settings: Settings) -> None:
    with pytest.raises(DataError, match="it needs technique auto, got 'class_weight'"):
        train_model(data_csv, "is_fraud", tmp_path / "m", make_settings(), from_compare=tmp_path)


def test_the_final_steps_show_on_a_terminal(
    data_csv: Path, tmp_path: Path, make_settings: Settings
) -> None:
    import io

    from offline.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    train_model(
        data_csv, "is_fraud", tmp_path / "m", make_settings(), progress=Progress(0, stream=out)
    )
    steps = [part for part in out.getvalue().split("\r\x1b[K") if part and "PR-AUC" not in part]
    assert steps[-3:] == [
        "fitting classifier/logistic class_weight on all 400 rows",
        "compiling the scorer and checking it against scikit-learn",
        f"writing the bundle to {tmp_path / 'm'}",
    ]
