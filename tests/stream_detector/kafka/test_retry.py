from __future__ import annotations

import threading

import pytest

from stream_detector.errors import BrokerError
from stream_detector.kafka.retry import OutageClock


def test_clock_backs_off_exponentially_up_to_the_maximum_and_resets() -> None:
    clock = OutageClock(give_up_after_s=60, initial_backoff_s=0.001, max_backoff_s=0.004)
    delays = []
    for _ in range(4):
        delays.append(clock._backoff)
        assert clock.pause()
    assert delays == [0.001, 0.002, 0.004, 0.004]
    clock.failed("x", "e")
    clock.ok()
    assert clock._backoff == 0.001
    assert not clock.failing


def test_clock_pause_returns_false_once_a_stop_is_requested() -> None:
    stop = threading.Event()
    stop.set()
    assert not OutageClock(give_up_after_s=1, stop=stop, initial_backoff_s=5).pause()


def test_clock_gives_up_only_after_the_configured_time() -> None:
    now = [100.0]
    clock = OutageClock(give_up_after_s=5, clock=lambda: now[0])
    clock.failed("committing offsets", "timeout")
    now[0] = 105.0
    clock.failed("committing offsets", "timeout")  # exactly at the limit: still retrying
    now[0] = 105.5
    with pytest.raises(BrokerError, match=r"unreachable for 6s while committing offsets"):
        clock.failed("committing offsets", "timeout")
    assert clock.outages == 1
