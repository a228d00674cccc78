from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_detector.config import TopicSettings
from stream_detector.devbroker import DevBroker, free_port, make_broker
from stream_detector.errors import BrokerError, EventError
from stream_detector.kafka.publish import (
    OutRecord,
    Publisher,
    batch_records,
    shrink_dead_letter,
    truncate_dead_letter,
)
from stream_detector.kafka.retry import OutageClock
from stream_detector.messages import BatchOutcome, DeadLetter, Message, Source

TOPICS = TopicSettings(decisions="d", alerts="a", dead_letter="q")


def outcome() -> BatchOutcome:
    decisions = [{"event_id": "e1", "flagged": True}, {"event_id": "e2", "flagged": False}]
    bad = Message(b"k", b"{", Source("events", 1, 9), [("trace", b"t")])
    return BatchOutcome(
        decisions=decisions,
        alerts=[{**decisions[0], "reasons": []}],
        alert_positions=[0],
        dead_letters=[DeadLetter(bad, EventError("not_json", "bad"))],
        scores=np.array([0.9, 0.1]),
    )


def test_batch_records_routes_every_output_with_its_key() -> None:
    records = batch_records(outcome(), TOPICS)
    assert [(r.kind, r.topic, r.key, r.event_id) for r in records] == [
        ("decision", "d", b"e1", "e1"),
        ("decision", "d", b"e2", "e2"),
        ("alert", "a", b"e1", "e1"),
        ("dead_letter", "q", b"k", None),
    ]
    dead = records[-1]
    assert dead.value == b"{"
    assert dead.source == Source("events", 1, 9)
    assert dict(dead.headers)["error.type"] == b"not_json"
    assert dict(dead.headers)["trace"] == b"t"
    assert [r.kind for r in batch_records(outcome(), TOPICS, decisions=False)] == [
        "alert",
        "dead_letter",
    ]


def test_a_dead_letter_shrinks_step_by_step_and_keeps_the_proof_of_the_original() -> None:
    original = bytes(range(256)) * 20
    record = OutRecord(
        "dead_letter", "q", b"k", original, [("error.type", b"too_large"), ("big", b"x" * 5000)]
    )
    assert truncate_dead_letter(record, len(original)) is record
    first = truncate_dead_letter(record, 4000)
    second = shrink_dead_letter(first)
    assert second is not None
    third = shrink_dead_letter(second)
    assert third is not None
    assert shrink_dead_letter(third) is None
    assert [len(r.value or b"") for r in (first, second, third)] == [4000, 1024, 0]
    for r in (first, second, third):
        headers = dict(r.headers)
        assert headers["error.truncated"] == b"true"
        assert headers["source.value_bytes"] == str(len(original)).encode()
        assert headers["source.value_sha256"] == hashlib.sha256(original).hexdigest().encode()
        assert original.startswith(r.value or b"")
    assert "big" in dict(second.headers)
    assert "big" not in dict(third.headers)  # the last step keeps only the contract's headers


def _clock(**kwargs: Any) -> OutageClock:
    return OutageClock(
        give_up_after_s=kwargs.pop("give_up_after_s", 30), initial_backoff_s=0.01, **kwargs
    )


@pytest.mark.integration
def test_publisher_cuts_a_dead_letter_the_broker_refuses_instead_of_wedging(
    broker: Any, topic_factory: Callable[..., str], consume_all: Callable[..., list[Any]]
) -> None:
    topic = topic_factory(1, prefix="dlq")
    cut: list[int] = []
    publisher = Publisher(
        lambda: KafkaProducer(bootstrap_servers=broker.bootstrap_servers, max_request_size=4096),
        clock=_clock(),
        dead_letter_max_bytes=1_000_000,
        on_truncated=lambda: cut.append(1),
    )
    original = b"v" * 10_000
    records = [
        OutRecord(
            "dead_letter",
            topic,
            b"big",
            original,
            [("error.type", b"too_large")],
            source=Source("events", 0, 5),
        ),
        OutRecord(
            "dead_letter",
            topic,
            b"small",
            b"{",
            [("error.type", b"not_json")],
            source=Source("events", 0, 6),
        ),
    ]
    try:
        assert publisher.publish(records)
    finally:
        publisher.close()
    got = {r.key: r for r in consume_all(topic, 2, timeout=20)}
    assert got[b"small"].value == b"{"
    assert got[b"big"].value == original[:1024]
    assert dict(got[b"big"].headers)["source.value_bytes"] == b"10000"
    assert cut == [1]


