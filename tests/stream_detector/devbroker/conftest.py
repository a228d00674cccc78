"""Helpers of the development broker tests: is a port listening, how many partitions a topic has."""

from __future__ import annotations

from stream_detector.devbroker.base import accepts_connections


def accepts(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    return accepts_connections(port, timeout=1.0)


def partitions_of(bootstrap_servers: str) -> dict[str, int]:
    """Every topic of the broker at ``bootstrap_servers`` and its number of partitions."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
    finally:
        admin.close()
