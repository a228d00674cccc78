"""A status line for long runs, on stderr when it is a terminal: rewritten in place, then wiped.

Long commands (``simulate`` streaming for minutes, ``train``'s final fit) say how far they are
on a terminal; piped or redirected, they write nothing here, so logs and captured output keep
only their result lines.

Examples
--------
>>> import io
>>> class Terminal(io.StringIO):
...     def isatty(self) -> bool:
...         return True
>>> out = Terminal()
>>> status = StatusLine(out, min_interval_s=0.0)
>>> status.update("sent 10/20 events"); status.update("sent 20/20 events"); status.clear()
>>> out.getvalue()
'\\r\\x1b[Ksent 10/20 events\\r\\x1b[Ksent 20/20 events\\r\\x1b[K'
>>> plain = io.StringIO()
>>> StatusLine(plain).update("nothing on a pipe")
>>> plain.getvalue()
''
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["StatusLine"]

_CLEAR = "\r\x1b[K"


class StatusLine:
    """One line of progress rewritten in place on a terminal; nothing elsewhere.

    Parameters
    ----------
    stream
        Where to write (stderr by default); only a terminal gets anything.
    enabled
        False writes nothing (``--quiet``).
    min_interval_s
        Updates closer together than this are skipped (a loop may call :meth:`update` per
        item), except with ``force=True``.
    """

    def __init__(
        self, stream: TextIO | None = None, *, enabled: bool = True, min_interval_s: float = 0.2
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval_s = min_interval_s
        self.active = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        """True when the stream is a terminal and progress is wanted."""
        self._last = float("-inf")
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        """Show ``text`` in place of the previous line."""
        if not self.active:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        self._shown = True
        self.stream.write(f"{_CLEAR}{text}")
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the line (before a result line, or at the end)."""
        if self.active and self._shown:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._shown = False
