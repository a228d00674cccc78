from __future__ import annotations

from kafka import TopicPartition

from stream_detector.kafka.rebalance import AssignmentTracker


def test_tracker_reports_only_partitions_new_to_this_instance() -> None:
    tp = [TopicPartition("events", i) for i in range(4)]
    tracker = AssignmentTracker()
    tracker.on_partitions_assigned(tp[:2])
    assert tracker.take().added == frozenset(tp[:2])
    assert not tracker.take()
    # Cooperative: only the increment is assigned, one partition revoked.
    tracker.on_partitions_revoked([tp[0]])
    tracker.on_partitions_assigned([tp[2]])
    change = tracker.take()
    assert change.added == frozenset([tp[2]])
    assert change.revoked == frozenset([tp[0]])
    assert tracker.owned == frozenset([tp[1], tp[2]])
    # A partition that comes back later was someone else's meanwhile: new again.
    tracker.on_partitions_assigned([tp[0]])
    assert tracker.take().added == frozenset([tp[0]])
    assert tracker.rebalances == 3


def test_tracker_lost_partitions_are_new_when_they_return() -> None:
    tp = TopicPartition("events", 0)
    tracker = AssignmentTracker()
    tracker.on_partitions_assigned([tp])
    tracker.take()
    tracker.on_partitions_lost([tp])
    assert tracker.take().lost == frozenset([tp])
    tracker.on_partitions_revoked([])
    tracker.on_partitions_assigned([tp])
    assert tracker.take().added == frozenset([tp])


def test_cooperative_tracker_treats_every_revoked_partition_as_gone() -> None:
    # KIP-429: a revoked partition goes to another member in a later round, and the listener
    # hears only of increments (no assignment at all in the round that revokes).
    tp = [TopicPartition("events", i) for i in range(3)]
    tracker = AssignmentTracker(cooperative=True)
    tracker.on_partitions_assigned(tp)
    tracker.take()
    tracker.on_partitions_revoked([tp[0]])
    assert tracker.left() == frozenset([tp[0]])
    assert tracker.owned == frozenset(tp[1:])
    assert tracker.take().revoked == frozenset([tp[0]])
    assert tracker.left() == frozenset()
    tracker.on_partitions_assigned([tp[0]])  # back after someone else owned it: new
    assert tracker.take().added == frozenset([tp[0]])
    assert tracker.owned == frozenset(tp)
