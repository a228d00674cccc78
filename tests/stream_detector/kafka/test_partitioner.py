"""KeyPartitioner chooses kafka-python's (and the Java client's) partition for every key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2

from stream_detector.kafka.partitioner import KeyPartitioner, murmur2


class Cluster:
    """The part of kafka-python's ClusterMetadata a partitioner reads."""

    def __init__(self, partitions: int) -> None:
        self.partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"decisions"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.partitions) if topic == "decisions" else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions_for_topic(topic)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_murmur2_equals_kafka_python(key: bytes) -> None:
    assert murmur2(key) == kafka_murmur2(key)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 64))
def test_partition_equals_default_partitioner(key: bytes, partitions: int) -> None:
    cluster = Cluster(partitions)
    expected = DefaultPartitioner().partition("decisions", key, key, None, b"v", cluster)
    assert KeyPartitioner().partition("decisions", key, key, None, b"v", cluster) == expected


def test_known_keys_and_no_key() -> None:
    cluster = Cluster(4)
    # murmur2 of these keys as the Java client computes it, reduced to 4 partitions
    assert [
        KeyPartitioner().partition("decisions", None, k, None, b"", cluster)
        for k in (b"ev-1", b"ev-2", b"tx-0-0")
    ] == [(kafka_murmur2(k) & 0x7FFFFFFF) % 4 for k in (b"ev-1", b"ev-2", b"tx-0-0")]
    assert KeyPartitioner().partition("decisions", None, None, None, b"", cluster) in {0, 1, 2, 3}


def test_unknown_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="nope"):
        KeyPartitioner().partition("nope", None, b"k", None, b"", Cluster(2))
