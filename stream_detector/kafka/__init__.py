"""Kafka delivery for ``serve``: consuming (partitions in step by event time), publishing,
committing, transactions, duplicate-alert suppression, rebalances and outages (their metrics
are in :mod:`stream_detector.metrics`)."""

from __future__ import annotations

from stream_detector.kafka.alignment import EventTimeAligner
from stream_detector.kafka.at_least_once import AtLeastOnceDelivery
from stream_detector.kafka.dedupe import AlertDeduplicator, ReadBack, read_back_alert_ids
from stream_detector.kafka.delivery import Delivery
from stream_detector.kafka.factory import make_delivery
from stream_detector.kafka.pacing import BatchPacer
from stream_detector.kafka.publish import (
    TRUNCATION_HEADERS,
    OutRecord,
    Publisher,
    batch_records,
    truncate_dead_letter,
)
from stream_detector.kafka.rebalance import AssignmentChange, AssignmentTracker
from stream_detector.kafka.retry import OutageClock
from stream_detector.kafka.transactions import ExactlyOnceDelivery

__all__ = [
    "TRUNCATION_HEADERS",
    "AlertDeduplicator",
    "AssignmentChange",
    "AssignmentTracker",
    "AtLeastOnceDelivery",
    "BatchPacer",
    "Delivery",
    "EventTimeAligner",
    "ExactlyOnceDelivery",
    "OutRecord",
    "OutageClock",
    "Publisher",
    "ReadBack",
    "batch_records",
    "make_delivery",
    "read_back_alert_ids",
    "truncate_dead_letter",
]
