from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer

from stream_detector.kafka.dedupe import AlertDeduplicator, read_back_alert_ids


def test_deduplicator_forgets_the_least_recently_alerted_first() -> None:
    seen = AlertDeduplicator(capacity=3)
    seen.update(["a", "b", "c"])
    seen.add("a")  # refreshed: now the most recent
    seen.add("d")  # evicts "b"
    assert [x in seen for x in "abcd"] == [True, False, True, True]
    assert len(seen) == 3


def test_first_alerts_drops_known_ids_and_repeats_within_the_batch() -> None:
    seen = AlertDeduplicator(capacity=10)
    seen.add("old")
    assert seen.first_alerts(["new", "old", "new", "other"]) == (["new", "other"], 2)
    assert seen.first_alerts([]) == ([], 0)


@pytest.mark.integration
def test_read_back_finds_the_tail_of_every_partition_despite_batched_writes(
    broker: Any, topic_factory: Callable[..., str], producer_factory: Callable[..., Any]
) -> None:
    topic = topic_factory(2, prefix="alerts")
    # Large linger: multi-record batches, after which the embedded broker under-reports end
    # offsets; the read-back must still reach the true end.
    producer = producer_factory(linger_ms=50, batch_size=1 << 20)
    for i in range(20_000):
        producer.send(topic, key=f"id-{i}".encode(), value=b"{}" * 30, partition=i % 2)
    producer.flush()
    reader = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    try:
        result = read_back_alert_ids(reader, topic, records_per_partition=5_000, timeout_s=30)
    finally:
        reader.close()
    assert result.complete
    assert result.partitions == 2
    last = {f"id-{i}" for i in range(10_000, 20_000)}  # the last 5,000 of each partition
    assert last <= result.ids  # the very latest included: those are the ones a crash replays
    assert result.records == len(result.ids) >= 10_000


@pytest.mark.integration
def test_read_back_of_a_missing_topic_is_incomplete_not_an_error(broker: Any) -> None:
    reader = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
    )
    try:
        result = read_back_alert_ids(
            reader, f"missing-{uuid.uuid4().hex[:8]}", records_per_partition=10, timeout_s=1
        )
    finally:
        reader.close()
    assert not result.complete
    assert result.ids == frozenset()


class _Reader:
    """Only what the end-of-read rule looks at: positions and fetched high watermarks."""

    def __init__(self, position: int, highwater: int | None) -> None:
        self._position, self._highwater = position, highwater

    def position(self, tp: object) -> int:
        return self._position

    def highwater(self, tp: object) -> int | None:
        return self._highwater


@pytest.mark.parametrize(
    ("position", "highwater", "listed_end", "done"),
    [
        (0, None, 0, True),  # an empty partition
        (0, None, 5, False),  # nothing fetched yet
        (48_600, 50_000, 48_567, False),  # past an under-reported end, short of the true one
        (50_000, 50_000, 48_567, True),
        (40, 40, 41, False),  # a listed end above the fetched one still counts
    ],
)
def test_reading_stops_only_at_the_fetched_high_watermark(
    position: int, highwater: int | None, listed_end: int, done: bool
) -> None:
    from stream_detector.kafka.dedupe import _at_end

    reader: Any = _Reader(position, highwater)
    assert _at_end(reader, None, listed_end) is done  # type: ignore[arg-type]
