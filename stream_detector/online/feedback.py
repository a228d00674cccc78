"""Labels joined to the decisions the service made, and the live quality of its alerts.

:class:`Feedback` remembers the most recent decisions by ``event_id`` (a bounded memory: the
oldest are forgotten first) and joins each label to the decision it judges. A label whose
event is not remembered (too old, decided by another instance, or never seen) is counted as
unmatched, not an error. From the joined labels it tracks, with River rolling means:

- precision of alerts: the share of the last ``window_size`` labelled *alerts* that were
  fraud;
- recall: the share of the last ``window_size`` labelled *frauds* that were alerted.

Windows over the relevant labels, rather than over all labels, keep both estimates resting on
``window_size`` cases even when fraud is rare.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from river import stats, utils

from stream_detector.errors import ConfigError

__all__ = ["Feedback"]


class Feedback:
    """Bounded memory of recent decisions; labels join it by ``event_id``.

    Parameters
    ----------
    memory_size
        Decisions remembered.
    window_size
        Labelled alerts (precision) and labelled frauds (recall) the live estimates cover.

    Attributes
    ----------
    n_joined_ : int
        Labels that found their decision.
    n_unmatched_ : int
        Labels whose event was not remembered (each decision takes one label; a repeated
        label for the same event is unmatched).

    Examples
    --------
    >>> fb = Feedback(memory_size=3, window_size=100)
    >>> fb.remember([f"tx-{i}" for i in range(4)], [i % 2 == 0 for i in range(4)])
    >>> [fb.join("tx-0", 1), fb.join("tx-1", 1), fb.join("tx-2", 0), fb.join("tx-1", 1)]
    [False, True, True, False]
    >>> fb.precision(), fb.recall(), fb.n_unmatched_
    (0.0, 0.0, 2)
    """

    def __init__(self, *, memory_size: int = 200_000, window_size: int = 1_000) -> None:
        self.memory_size = memory_size
        self.window_size = window_size
        if memory_size < 1 or window_size < 1:
            raise ConfigError(
                f"memory_size and window_size must be >= 1; got {memory_size} and {window_size}"
            )
        self._memory: OrderedDict[str, bool] = OrderedDict()
        self._precision: Any = utils.Rolling(stats.Mean, window_size=window_size)
        self._recall: Any = utils.Rolling(stats.Mean, window_size=window_size)
        self._n_alerts_labelled = 0
        self._n_frauds_labelled = 0
        self.n_joined_ = 0
        self.n_unmatched_ = 0

    def __len__(self) -> int:
        return len(self._memory)

    def remember(self, event_ids: Iterable[str], flagged: Iterable[bool]) -> None:
        """Remember each event's decision (flagged or not), forgetting the oldest beyond the
        memory size. A decision repeated for the same event replaces the earlier one."""
        memory = self._memory
        for event_id, flag in zip(event_ids, flagged, strict=True):
            if event_id in memory:
                memory.move_to_end(event_id)
            memory[event_id] = bool(flag)
        while len(memory) > self.memory_size:
            memory.popitem(last=False)

    def join(self, event_id: str, label: int) -> bool:
        """Join a label to its decision; False when the event is not remembered."""
        flagged = self._memory.pop(event_id, None)
        if flagged is None:
            self.n_unmatched_ += 1
            return False
        self.n_joined_ += 1
        fraud = 1 if label else 0
        if flagged:
            self._precision.update(fraud)
            self._n_alerts_labelled += 1
        if fraud:
            self._recall.update(1 if flagged else 0)
            self._n_frauds_labelled += 1
        return True

    def precision(self) -> float | None:
        """Share of recent labelled alerts that were fraud; None before one was labelled."""
        return float(self._precision.get()) if self._n_alerts_labelled else None

    def recall(self) -> float | None:
        """Share of recent labelled frauds that were alerted; None before one was labelled."""
        return float(self._recall.get()) if self._n_frauds_labelled else None

    def support(self) -> tuple[int, int]:
        """Labelled alerts and labelled frauds the precision and recall cover (the windows).

        >>> fb = Feedback(window_size=2)
        >>> fb.remember(["a", "b", "c"], [True, True, True])
        >>> [fb.join(e, 1) for e in "abc"] and fb.support()
        (2, 2)
        """
        return (
            min(self._n_alerts_labelled, self.window_size),
            min(self._n_frauds_labelled, self.window_size),
        )
