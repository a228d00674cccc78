"""Development brokers: a Kafka-protocol broker started on this machine for the demo, the tests
and manual runs, and the ``stream-detector broker`` command that runs one in the foreground.

Production points the service at a real Kafka cluster; nothing here is used by ``serve``.
"""

from __future__ import annotations

from stream_detector.devbroker.command import (
    DEFAULT_TOPICS,
    BrokerCommand,
    format_topic_spec,
    parse_topic_spec,
)
from stream_detector.devbroker.embedded import EmbeddedBroker, free_port, resolve_binary

__all__ = [
    "DEFAULT_TOPICS",
    "BrokerCommand",
    "EmbeddedBroker",
    "format_topic_spec",
    "free_port",
    "parse_topic_spec",
    "resolve_binary",
]
