from __future__ import annotations

import io
import logging

from kafka.net.sasl.plain import SaslMechanismPlain
from kafka.protocol.sasl import SaslAuthenticateRequest

from stream_detector.config import DetectorSettings
from stream_detector.redact import SecretFilter, install_secret_filter, settings_secrets

PASSWORD = "pä55-wörd:7c1"


def settings() -> DetectorSettings:
    return DetectorSettings.load(
        overrides={
            "kafka": {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "detector",
                "sasl_password": PASSWORD,
                "ssl_password": "key-pass-91",
            },
            "admin": {"token": "admin-token-0123456789"},
        }
    )


def test_every_secret_of_the_settings_is_collected() -> None:
    assert sorted(settings_secrets(settings())) == sorted(
        [PASSWORD, "key-pass-91", "admin-token-0123456789"]
    )
    assert settings_secrets(DetectorSettings.load()) == []


def test_kafka_python_debug_line_of_a_sasl_plain_login_is_redacted() -> None:
    # What kafka-python logs at DEBUG for every request, the SASL login included.
    auth = SaslMechanismPlain(
        sasl_plain_username="detector", sasl_plain_password=PASSWORD, security_protocol="SASL_SSL"
    ).auth_bytes()
    request = SaslAuthenticateRequest(auth)
    assert PASSWORD.encode() in auth
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("kafka.net.connection")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        install_secret_filter(settings(), logger=logger)
        logger.debug("%s Request %d: %s", "<KafkaConnection node_id=1>", 7, request)
        logger.debug("token=%s", "admin-token-0123456789")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = stream.getvalue()
    assert "SaslAuthenticateRequest" in text
    assert "detector" in text  # user names are not secret
    assert PASSWORD not in text
    assert repr(PASSWORD.encode())[2:-1] not in text
    assert "admin-token-0123456789" not in text
    assert text.count("***") == 2


def test_exception_text_is_redacted_too() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise ValueError(f"bad password {PASSWORD}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    SecretFilter([PASSWORD]).filter(record)
    assert record.exc_text is not None
    assert PASSWORD not in record.exc_text
    assert "bad password ***" in record.exc_text