@pytest.mark.integration
def test_publisher_refuses_to_cut_anything_but_dead_letters(
    broker: Any, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(1, prefix="decisions")
    publisher = Publisher(
        lambda: KafkaProducer(bootstrap_servers=broker.bootstrap_servers, max_request_size=2048),
        clock=_clock(),
        dead_letter_max_bytes=1_000_000,
    )
    try:
        with pytest.raises(BrokerError, match=r"refuses a decision for topic .* as too large"):
            publisher.publish([OutRecord("decision", topic, b"e1", b"x" * 5000, event_id="e1")])
    finally:
        publisher.close()


def _unreachable() -> KafkaProducer:
    raise BrokerError("cannot reach Kafka at 127.0.0.1:1")


def test_publisher_stops_retrying_when_asked_to_stop() -> None:
    stop = threading.Event()
    stop.set()
    publisher = Publisher(_unreachable, clock=_clock(stop=stop), dead_letter_max_bytes=100)
    assert not publisher.publish([OutRecord("decision", "d", b"e1", b"{}", event_id="e1")])


def test_publisher_gives_up_after_the_configured_time() -> None:
    retries: list[int] = []
    publisher = Publisher(
        _unreachable,
        clock=_clock(give_up_after_s=0.05),
        dead_letter_max_bytes=100,
        on_retry=retries.append,
    )
    with pytest.raises(BrokerError, match=r"unreachable for .* while publishing"):
        publisher.publish([OutRecord("decision", "d", b"e1", b"{}", event_id="e1")])
    assert retries
    assert set(retries) == {1}


def _keys_on(bootstrap_servers: str, topic: str, *, settle_s: float) -> Counter[bytes]:
    """Every key in ``topic`` (all partitions from the start), read for ``settle_s`` seconds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, consumer_timeout_ms=500)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        keys: Counter[bytes] = Counter()
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                keys.update(r.key for r in batch)
        return keys
    finally:
        consumer.close()


class BrokerAtOneAddress:
    """A development broker that can die and be replaced by an empty one at the same address."""

    def __init__(self, topics: dict[str, int], kind: str) -> None:
        self.topics = topics
        self.kind = kind
        self.port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self._brokers: list[DevBroker] = []
        self.replace()

    def kill(self) -> None:
        """Stop the current broker at once (SIGKILL after 0.2 s): it loses everything."""
        self._brokers[-1].stop(timeout=0.2)

    def replace(self) -> None:
        """Start an empty broker at the address, with the topics."""
        broker = make_broker(self.kind, port=self.port).start()
        self._brokers.append(broker)
        broker.create_topics(self.topics)

    def stop(self) -> None:
        for broker in self._brokers:
            broker.stop()


@pytest.fixture
def broker_at_one_address(
    broker_kind: str,
) -> Iterator[Callable[[dict[str, int]], BrokerAtOneAddress]]:
    """``make(topics)``: a :class:`BrokerAtOneAddress` of ``broker_kind``, stopped at teardown."""
    made: list[BrokerAtOneAddress] = []

    def make(topics: dict[str, int]) -> BrokerAtOneAddress:
        made.append(BrokerAtOneAddress(topics, broker_kind))
        return made[-1]

    yield make
    for broker in made:
        broker.stop()


@pytest.mark.integration
def test_closing_with_records_unacknowledged_stops_the_producer_for_good(
    broker_at_one_address: Callable[[dict[str, int]], BrokerAtOneAddress],
) -> None:
    # kafka-python's close() raises when its flush times out and leaves the sender running;
    # a record it held could then reach a broker behind the back of the producer that
    # replaced it. Publisher.close must stop it: nothing arrives once a broker is back.
    topic = "decisions"
    broker = broker_at_one_address({topic: 1})
    publisher = Publisher(
        lambda: KafkaProducer(bootstrap_servers=broker.bootstrap_servers, reconnect_backoff_ms=50),
        clock=_clock(),
        dead_letter_max_bytes=100,
    )
    try:
        producer = publisher.producer
        producer.send(topic, key=b"before", value=b"{}").get(timeout=10)
        broker.kill()
        futures = [producer.send(topic, key=b"held", value=b"{}") for _ in range(5)]
        publisher.close(timeout=0.5)
        assert not producer._sender.is_alive()
        assert all(f.is_done and f.failed() for f in futures)
        broker.replace()
        assert _keys_on(broker.bootstrap_servers, topic, settle_s=3.0) == Counter()
    finally:
        publisher.close(timeout=0)


# A JVM broker takes longer to come back than the publisher's 30 s give-up window allows on
# a busy machine; the replacement is quick with the embedded broker.
@pytest.mark.integration
@pytest.mark.broker_kinds("tansu")
def test_publisher_sends_every_record_once_when_the_broker_is_replaced_mid_batch(
    broker_at_one_address: Callable[[dict[str, int]], BrokerAtOneAddress],
) -> None:
    # A fresh broker at the same address answers the old producer's sequence numbers with
    # OutOfOrderSequenceNumber or UnknownProducerId: the producer is replaced. Records the
    # old one got acknowledged meanwhile must not be sent again by the new one.
    topic = "alerts"
    broker = broker_at_one_address({topic: 4})

    def factory() -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers,
            enable_idempotence=True,
            reconnect_backoff_ms=50,
            reconnect_backoff_max_ms=200,
        )

    publisher = Publisher(factory, clock=_clock(), dead_letter_max_bytes=100)
    before = [
        OutRecord("alert", topic, f"a{i}".encode(), b"{}", event_id=f"a{i}") for i in range(8)
    ]
    during = [
        OutRecord("alert", topic, f"b{i}".encode(), b"{}", event_id=f"b{i}") for i in range(40)
    ]
    outcome: list[bool] = []
    try:
        assert publisher.publish(before)
        broker.kill()
        sender = threading.Thread(target=lambda: outcome.append(publisher.publish(during)))
        sender.start()
        time.sleep(6.0)  # past one attempt's wait: the records are then in flight, unanswered
        broker.replace()
        sender.join(60)
        assert outcome == [True]
        keys = _keys_on(broker.bootstrap_servers, topic, settle_s=3.0)
        assert set(keys) == {r.key for r in during}
        assert [k for k, n in keys.items() if n > 1] == []
    finally:
        publisher.close(timeout=0)
