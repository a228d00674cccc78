"""Kafka plumbing: the embedded development broker and its ``broker`` command, and the
delivery guarantees of ``serve`` (publishing, committing, transactions, duplicate-alert
suppression, rebalances, outages)."""

from __future__ import annotations

from stream_detector.kafka.at_least_once import AtLeastOnceDelivery
from stream_detector.kafka.broker import EmbeddedBroker, free_port, resolve_binary
from stream_detector.kafka.broker_command import (
    DEFAULT_TOPICS,
    BrokerCommand,
    format_topic_spec,
    parse_topic_spec,
)
from stream_detector.kafka.dedupe import AlertDeduplicator, ReadBack, read_back_alert_ids
from stream_detector.kafka.delivery import Delivery, DeliveryMetrics, make_delivery
from stream_detector.kafka.pacing import BatchPacer
from stream_detector.kafka.publish import (
    TRUNCATION_HEADERS,
    OutRecord,
    Publisher,
    batch_records,
    truncate_dead_letter,
)
from stream_detector.kafka.rebalance import AssignmentChange, AssignmentTracker
from stream_detector.kafka.redact import SecretFilter, install_secret_filter
from stream_detector.kafka.retry import OutageClock
from stream_detector.kafka.transactions import ExactlyOnceDelivery

__all__ = [
    "DEFAULT_TOPICS",
    "TRUNCATION_HEADERS",
    "AlertDeduplicator",
    "AssignmentChange",
    "AssignmentTracker",
    "AtLeastOnceDelivery",
    "BatchPacer",
    "BrokerCommand",
    "Delivery",
    "DeliveryMetrics",
    "EmbeddedBroker",
    "ExactlyOnceDelivery",
    "OutRecord",
    "OutageClock",
    "Publisher",
    "ReadBack",
    "SecretFilter",
    "batch_records",
    "format_topic_spec",
    "free_port",
    "install_secret_filter",
    "make_delivery",
    "parse_topic_spec",
    "read_back_alert_ids",
    "resolve_binary",
    "truncate_dead_letter",
]
