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
