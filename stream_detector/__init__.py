"""stream-detector: find fraud and other rare events in event streams.

The package holds everything the streaming service needs at run time: event schemas, the
feature step, the model bundle, the scorers, the Kafka consumer loop and its metrics. Training
lives in the separate ``offline`` package, which imports this one and never the reverse.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stream-detector")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
