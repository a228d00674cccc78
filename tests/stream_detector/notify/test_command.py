"""``stream-detector notify`` on the command line: settings, refusals, the secret kept out."""

from __future__ import annotations

import pytest

from stream_detector.cli import main
from stream_detector.config import DetectorSettings
from stream_detector.redact import settings_secrets

SECRET = "0123456789abcdef-secret"


def test_without_a_webhook_url_notify_says_how_to_set_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_DETECTOR_NOTIFY__SECRET", SECRET)
    assert main(["notify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "STREAM_DETECTOR_NOTIFY__URL or --webhook-url" in err


def test_without_a_secret_notify_refuses_to_send_unsigned_alerts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_DETECTOR_NOTIFY__SECRET", raising=False)
    assert main(["notify", "--webhook-url", "http://127.0.0.1:9/alerts"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "STREAM_DETECTOR_NOTIFY__SECRET" in err


def test_a_short_secret_is_refused_without_being_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_DETECTOR_NOTIFY__SECRET", "hunter2")
    assert main(["notify", "--webhook-url", "http://127.0.0.1:9/alerts"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "stream-detector: error: environment variable STREAM_DETECTOR_NOTIFY__SECRET:"
    )
    assert "hunter2" not in err


def test_flags_and_environment_merge_into_the_notify_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAM_DETECTOR_NOTIFY__SECRET", SECRET)
    monkeypatch.setenv("STREAM_DETECTOR_NOTIFY__AUTH_TOKEN", "case-api-token")
    monkeypatch.setenv("STREAM_DETECTOR_NOTIFY__METRICS__HOST", "0.0.0.0")
    settings = DetectorSettings.load(
        "configs/detector.yaml",
        {"notify": {"url": "https://cases.example.org/api/alerts", "metrics": {"port": 9200}}},
    )
    n = settings.notify
    assert n.url == "https://cases.example.org/api/alerts"
    assert (n.metrics.host, n.metrics.port) == ("0.0.0.0", 9200)
    assert n.secret is not None
    assert n.secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert "case-api-token" not in repr(settings)
    assert {SECRET, "case-api-token"} <= set(settings_secrets(settings))


def test_the_config_file_documents_the_notify_defaults() -> None:
    from_file = DetectorSettings.load("configs/detector.yaml").notify
    assert from_file == DetectorSettings.load().notify
