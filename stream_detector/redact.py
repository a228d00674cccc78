"""Secrets out of the logs, whatever the log level.

The service never logs a secret itself, but a client library may: at DEBUG, kafka-python logs
every request it sends, the SASL PLAIN ``SaslAuthenticateRequest`` (user name and password)
included. :class:`SecretFilter` sits on the log handlers and replaces every configured secret
(the SASL and TLS key passwords, the admin token), in plain or in ``bytes`` repr form, with
``***`` before a record is written.

Examples
--------
>>> import logging, io
>>> stream = io.StringIO()
>>> handler = logging.StreamHandler(stream)
>>> handler.addFilter(SecretFilter(["hunter2"]))
>>> log = logging.getLogger("redact-example")
>>> log.addHandler(handler)
>>> log.warning("Request 7: %s", b"\\x00detector\\x00hunter2")
>>> stream.getvalue()
"Request 7: b'\\\\x00detector\\\\x00***'\\n"
>>> log.removeHandler(handler)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from stream_detector.config import DetectorSettings

__all__ = ["SecretFilter", "install_secret_filter", "settings_secrets"]

_MASK = "***"


class SecretFilter(logging.Filter):
    """Replaces the given secrets in every record that passes through.

    Parameters
    ----------
    secrets
        The secret values; empty ones are ignored.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms.add(secret)
                forms.add(repr(secret.encode())[2:-1])  # as it shows inside a bytes repr
                forms.add(repr(secret)[1:-1])
        self.forms = sorted(forms, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.forms:
            return True
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True

    def _redact(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, _MASK)
        return text


def settings_secrets(settings: DetectorSettings) -> list[str]:
    """Every secret value in the settings."""
    found = [
        settings.kafka.sasl_password,
        settings.kafka.ssl_password,
        settings.admin.token,
        settings.notify.secret,
        settings.notify.auth_token,
    ]
    secrets = [s.get_secret_value() for s in found if s is not None]
    # The Redis URL's password (redis://:password@host:port/db), when it has one.
    redis_password = urlsplit(settings.state.redis_url.get_secret_value()).password
    if redis_password:
        secrets.append(unquote(redis_password))
    return secrets


def install_secret_filter(settings: DetectorSettings, logger: logging.Logger | None = None) -> None:
    """Put a :class:`SecretFilter` on every handler of ``logger`` (the root logger)."""
    secrets = settings_secrets(settings)
    if not secrets:
        return
    secret_filter = SecretFilter(secrets)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(secret_filter)
