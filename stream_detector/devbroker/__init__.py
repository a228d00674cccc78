"""Development brokers: a Kafka-protocol broker started on this machine for the demo, the tests
and manual runs, and the ``stream-detector broker`` command that runs one in the foreground.

Two kinds keep one contract (:class:`DevBroker`): the embedded Tansu broker
(:class:`EmbeddedBroker`, the default, a Python dependency) and Apache Kafka
(:class:`ApacheKafkaBroker`, needs Java 17+ and fetches its jars with Maven once).

Production points the service at a real Kafka cluster; nothing here is used by ``serve``.
"""

from __future__ import annotations

from stream_detector.devbroker.apache import (
    ApacheKafkaBroker,
    apache_kafka_unavailable,
    fetch_kafka,
    kafka_version,
)
from stream_detector.devbroker.base import BrokerKind, DevBroker, free_port
from stream_detector.devbroker.command import (
    DEFAULT_TOPICS,
    BrokerCommand,
    format_topic_spec,
    parse_topic_spec,
)
from stream_detector.devbroker.embedded import EmbeddedBroker, resolve_binary
from stream_detector.devbroker.kinds import make_broker

__all__ = [
    "DEFAULT_TOPICS",
    "ApacheKafkaBroker",
    "BrokerCommand",
    "BrokerKind",
    "DevBroker",
    "EmbeddedBroker",
    "apache_kafka_unavailable",
    "fetch_kafka",
    "format_topic_spec",
    "free_port",
    "kafka_version",
    "make_broker",
    "parse_topic_spec",
    "resolve_binary",
]
