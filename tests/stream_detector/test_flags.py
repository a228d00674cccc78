"""Flags that set settings: one declaration each, a real settings path, the right override."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from offline.cli import _SETTING_FLAGS as OFFLINE_FLAGS
from offline.config import TrainSettings
from stream_detector.config import DetectorSettings
from stream_detector.flags import (
    LOG_LEVEL,
    SettingFlag,
    add_setting_flags,
    csv_choice,
    setting_overrides,
)
from stream_detector.service import SERVE_FLAGS
from stream_detector.simulate.command import SIMULATE_FLAGS


def _field_exists(model: type[BaseModel], path: str) -> bool:
    *parents, leaf = path.split(".")
    for key in parents:
        field = model.model_fields.get(key)
        if field is None or not isinstance(field.annotation, type):
            return False
        model = field.annotation
    return leaf in model.model_fields


@pytest.mark.parametrize(
    ("settings", "flags"),
    [
        (DetectorSettings, [*SERVE_FLAGS, LOG_LEVEL]),
        (DetectorSettings, SIMULATE_FLAGS),
        (TrainSettings, OFFLINE_FLAGS),
    ],
    ids=["serve", "simulate", "offline"],
)
def test_every_flag_sets_a_settings_field(
    settings: type[BaseModel], flags: list[SettingFlag]
) -> None:
    assert flags
    missing = [f.path for f in flags if not _field_exists(settings, f.path)]
    assert not missing, f"flags naming no {settings.__name__} field: {missing}"
    names = [f.flag for f in flags]
    assert len(names) == len(set(names)), names


def test_overrides_are_nested_and_only_for_flags_given() -> None:
    flags = [
        SettingFlag("--a", "x.y.a", type=int, help=""),
        SettingFlag("--b", "x.b", help=""),
        SettingFlag("--model", "model", dest="model_name", help=""),
        SettingFlag("--off", "enabled", const=False, help=""),
    ]
    parser = argparse.ArgumentParser()
    add_setting_flags(parser, flags)
    args = parser.parse_args(["--a", "3", "--b", "z", "--model", "hgb"])
    assert args.model_name == "hgb"
    assert setting_overrides(args, flags) == {"x": {"y": {"a": 3}, "b": "z"}, "model": "hgb"}
    assert setting_overrides(parser.parse_args(["--off"]), flags) == {"enabled": False}
    assert setting_overrides(parser.parse_args([]), flags) == {}


def test_serve_flags_override_the_file(tmp_path: Path) -> None:
    config = tmp_path / "detector.yaml"
    config.write_text("metrics:\n  port: 1\n  host: 0.0.0.0\nconsumer:\n  group_id: g\n")
    parser = argparse.ArgumentParser()
    add_setting_flags(parser, SERVE_FLAGS)
    args = parser.parse_args(
        [
            "--metrics-port",
            "2",
            "--no-decisions",
            "--threshold",
            "0.25",
            "--threshold-mode",
            "alert_rate",
        ]
    )
    settings = DetectorSettings.load(config, setting_overrides(args, SERVE_FLAGS))
    assert (settings.metrics.port, settings.metrics.host) == (2, "0.0.0.0")
    assert settings.consumer.group_id == "g"
    assert settings.decisions_enabled is False
    assert (settings.threshold, settings.threshold_mode) == (0.25, "alert_rate")


def test_csv_choice_refuses_an_empty_or_unknown_list() -> None:
    parse = csv_choice(("a", "b"), "--x")
    assert parse("a,b") == ("a", "b")
    for text in ("", ",", "a,c"):
        with pytest.raises(argparse.ArgumentTypeError, match="--x must be a comma-separated"):
            parse(text)


@pytest.mark.parametrize(
    ("file", "env", "flag", "expected"),
    [
        ("WARNING", None, None, "WARNING"),
        ("WARNING", "ERROR", None, "ERROR"),
        ("WARNING", "ERROR", "DEBUG", "DEBUG"),
        (None, None, None, "INFO"),
    ],
)
def test_log_level_is_flag_then_environment_then_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file: str | None,
    env: str | None,
    flag: str | None,
    expected: str,
) -> None:
    config = tmp_path / "detector.yaml"
    config.write_text(f"log_level: {file}\n" if file else "")
    monkeypatch.delenv("STREAM_DETECTOR_LOG_LEVEL", raising=False)
    if env is not None:
        monkeypatch.setenv("STREAM_DETECTOR_LOG_LEVEL", env)
    parser = argparse.ArgumentParser()
    LOG_LEVEL.add_to(parser)
    args = parser.parse_args(["--log-level", flag] if flag else [])
    settings = DetectorSettings.load(config, setting_overrides(args, [LOG_LEVEL]))
    assert settings.log_level == expected


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        ([], False),
        (["--log-level", "DEBUG", "serve"], True),
        (["serve", "--log-level", "DEBUG"], True),
    ],
)
def test_serve_logs_at_its_settings_log_level(tmp_path: Path, argv: list[str], shown: bool) -> None:
    """The file says WARNING: serve's DEBUG line about the broker not listening shows only
    with the flag, before or after the command."""
    config = tmp_path / "detector.yaml"
    config.write_text(
        "log_level: WARNING\nkafka:\n  bootstrap_servers: 127.0.0.1:1\n  connect_timeout_s: 0.2\n"
        "metrics:\n  port: 0\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_DETECTOR_")}
    command = [sys.executable, "-m", "stream_detector", *(argv or ["serve"])]
    done = subprocess.run(
        [*command, "--config", str(config)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr  # no broker: one line, exit code 2
    assert ("level=DEBUG" in done.stderr and "not listening" in done.stderr) is shown, done.stderr
    assert done.stderr.splitlines()[-1].startswith("stream-detector: error: cannot reach Kafka")
