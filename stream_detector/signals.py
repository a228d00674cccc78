"""Signal handlers for the length of a block: how ``serve``, ``notify`` and ``broker`` stop.

>>> import signal
>>> calls = []
>>> with handling({signal.SIGUSR1: lambda name: calls.append(name)}):
...     signal.raise_signal(signal.SIGUSR1)
>>> calls
['SIGUSR1']
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType

__all__ = ["handling"]


@contextmanager
def handling(actions: Mapping[signal.Signals, Callable[[str], None]]) -> Iterator[None]:
    """Call ``actions[sig](name)`` when a listed signal arrives while the block runs; the
    previous handlers are restored after it."""

    def handler(signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        actions[sig](sig.name)

    previous = {sig: signal.signal(sig, handler) for sig in actions}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
