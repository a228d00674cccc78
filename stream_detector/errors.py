"""The project's exceptions.

Every error a user can cause derives from :class:`StreamDetectorError`. The command line turns
any of them into a one-line message and exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BundleError",
    "ConfigError",
    "DataError",
    "EventError",
    "StateStoreError",
    "StreamDetectorError",
]


class StreamDetectorError(Exception):
    """Root of every error a user can cause (bad input, bad file, unreachable broker)."""


class ConfigError(StreamDetectorError):
    """A configuration file, environment variable or command-line flag is invalid."""


class DataError(StreamDetectorError):
    """A data file is missing, unreadable or does not have the expected columns."""


class BundleError(StreamDetectorError):
    """A model bundle is missing, incomplete, tampered with or of an unknown format."""


class BrokerError(StreamDetectorError):
    """The Kafka broker cannot be reached or refused an operation."""


class StateStoreError(StreamDetectorError):
    """The feature state store (Redis) cannot be reached or refused an operation."""


class EventError(StreamDetectorError):
    """One event message is invalid; ``reason`` is a short, stable label for metrics.

    Parameters
    ----------
    reason
        A short machine-readable reason such as ``"not_json"`` or ``"missing_feature"``; it
        becomes the ``reason`` label of ``stream_detector_events_invalid_total`` and the
        ``error.type`` header of the dead letter.
    message
        A one-line human description naming the problem.

    Examples
    --------
    >>> err = EventError("missing_feature", "feature 'amount' is missing")
    >>> err.reason, str(err)
    ('missing_feature', "feature 'amount' is missing")
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
