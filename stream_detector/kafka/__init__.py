"""Kafka plumbing: the embedded development broker and its ``broker`` command."""

from __future__ import annotations

from stream_detector.kafka.broker import EmbeddedBroker, free_port, resolve_binary
from stream_detector.kafka.broker_command import (
    DEFAULT_TOPICS,
    BrokerCommand,
    format_topic_spec,
    parse_topic_spec,
)

__all__ = [
    "DEFAULT_TOPICS",
    "BrokerCommand",
    "EmbeddedBroker",
    "format_topic_spec",
    "free_port",
    "parse_topic_spec",
    "resolve_binary",
]
