"""How long the broker may stay unreachable while the service runs.

Every part of the loop that talks to the broker (polling, publishing, committing) reports to
one :class:`OutageClock`: a success resets it, a failure starts it. While it runs the service
keeps the batch in flight and retries with a growing pause (never reading further, so nothing
is lost and memory stays bounded). Once the broker has been unreachable for
``give_up_after_s`` seconds, the next failure raises :class:`~stream_detector.errors.BrokerError`,
which ``serve`` turns into one line on stderr and exit code 2, for a supervisor to act on.

Examples
--------
>>> now = [0.0]
>>> clock = OutageClock(give_up_after_s=10.0, clock=lambda: now[0])
>>> clock.failed("publishing", "connection refused")
>>> clock.failing, clock.unreachable_s
(True, 0.0)
>>> now[0] = 11.0
>>> clock.failed("publishing", "connection refused")
Traceback (most recent call last):
...
stream_detector.errors.BrokerError: the broker has been unreachable for 11s while publishing (give_up_after_s=10); last error: connection refused
>>> clock.ok()
>>> clock.failing
False
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from stream_detector.errors import BrokerError

__all__ = ["OutageClock"]

log = logging.getLogger(__name__)

_LOG_EVERY_S = 5.0


class OutageClock:
    """Tracks one broker outage: when it started, how long to pause, when to give up.

    Parameters
    ----------
    give_up_after_s
        An outage longer than this makes :meth:`failed` raise ``BrokerError``.
    stop
        Set when the service is asked to stop; :meth:`pause` returns early then.
    initial_backoff_s, max_backoff_s
        The first pause after a failure, doubled after each further failure up to the maximum.
    clock
        A monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        give_up_after_s: float,
        stop: threading.Event | None = None,
        initial_backoff_s: float = 0.1,
        max_backoff_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.give_up_after_s = give_up_after_s
        self.stop = stop if stop is not None else threading.Event()
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._since: float | None = None
        self._backoff = initial_backoff_s
        self._logged_at = float("-inf")
        self.outages = 0

    @property
    def failing(self) -> bool:
        """True from the first failure until the next success."""
        return self._since is not None

    @property
    def unreachable_s(self) -> float:
        """Seconds since the outage began; 0 when the broker answers."""
        return 0.0 if self._since is None else self._clock() - self._since

    def ok(self) -> None:
        """The broker answered: end the outage, if any."""
        if self._since is not None:
            log.info("broker reachable again after=%.1fs", self.unreachable_s)
        self._since = None
        self._backoff = self.initial_backoff_s

    def failed(self, what: str, error: BaseException | str) -> None:
        """Record a failure while doing ``what``; raise ``BrokerError`` once it lasted too long."""
        now = self._clock()
        if self._since is None:
            self._since = now
            self._logged_at = float("-inf")
            self.outages += 1
        elapsed = now - self._since
        if elapsed > self.give_up_after_s:
            raise BrokerError(
                f"the broker has been unreachable for {elapsed:.0f}s while {what} "
                f"(give_up_after_s={self.give_up_after_s:g}); last error: {error}"
            )
        if now - self._logged_at >= _LOG_EVERY_S:
            self._logged_at = now
            log.warning(
                "broker unreachable while=%s for=%.1fs give_up_after=%gs; retrying, nothing "
                "is committed meanwhile error=%s",
                what.replace(" ", "_"),
                elapsed,
                self.give_up_after_s,
                error,
            )

    def pause(self) -> bool:
        """Wait the current backoff, then grow it; False when a stop was requested."""
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self.max_backoff_s)
        return not self.stop.wait(delay)
