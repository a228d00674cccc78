"""TrainSettings: file, then environment, then flags; unknown keys and bad values named."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from offline.config import TrainSettings
from stream_detector.errors import ConfigError
from stream_detector.features import FeatureSpec
from stream_detector.simulate import CARD_FEATURES

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_holds_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("STREAM_DETECTOR_TRAIN_")]:
        monkeypatch.delenv(key)
    shipped = TrainSettings.load(REPO / "configs" / "train.yaml")
    assert shipped.model_copy(update={"features": None}) == TrainSettings.load()


def test_shipped_config_declares_the_card_feature_set() -> None:
    spec = TrainSettings.load(REPO / "configs" / "train.yaml").features
    assert spec is not None
    assert TrainSettings.load().features is None  # no section: numeric columns as they are
    names = spec.names
    for window in ("1d", "7d", "30d"):
        assert f"customer_id.amount.count.{window}" in names
        assert f"customer_id.amount.mean.{window}" in names
        assert f"terminal_id.count.{window}.delay7d" in names
        assert f"terminal_id.fraud_rate.{window}.delay7d" in names
    assert {"customer_id.amount.ratio.30d", "customer_id.amount.zscore.30d"} <= set(names)
    assert {"customer_id.terminal_id.distinct.1d", "hour", "night", "weekend"} <= set(names)
    assert spec == FeatureSpec.parse(CARD_FEATURES)  # what the demo trains on


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            {"windows": [{"key": "c", "windows": ["7x"], "stats": ["count"]}]},
            "'7x' is not a duration",
        ),
        ({"windows": [{"key": "c", "windows": ["1d"], "stats": ["median"]}]}, "median"),
        ({"numeric": ["amount"], "colour": 1}, "unknown key 'features.colour'"),
    ],
)
def test_a_bad_feature_section_is_one_line(features: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainSettings.load(overrides={"features": features})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "technique: smote\nseed: 3\nvalidation:\n  n_splits: 4\n  gap_days: 2\n"
        "anomaly:\n  n_estimators: 50\n"
    )
    monkeypatch.setenv("STREAM_DETECTOR_TRAIN_SEED", "5")
    monkeypatch.setenv("STREAM_DETECTOR_TRAIN_VALIDATION__N_SPLITS", "6")
    s = TrainSettings.load(path, {"validation": {"gap_days": 1.5}, "scorer": "hybrid"})
    assert s.technique == "smote"  # file
    assert s.seed == 5  # environment over file
    assert s.validation.n_splits == 6  # environment over file, nested
    assert s.validation.gap_days == 1.5  # flag over file
    assert s.scorer == "hybrid"  # flag
    assert s.anomaly.n_estimators == 50  # file, nested, untouched by others
    assert s.anomaly.max_samples == "auto"  # default


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("hgb:\n  max_depth: 3\n")
    with pytest.raises(ConfigError) as info:
        TrainSettings.load(path)
    assert str(info.value) == f"config {path}: unknown key 'hgb.max_depth'"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("techniques: smote\n")
    with pytest.raises(ConfigError, match="unknown key 'techniques'"):
        TrainSettings.load(path)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"technique": "smoat"}, "technique"),
        ({"scorer": "forest"}, "scorer"),
        ({"validation": {"n_splits": 1}}, "validation.n_splits"),
        ({"validation": {"n_splits": "five"}}, "validation.n_splits"),
        ({"anomaly": {"fit_on": "positives"}}, "anomaly.fit_on"),
        ({"compare": {"techniques": []}}, "compare.techniques"),
        ({"threshold_policy": "precision:2"}, "threshold_policy"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_values_name_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainSettings.load(overrides=overrides)
    message = str(info.value)
    assert message.startswith(f"config key '{key}': ")
    assert "\n" not in message


def test_policy_is_stored_canonical() -> None:
    assert TrainSettings.load(
        overrides={"threshold_policy": " Precision:0.90"}
    ).threshold_policy == ("precision:0.9")


def test_environment_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DETECTOR_TRAIN_SCORER", "svm")
    with pytest.raises(ConfigError, match=r"^environment variable STREAM_DETECTOR_TRAIN_SCORER: "):
        TrainSettings.load()


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        TrainSettings.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("technique: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        TrainSettings.load(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- technique\n")
    with pytest.raises(ConfigError, match="must hold a mapping; got list"):
        TrainSettings.load(listed)


def test_frozen() -> None:
    s = TrainSettings.load()
    with pytest.raises(pydantic.ValidationError):
        s.seed = 4
    with pytest.raises(pydantic.ValidationError):
        s.validation.n_splits = 4


def test_compare_lists_are_deduplicated() -> None:
    s = TrainSettings.load(overrides={"compare": {"models": ["hgb", "hgb", "logistic"]}})
    assert s.compare.models == ("hgb", "logistic")
