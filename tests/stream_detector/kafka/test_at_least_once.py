"""At-least-once delivery on a real broker: one batch in flight, offsets committed only once
its outputs are acknowledged."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from stream_detector.config import DetectorSettings
from stream_detector.kafka.at_least_once import AtLeastOnceDelivery
from stream_detector.kafka.clients import make_consumer
from stream_detector.kafka.publish import OutRecord

pytestmark = pytest.mark.integration

BATCH = 10


def test_offsets_wait_for_their_batch_acknowledged_with_one_batch_in_flight(
    broker: Any,
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
) -> None:
    events, decisions = topic_factory(1, prefix="events"), topic_factory(1, prefix="decisions")
    producer = producer_factory()
    for i in range(3 * BATCH):
        producer.send(events, key=f"e{i}".encode(), value=b"{}")
    producer.flush()
    settings = DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "topics": {"events": events, "decisions": decisions},
            "consumer": {"group_id": f"alo-{uuid.uuid4().hex[:8]}", "batch_size": BATCH},
        }
    )
    registry = CollectorRegistry()
    phases: list[str] = []
    delivery = AtLeastOnceDelivery(
        settings, registry=registry, stop=threading.Event(), on_phase=phases.append
    )
    delivery.start()
    consumer = make_consumer(settings)
    consumer.subscribe([events], listener=delivery.listener)
    tp = TopicPartition(events, 0)

    def deliver_next() -> bool:
        while True:
            records = consumer.poll(timeout_ms=500, max_records=BATCH)
            delivery.after_poll(consumer, sum(map(len, records.values())))
            if records:
                break
        batch = records[tp]
        outputs = [
            OutRecord("decision", decisions, r.key, b"{}", event_id=r.key.decode()) for r in batch
        ]
        offsets = {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)}
        return delivery.deliver(consumer, outputs, offsets, {tp: batch[0].offset})

    def committed() -> int | None:
        offset: int | None = consumer.committed(tp)
        return offset

    try:
        assert deliver_next()
        assert committed() is None  # the first batch is in flight while the next is polled
        connections = delivery._connections(consumer)  # one metric, not the whole dictionary
        assert connections is not None
        assert connections >= 1
        assert deliver_next()
        assert committed() == BATCH  # the first is acknowledged: committed, not the second
        delivery.drain(consumer)  # e.g. the poll returned nothing
        assert committed() == 2 * BATCH
        assert phases == ["published", "committed"] * 2
        # A stop cutting the wait for the acknowledgements short leaves the batch uncommitted.
        assert deliver_next()
        delivery.publisher.complete = lambda sending: False  # type: ignore[method-assign]
        delivery.drain(consumer)
        assert committed() == 2 * BATCH
        replayed = registry.get_sample_value(
            "stream_detector_batches_replayed_total", {"reason": "stopped"}
        )
        assert replayed == 1.0
    finally:
        consumer.close(autocommit=False)
        delivery.close()
    keys = sorted(r.key for r in consume_all(decisions, 3 * BATCH, settle=0.5))
    assert keys == sorted(f"e{i}".encode() for i in range(3 * BATCH))


def test_a_commit_refused_during_a_rebalance_is_not_retried_for_ever_and_loses_nothing(
    broker: Any,
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consumer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
) -> None:
    """A member joining while a batch is in flight: the poll that starts the rebalance revokes
    the partitions, and the commit that follows it is refused until a poll finishes the
    rebalance. It must not be retried as if the broker were away (that loop never polls, so
    the rebalance never ends and the service gave up). The batch was published; its offsets stay
    uncommitted, so a partition that moves is read from the last commit (repeats, no loss)
    and one this member keeps goes on from no later than the end of what was published."""
    events, decisions = topic_factory(2, prefix="events"), topic_factory(1, prefix="decisions")
    producer = producer_factory()
    for i in range(4 * BATCH):
        producer.send(events, key=f"e{i}".encode(), value=b"{}", partition=i % 2)
    producer.flush()
    group = f"alo-{uuid.uuid4().hex[:8]}"
    settings = DetectorSettings.load(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "give_up_after_s": 5},
            "topics": {"events": events, "decisions": decisions},
            "consumer": {
                "group_id": group,
                "batch_size": BATCH,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
            },
        }
    )
    registry = CollectorRegistry()
    delivery = AtLeastOnceDelivery(settings, registry=registry, stop=threading.Event())
    delivery.start()
    consumer = make_consumer(settings)
    consumer.subscribe([events], listener=delivery.listener)
    other = consumer_factory(group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    joining = threading.Event()
    joined = threading.Event()

    def join_later() -> None:
        joining.wait(30)
        other.subscribe([events])
        while not joined.is_set():
            other.poll(timeout_ms=100, max_records=1)  # fetches, never commits

    thread = threading.Thread(target=join_later, daemon=True)
    thread.start()
    try:
        records: dict[TopicPartition, list[Any]] = {}
        while not records:
            records = consumer.poll(timeout_ms=500, max_records=BATCH)
            delivery.after_poll(consumer, sum(map(len, records.values())))
        outputs = [
            OutRecord("decision", decisions, r.key, b"{}", event_id=r.key.decode())
            for batch in records.values()
            for r in batch
        ]
        offsets = {tp: OffsetAndMetadata(b[-1].offset + 1, "", -1) for tp, b in records.items()}
        starts = {tp: b[0].offset for tp, b in records.items()}
        assert delivery.deliver(consumer, outputs, offsets, starts)  # in flight, not committed
        rebalances = delivery.listener.rebalances
        joining.set()
        # Poll without waiting until the group's rebalance reaches this member: the poll
        # revokes its partitions and returns before the new assignment.
        later: list[Any] = []  # what the next polls return: the loop would decide it next
        while not delivery.listener.left():
            later += [r for b in consumer.poll(timeout_ms=0, max_records=BATCH).values() for r in b]
        assert delivery.listener.rebalances == rebalances, "the rebalance finished in one poll"
        delivery.drain(consumer)
        replayed = registry.get_sample_value(
            "stream_detector_batches_replayed_total", {"reason": "commit_failed"}
        )
        assert replayed == 1.0
        assert not delivery.clock.failing  # a refusal, not a broker away
        assert all(consumer.committed(tp) is None for tp in offsets)
        # The next polls finish the rebalance; the partition this member keeps has no gap.
        while delivery.listener.rebalances == rebalances:
            later += [
                r for b in consumer.poll(timeout_ms=200, max_records=BATCH).values() for r in b
            ]
        kept = consumer.assignment()
        assert len(kept) == 1, kept
        (tp,) = kept
        published = offsets[tp].offset if tp in offsets else 0
        next_read = [r.offset for r in later if r.partition == tp.partition]
        assert min(next_read, default=consumer.position(tp)) <= published
    finally:
        joined.set()
        thread.join(10)
        consumer.close(autocommit=False)
        delivery.close()
    sent = {r.key for r in consume_all(decisions, len(outputs), settle=0.3)}
    assert sent == {r.key for r in outputs}  # the refused batch's outputs were published
