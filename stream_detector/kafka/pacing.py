"""Batch pacing: keep every batch well inside ``max_poll_interval_ms``.

kafka-python's heartbeat thread makes the consumer leave its group when ``poll`` is not
called for ``max_poll_interval_ms``. A batch that takes longer (a slow model, a slow broker)
is then fenced off: its partitions go to a new owner and the batch is replayed. If every
batch took that long the service would replay forever. :class:`BatchPacer` measures the
time per message of each batch and caps the next ``poll`` so that a batch takes at most
``budget`` (half) of the interval; it grows back when processing speeds up.

Examples
--------
>>> pacer = BatchPacer(max_records=500, max_poll_interval_ms=3_000)
>>> pacer.limit
500
>>> pacer.observe(500, 6.0)  # 12 ms a message: 6 s overran the 3 s interval
True
>>> pacer.limit  # 0.5 * 3 s / 12 ms
125
>>> pacer.observe(125, 0.125)  # now 1 ms a message: the estimate decays back slowly
False
>>> pacer.limit
153
"""

from __future__ import annotations

import logging

__all__ = ["BatchPacer"]

log = logging.getLogger(__name__)

_DECAY = 0.2


class BatchPacer:
    """Caps ``max_records`` from the measured time per message.

    Parameters
    ----------
    max_records
        The configured batch size, never exceeded.
    max_poll_interval_ms
        The consumer's ``max_poll_interval_ms``.
    budget
        Share of the interval one batch may take.
    """

    def __init__(self, *, max_records: int, max_poll_interval_ms: int, budget: float = 0.5) -> None:
        self.max_records = max_records
        self.max_poll_interval_ms = max_poll_interval_ms
        self.budget = budget
        self.limit = max_records
        self.seconds_per_message_: float | None = None

    def observe(self, n_messages: int, seconds: float) -> bool:
        """Record one batch; return True when it overran ``max_poll_interval_ms``."""
        if n_messages <= 0:
            return False
        per = seconds / n_messages
        est = self.seconds_per_message_
        est = per if est is None or per > est else (1 - _DECAY) * est + _DECAY * per
        self.seconds_per_message_ = est
        interval_s = self.max_poll_interval_ms / 1000
        allowed = int(self.budget * interval_s / est) if est > 0 else self.max_records
        previous, self.limit = self.limit, max(1, min(self.max_records, allowed))
        overran = seconds * 1000 > self.max_poll_interval_ms
        if overran or self.limit < previous * 0.8:
            log.warning(
                "batch pacing: batch messages=%d took=%.2fs (max_poll_interval=%.1fs); "
                "next batches at most %d messages",
                n_messages,
                seconds,
                interval_s,
                self.limit,
            )
        return overran
