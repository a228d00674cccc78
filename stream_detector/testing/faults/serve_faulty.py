"""``stream-detector serve`` with injected faults, for the fault harness (test code only).

    python -m stream_detector.testing.faults.serve_faulty [--kill-phase PHASE --kill-after N]
                                        [--slow-ms-per-row MS] -- serve ARGS...

``--kill-phase`` makes the process ``kill -9`` itself right after the N-th batch reached
PHASE (``decided``: scored, nothing published; ``published``: every output acknowledged,
offsets not committed, a transaction still open; ``committed``). ``--pause-phase`` makes it
stop itself (SIGSTOP) there instead, until the harness sends SIGCONT: a zombie. ``--slow-ms-per-row`` makes the model that much
slower per event. Everything else is the real ``serve`` command: the driver subclasses
:class:`stream_detector.service.Service` and uses its public ``phase_hook``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="serve_faulty")
    parser.add_argument("--kill-phase", choices=["decided", "published", "committed"])
    parser.add_argument("--kill-after", type=int, default=1)
    parser.add_argument("--pause-phase", choices=["decided", "published", "committed"])
    parser.add_argument("--slow-ms-per-row", type=float, default=0.0)
    faults = parser.parse_args(argv[:split])
    serve_args = argv[split + 1 :]

    from stream_detector import cli, service

    class FaultyService(service.Service):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._seen = 0
            self.phase_hook = self._fault
            if faults.slow_ms_per_row > 0:
                score = self.bundle.score_samples

                def slow_score(X: Any) -> Any:
                    time.sleep(len(X) * faults.slow_ms_per_row / 1000)
                    return score(X)

                self.bundle.score_samples = slow_score  # type: ignore[method-assign]

        def _fault(self, phase: str) -> None:
            if phase == faults.pause_phase and not self._seen:
                self._seen += 1
                print(f"fault: paused at phase={phase}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGSTOP)
                print("fault: resumed", file=sys.stderr, flush=True)
                return
            if phase != faults.kill_phase:
                return
            self._seen += 1
            if self._seen >= faults.kill_after:
                print(
                    f"fault: kill -9 at phase={phase} batch={self._seen}",
                    file=sys.stderr,
                    flush=True,
                )
                os.kill(os.getpid(), signal.SIGKILL)

    service.Service = FaultyService  # type: ignore[misc]
    return cli.main(serve_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
