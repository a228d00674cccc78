"""The status line: in place on a terminal, throttled, wiped; nothing on a pipe."""

from __future__ import annotations

import io

from stream_detector.progress import StatusLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_updates_closer_than_the_interval_are_skipped_unless_forced() -> None:
    out = Terminal()
    status = StatusLine(out, min_interval_s=3600.0)
    status.update("a")
    status.update("b")  # within the hour: skipped
    status.update("c", force=True)
    status.clear()
    assert out.getvalue() == "\r\x1b[Ka\r\x1b[Kc\r\x1b[K"


def test_nothing_is_written_off_a_terminal_or_when_disabled() -> None:
    plain, off = io.StringIO(), Terminal()
    for status in (StatusLine(plain), StatusLine(off, enabled=False)):
        assert not status.active
        status.update("x", force=True)
        status.clear()
    assert (plain.getvalue(), off.getvalue()) == ("", "")


def test_clear_without_a_line_shown_writes_nothing() -> None:
    out = Terminal()
    StatusLine(out).clear()
    assert out.getvalue() == ""
