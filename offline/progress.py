"""Progress of long runs on stderr: one line (a bar on a terminal) per candidate model.

The search sets :attr:`Progress.stage` (its rung and rows) and :attr:`Progress.left` (its
estimated seconds left), which every line shows.
"""

from __future__ import annotations

import sys
from typing import TextIO

from stream_detector.progress import StatusLine

__all__ = ["Progress"]


class Progress:
    """Report ``[i/total] label`` with a fold bar while fitting, then the result line.

    Parameters
    ----------
    total
        Number of candidates.
    stream
        Where to write (stderr by default).
    enabled
        False writes nothing (``--quiet``).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(2, stream=out)
    >>> p.start("classifier/logistic none"); p.fold(1, 2); p.fold(2, 2)
    >>> p.done("PR-AUC 0.812  0.1 s")
    >>> out.getvalue()
    '[1/2] classifier/logistic none  PR-AUC 0.812  0.1 s\\n'
    >>> p.stage, p.left = "rung 1/3, 5,000 rows", 125.0
    >>> p.start("anomaly none"); p.done("PR-AUC 0.5")
    >>> out.getvalue().splitlines()[-1]
    '[2/2] rung 1/3, 5,000 rows: anomaly none  PR-AUC 0.5  (about 2 min 5 s left)'
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.index = 0
        self.label = ""
        self.stage = ""
        self.left: float | None = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._status = StatusLine(self.stream, enabled=enabled)

    def start(self, label: str) -> None:
        """A new candidate begins."""
        self.index += 1
        self.label = label
        self._bar(0, 1)

    def fold(self, done: int, total: int) -> None:
        """``done`` of ``total`` folds of the current candidate are fitted."""
        self._bar(done, total)

    def done(self, summary: str) -> None:
        """The current candidate finished; ``summary`` is its result."""
        if self.enabled:
            end = "\r\x1b[K" if self._tty else ""
            self.stream.write(f"{end}{self._prefix()}  {summary}{self._left()}\n")
            self.stream.flush()

    def _prefix(self) -> str:
        stage = f"{self.stage}: " if self.stage else ""
        return f"[{self.index}/{self.total}] {stage}{self.label}"

    def _left(self) -> str:
        if self.left is None:
            return ""
        seconds = round(self.left)
        if seconds < 60:
            return f"  (about {seconds} s left)"
        minutes, seconds = divmod(seconds, 60)
        if minutes < 60:
            return f"  (about {minutes} min {seconds} s left)"
        return f"  (about {minutes // 60} h {minutes % 60} min left)"

    def _bar(self, done: int, total: int) -> None:
        if not (self.enabled and self._tty):
            return
        width = 20
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r\x1b[K{self._prefix()}  [{bar}] fold {done}/{total}{self._left()}")
        self.stream.flush()

    def step(self, text: str) -> None:
        """A step after the candidates (``train``'s final fit): shown in place on a terminal."""
        self._status.update(text, force=True)

    def clear(self) -> None:
        """Wipe the step shown last, if any."""
        self._status.clear()
