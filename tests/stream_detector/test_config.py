from __future__ import annotations

from pathlib import Path

import pytest

from stream_detector.config import DetectorSettings, KafkaSettings
from stream_detector.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_contract() -> None:
    s = DetectorSettings.load()
    assert (
        s.topics.events,
        s.topics.labels,
        s.topics.decisions,
        s.topics.alerts,
        s.topics.dead_letter,
    ) == (
        "events",
        "labels",
        "decisions",
        "alerts",
        "events.dlq",
    )
    assert s.metrics.port == 9108
    assert s.decisions_enabled is True
    assert s.threshold is None


def test_priority_is_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "d.yaml"
    cfg.write_text(
        "threshold: 0.1\nkafka:\n  bootstrap_servers: file:1\n  client_id: from-file\nconsumer:\n  batch_size: 7\n"
    )
    assert DetectorSettings.load(cfg).kafka.bootstrap_servers == "file:1"
    monkeypatch.setenv("STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS", "env:2")
    monkeypatch.setenv("STREAM_DETECTOR_THRESHOLD", "0.2")
    s = DetectorSettings.load(cfg)
    assert (s.kafka.bootstrap_servers, s.kafka.client_id, s.threshold, s.consumer.batch_size) == (
        "env:2",
        "from-file",
        0.2,
        7,
    )
    s = DetectorSettings.load(cfg, {"threshold": 0.3, "kafka": {"bootstrap_servers": "flag:3"}})
    assert (s.kafka.bootstrap_servers, s.kafka.client_id, s.threshold) == (
        "flag:3",
        "from-file",
        0.3,
    )


def test_settings_are_frozen() -> None:
    s = DetectorSettings.load()
    with pytest.raises(ValueError, match="frozen"):
        s.threshold = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", "unknown key 'bogus'"),
        ("kafka:\n  bootstrap: x\n", "unknown key 'kafka.bootstrap'"),
        ("threshold: 1.5\n", "key 'threshold'"),
        ("consumer:\n  batch_size: lots\n", "key 'consumer.batch_size'"),
        ("metrics:\n  port: 70000\n", "key 'metrics.port'"),
        ("- a\n- b\n", "must hold a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        DetectorSettings.load(cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        DetectorSettings.load(tmp_path / "nope.yaml")


def test_shipped_config_is_valid() -> None:
    s = DetectorSettings.load(REPO / "configs" / "detector.yaml")
    assert s.topics.events == "events"


def test_secrets_are_hidden_but_passed_to_the_client() -> None:
    k = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="hunter2",
        ssl_cafile="/ca.pem",
    )
    assert "hunter2" not in repr(k)
    assert "hunter2" not in str(k.model_dump())
    kwargs = k.client_kwargs()
    assert kwargs["sasl_plain_password"] == "hunter2"
    assert (kwargs["sasl_mechanism"], kwargs["ssl_cafile"]) == ("SCRAM-SHA-512", "/ca.pem")


def test_sasl_without_mechanism_is_an_error() -> None:
    with pytest.raises(ConfigError, match="sasl_mechanism is required"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT").client_kwargs()


def test_password_never_appears_in_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        DetectorSettings.load(overrides={"kafka": {"sasl_password": 123}})
    assert "123" not in str(info.value)
