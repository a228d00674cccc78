"""The event-time aligner's bookkeeping: what it releases, holds, pauses and seeks.

A stand-in for the consumer records the aligner's calls (pause, resume, seek) so that each
rule is checked on its own; the aligner on the real broker, in the service, is tested in
``tests/stream_detector/test_service_features.py`` (a backlog skewed by days).
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.structs import TopicPartition

from stream_detector.kafka.alignment import EventTimeAligner, resume

Record = namedtuple("Record", "offset value")
DAY = 86_400_000
A, B = TopicPartition("events", 0), TopicPartition("events", 1)
L = TopicPartition("labels", 0)


class Consumer:
    """What the aligner calls on a consumer, recorded."""

    def __init__(self, *partitions: TopicPartition) -> None:
        self.assigned = set(partitions)
        self.paused_set: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.high: dict[TopicPartition, int] = {}
        self.commits: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, tp: TopicPartition) -> None:
        self.paused_set.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused_set.discard(tp)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_set)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp)

    def committed(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return self.commits.get(tp)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def records(start: int, times: list[int], field: str = "t") -> list[Any]:
    return [Record(start + i, orjson.dumps({field: t})) for i, t in enumerate(times)]


def offsets(out: dict[TopicPartition, list[Any]], tp: TopicPartition) -> list[int]:
    return [r.offset for r in out.get(tp, [])]


def make(clock: Clock, **kwargs: Any) -> EventTimeAligner:
    return EventTimeAligner(
        fields={"events": "t", "labels": "timestamp"}, margin_ms=DAY // 2, clock=clock, **kwargs
    )


def test_a_partition_days_ahead_is_held_and_paused_until_the_slowest_catches_up() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    out = aligner.align(consumer, {A: records(0, [0, DAY // 4]), B: records(0, [3 * DAY])})
    assert offsets(out, A) == [0, 1]
    assert offsets(out, B) == []
    assert consumer.paused_set == {B}
    assert aligner.held == 1
    out = aligner.align(consumer, {A: records(2, [5 * DAY // 2, 11 * DAY // 4])})
    assert offsets(out, A) == [2, 3]
    assert offsets(out, B) == [0]  # within half a day of A's 2.5 days
    assert consumer.paused_set == set()
    assert consumer.seeks == []  # resumed where it stood


def test_records_of_a_partition_are_released_in_offset_order_only() -> None:
    """A record inside the margin behind one beyond it waits too: commits never pass a held
    record."""
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    out = aligner.align(consumer, {A: records(0, [0]), B: records(0, [0, 2 * DAY, 0])})
    assert offsets(out, B) == [0]
    assert aligner.held == 2


def test_a_caught_up_or_idle_partition_is_not_waited_for() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    consumer.high[A] = 1
    out = aligner.align(consumer, {A: records(0, [0]), B: records(0, [5 * DAY])})
    assert offsets(out, B) == []  # A is at its end only after this poll's release
    out = aligner.align(consumer, {})
    assert offsets(out, B) == [0]  # A returned every record up to its high watermark
    consumer.high.clear()
    out = aligner.align(consumer, {A: records(1, [5 * DAY]), B: records(1, [9 * DAY])})
    assert offsets(out, B) == []
    clock.now += 2.5  # A returns nothing for longer than idle_s
    out = aligner.align(consumer, {})
    assert offsets(out, B) == [1]


def test_a_partition_never_heard_of_is_waited_for_until_idle() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    assert aligner.align(consumer, {A: records(0, [0])}) == {}
    clock.now += 2.5
    assert offsets(aligner.align(consumer, {}), A) == [0]


def test_waiting_ends_after_give_up_s_without_progress() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock, idle_s=1e9, give_up_s=30.0)
    aligner.align(consumer, {A: records(0, [0]), B: records(0, [4 * DAY])})
    aligner.align(consumer, {})
    clock.now += 29.0
    assert aligner.align(consumer, {}) == {}
    clock.now += 2.0
    assert offsets(aligner.align(consumer, {}), B) == [0]


def test_labels_align_by_their_timestamp_and_other_topics_pass_through() -> None:
    clock, consumer = Clock(), Consumer(A, L)
    aligner = make(clock)
    other = TopicPartition("elsewhere", 0)
    out = aligner.align(
        consumer,
        {
            A: records(0, [0]),
            L: records(0, [3 * DAY], field="timestamp"),
            other: [Record(7, b"anything")],
        },
    )
    assert offsets(out, A) == [0]
    assert offsets(out, L) == []
    assert offsets(out, other) == [7]


def test_a_message_without_a_readable_time_is_released_for_its_parser() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    out = aligner.align(consumer, {A: [Record(0, b"not json")], B: records(0, [0])})
    assert offsets(out, A) == [0]


def test_a_replayed_batch_drops_what_is_held_and_repeats_are_ignored() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    aligner.align(consumer, {A: records(0, [0]), B: records(0, [0, 3 * DAY])})
    assert aligner.held == 1
    aligner.rewound(consumer, {B: 0})  # the batch with B's offset 0 was not delivered
    assert aligner.held == 0
    assert consumer.paused_set == set()
    out = aligner.align(consumer, {A: records(1, [0]), B: records(0, [0, 3 * DAY])})
    assert offsets(out, B) == [0]
    # The client returns records it returned before (a fetch drained while paused): ignored.
    out = aligner.align(consumer, {B: records(0, [0, 3 * DAY])})
    assert offsets(out, B) == []
    assert aligner.held == 1


def test_a_rebalance_drops_what_is_held_and_reads_it_again_from_the_commit() -> None:
    clock, consumer = Clock(), Consumer(A, B)
    aligner = make(clock)
    aligner.align(consumer, {A: records(0, [0]), B: records(5, [3 * DAY])}, rebalances=1)
    assert aligner.held == 1
    consumer.commits[B] = 5
    out = aligner.align(consumer, {B: records(5, [3 * DAY])}, rebalances=2)
    assert out == {}
    assert aligner.held == 0
    assert consumer.seeks[-1] == (B, 5)
    assert consumer.paused_set == set()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(min_value=0, max_value=20 * DAY), max_size=30).map(sorted),
        min_size=1,
        max_size=4,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_every_record_is_released_once_in_offset_order(
    streams: list[list[int]], per_poll: int
) -> None:
    """Partitions polled a few records at a time (none while paused), until all are idle:
    each record comes out exactly once, each partition in offset order, and while a
    partition waits its released records never run past the slowest by more than the margin
    plus its own step."""
    parts = [TopicPartition("events", i) for i in range(len(streams))]
    clock, consumer = Clock(), Consumer(*parts)
    aligner = make(clock)
    cursor = dict.fromkeys(parts, 0)
    seen: dict[TopicPartition, list[int]] = {tp: [] for tp in parts}
    for _ in range(2_000):
        polled = {}
        for tp, times in zip(parts, streams, strict=True):
            if tp in consumer.paused_set or cursor[tp] >= len(times):
                continue
            n = min(per_poll, len(times) - cursor[tp])
            polled[tp] = records(cursor[tp], times[cursor[tp] : cursor[tp] + n])
            cursor[tp] += n
        for tp, rs in aligner.align(consumer, polled).items():
            seen[tp] += [r.offset for r in rs]
        clock.now += 0.25
        if aligner.held == 0 and all(
            cursor[tp] >= len(t) for tp, t in zip(parts, streams, strict=True)
        ):
            break
    assert seen == {tp: list(range(len(t))) for tp, t in zip(parts, streams, strict=True)}


@pytest.mark.integration
def test_a_partition_paused_in_the_middle_of_a_fetch_is_read_on_after_resume(
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consumer_factory: Callable[..., Any],
) -> None:
    """On the real broker: paused after 20 of a fetch's 218 records, beside a partition with
    nothing (kafka-python 3.0.12 would never give the other 198 back after resume)."""
    events, labels = topic_factory(1, prefix="events"), topic_factory(1, prefix="labels")
    producer = producer_factory()
    for i in range(218):
        producer.send(events, key=b"k", value=orjson.dumps({"t": i}))
    producer.flush()
    consumer = consumer_factory(events, labels, max_poll_records=20, group_id=f"g-{time.time_ns()}")
    tp = TopicPartition(events, 0)
    got: list[Any] = []
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        got = consumer.poll(timeout_ms=500).get(tp, [])
    assert [r.offset for r in got] == list(range(20))
    consumer.pause(tp)
    for _ in range(3):
        assert tp not in consumer.poll(timeout_ms=300)
    resume(consumer, tp)
    while len(got) < 218 and time.monotonic() < deadline:
        got += consumer.poll(timeout_ms=500).get(tp, [])
    assert [r.offset for r in got] == list(range(218))


def test_partitions_paused_in_the_middle_of_fetches_and_resumed_together_are_read_on(
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consumer_factory: Callable[..., Any],
) -> None:
    """On the real broker: three partitions, each paused with records of a fetch not yet
    returned, resumed at once (kafka-python 3.0.12 gives one partition's parked records back
    and never fetches the others again)."""
    events = topic_factory(3, prefix="events")
    producer = producer_factory()
    for partition in range(3):
        for i in range(200):
            producer.send(events, partition=partition, value=orjson.dumps({"t": i}))
    producer.flush()
    consumer = consumer_factory(events, max_poll_records=10, group_id=f"g-{time.time_ns()}")
    tps = [TopicPartition(events, p) for p in range(3)]
    got: dict[TopicPartition, list[int]] = {tp: [] for tp in tps}
    deadline = time.monotonic() + 60
    while not all(got.values()) and time.monotonic() < deadline:
        for tp, batch in consumer.poll(timeout_ms=500).items():
            got[tp] += [r.offset for r in batch]
            consumer.pause(tp)  # in the middle of its fetch: the rest is parked
    assert all(got.values()), got
    for _ in range(3):
        assert not consumer.poll(timeout_ms=300)
    resume(consumer, *tps)
    while sum(map(len, got.values())) < 600 and time.monotonic() < deadline:
        for tp, batch in consumer.poll(timeout_ms=500).items():
            got[tp] += [r.offset for r in batch]
    assert got == {tp: list(range(200)) for tp in tps}
