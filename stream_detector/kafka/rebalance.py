"""The rebalance listener: it only records what changed, the run loop acts on it.

kafka-python 3 calls listeners on its IO thread, the one that also sends heartbeats, so a
listener that blocks (a commit, a flush, reading a topic) can get the consumer evicted. Ours
does no I/O at all and commits nothing: the loop commits each batch once its outputs are
acknowledged (at least once: at most one batch is in flight while the next is polled; see
:mod:`stream_detector.kafka.at_least_once`), for the partitions it still owns then; a revoked
partition's new owner replays from the last commit. ``on_partitions_lost`` (the group already gave the partitions to someone else) must
not commit either: the new owner replays from the last commit. The loop reads the changes
with :meth:`AssignmentTracker.take` and, for partitions that are new to this instance, reads
back recent alerts before processing them (see :mod:`stream_detector.kafka.dedupe`).

Eager assignors revoke every partition and then assign the new set, so a partition revoked and
assigned in the same round never left. The cooperative protocol (``cooperative-sticky``,
KIP-429) hands the listener only the increments: a partition it revokes goes to another
member, so one assigned later is always new here (``cooperative=True``).

Examples
--------
>>> from kafka import TopicPartition
>>> tracker = AssignmentTracker()
>>> p0, p1 = TopicPartition("events", 0), TopicPartition("events", 1)
>>> tracker.on_partitions_assigned({p0})
>>> sorted(tp.partition for tp in tracker.take().added)
[0]
>>> tracker.on_partitions_revoked({p0})          # an eager rebalance revokes everything...
>>> tracker.on_partitions_assigned({p0, p1})     # ...then assigns the new set
>>> [tp.partition for tp in tracker.take().added]  # p0 never left: only p1 is new
[1]
>>> tracker.on_partitions_lost({p0, p1})
>>> change = tracker.take()
>>> sorted(tp.partition for tp in change.lost), tracker.owned
([0, 1], frozenset())
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

__all__ = ["AssignmentChange", "AssignmentTracker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AssignmentChange:
    """What changed since the last :meth:`AssignmentTracker.take`."""

    added: frozenset[TopicPartition] = field(default_factory=frozenset)
    """Partitions this instance did not own before (another instance may have processed
    them since their last commit)."""
    revoked: frozenset[TopicPartition] = field(default_factory=frozenset)
    lost: frozenset[TopicPartition] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.added or self.revoked or self.lost)


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}:{tp.partition}" for tp in sorted(partitions)) or "-"


class AssignmentTracker(ConsumerRebalanceListener):
    """A rebalance listener that records changes under a lock and never blocks."""

    def __init__(self, *, cooperative: bool = False) -> None:
        self.cooperative = cooperative
        self._lock = threading.Lock()
        self._owned: set[TopicPartition] = set()
        self._revoked_in_round: set[TopicPartition] = set()
        self._added: set[TopicPartition] = set()
        self._revoked: set[TopicPartition] = set()
        self._lost: set[TopicPartition] = set()
        self._left: set[TopicPartition] = set()
        self.rebalances = 0

    @property
    def owned(self) -> frozenset[TopicPartition]:
        """The partitions assigned to this instance now."""
        with self._lock:
            return frozenset(self._owned)

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Record a revocation; offsets were committed at the end of the last batch."""
        revoked = set(revoked)
        with self._lock:
            self._owned -= revoked
            if not self.cooperative:
                self._revoked_in_round |= revoked
            self._revoked |= revoked
            self._left |= revoked
        if revoked:
            log.info("partitions revoked partitions=%s", _names(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Record an assignment; partitions revoked in the same rebalance are not new."""
        assigned = set(assigned)
        with self._lock:
            new = assigned - self._owned - self._revoked_in_round
            self._owned |= assigned
            self._revoked_in_round.clear()
            self._added |= new
            self._revoked -= assigned
            self.rebalances += 1
            owned = frozenset(self._owned)
        log.info(
            "partitions assigned partitions=%s added=%s new=%s",
            _names(owned),
            _names(assigned),
            _names(new),
        )

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        """The group evicted this instance: forget the partitions, commit nothing."""
        lost = set(lost)
        with self._lock:
            self._owned -= lost
            self._lost |= lost
            self._left |= lost
            self._added -= lost
        if lost:
            log.warning(
                "partitions lost partitions=%s; the batch in flight is not committed and "
                "is replayed from the last commit",
                _names(lost),
            )

    def left(self) -> frozenset[TopicPartition]:
        """Partitions revoked or lost since the last :meth:`take` (even if assigned again)."""
        with self._lock:
            return frozenset(self._left)

    def take(self) -> AssignmentChange:
        """Return and clear what changed since the last call."""
        with self._lock:
            self._left.clear()
            change = AssignmentChange(
                frozenset(self._added), frozenset(self._revoked), frozenset(self._lost)
            )
            self._added.clear()
            self._revoked.clear()
            self._lost.clear()
        return change
