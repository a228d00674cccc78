"""Drift detection with River's ADWIN on the score stream, the feature means and the labels.

Signals, each watched by its own ``river.drift.ADWIN``:

- ``score``: every valid event's score;
- ``feature:<name>``: the mean of each feature over consecutive chunks of ``chunk_size``
  events (chunks, not micro-batches, so that every value ADWIN sees rests on the same number
  of events however the consumer batches them);
- ``labels``: every feedback label (0/1), so a change of the fraud rate shows up as drift.

ADWIN (Bifet & Gavaldà 2007) keeps a window of recent values and cuts it when two parts of it
have means that differ by more than a bound derived from ``delta``; it needs no threshold in the
units of the signal, which is why it is used here rather than Page-Hinkley, whose threshold
would have to be tuned for scores and for every feature's scale separately.

A detection is counted and logged by the caller (:class:`~stream_detector.online.OnlineMonitor`);
:meth:`DriftMonitor.state` reports, per signal, the detections so far and when the last one
happened, and whether any is recent enough (``hold_s``) to count as drifting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.errors import ConfigError

__all__ = ["DriftMonitor", "DriftState"]

_LIMIT = 1e150


@dataclass(slots=True)
class DriftState:
    """One signal: detections so far and the time of the last one (epoch seconds)."""

    detections: int = 0
    last_detected_at: float | None = None


class DriftMonitor:
    """ADWIN detectors on the scores, the per-chunk feature means and the labels.

    Parameters
    ----------
    features
        Feature names, in the column order of the matrices given to :meth:`update`.
    delta
        ADWIN's confidence parameter.
    chunk_size
        Events per feature-mean chunk.
    hold_s
        A signal is drifting this many seconds after its last detection.
    clock
        Returns the time in epoch seconds (tests pass a fake).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> monitor = DriftMonitor(features=["amount"], chunk_size=100)
    >>> before = rng.normal(50, 10, size=(20_000, 1))
    >>> monitor.update(rng.uniform(0, 0.2, 20_000), before)
    []
    >>> after = rng.normal(80, 10, size=(5_000, 1))
    >>> sorted(set(monitor.update(rng.uniform(0.3, 0.5, 5_000), after)))
    ['feature:amount', 'score']
    """

    def __init__(
        self,
        *,
        features: Sequence[str],
        delta: float = 0.002,
        chunk_size: int = 500,
        hold_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (0.0 < delta < 1.0) or chunk_size < 1:
            raise ConfigError(
                f"drift delta must be in (0, 1) and chunk_size >= 1; got {delta} and {chunk_size}"
            )
        # River's drift package imports scikit-learn (about a second); only `serve` pays it.
        from river.drift import ADWIN

        self.features = tuple(features)
        self.delta = delta
        self.chunk_size = chunk_size
        self.hold_s = hold_s
        self.clock = clock
        self.signals: tuple[str, ...] = (
            "score",
            "labels",
            *(f"feature:{name}" for name in self.features),
        )
        # Chunk means come 1/chunk_size as often as scores: check them at every value.
        self._detectors = {
            s: ADWIN(delta=delta, clock=1 if s.startswith("feature:") else 32) for s in self.signals
        }
        self.states: dict[str, DriftState] = {s: DriftState() for s in self.signals}
        self._chunk_sum = np.zeros(len(self.features))
        self._chunk_n = 0

    def _feed(self, signal: str, values: Iterable[float]) -> bool:
        detector = self._detectors[signal]
        fired = False
        update = detector.update
        for v in values:
            update(v)
            if detector.drift_detected:
                state = self.states[signal]
                state.detections += 1
                state.last_detected_at = self.clock()
                fired = True
        return fired

    def update(
        self, scores: Iterable[float], X: npt.NDArray[np.float64] | None = None
    ) -> list[str]:
        """Feed a batch's scores and feature rows; return the signals that detected drift."""
        fired = ["score"] if self._feed("score", scores) else []
        if X is not None and X.size and self.features:
            for means in self._chunk_means(X):
                for name, value in zip(self.features, means.tolist(), strict=True):
                    signal = f"feature:{name}"
                    if self._feed(signal, (value,)) and signal not in fired:
                        fired.append(signal)
        return fired

    def update_labels(self, labels: Iterable[int]) -> list[str]:
        """Feed feedback labels; return ``["labels"]`` if they drifted."""
        return ["labels"] if self._feed("labels", (float(y) for y in labels)) else []

    def _chunk_means(self, X: npt.NDArray[np.float64]) -> list[npt.NDArray[np.float64]]:
        means = []
        start, n = 0, X.shape[0]
        while start < n:
            take = min(self.chunk_size - self._chunk_n, n - start)
            # Dividing before summing keeps the sum finite for any finite rows (each term is at
            # most max_float / chunk_size); clipping keeps ADWIN's squares finite too. Drift in
            # means beyond +-1e150 is not a signal worth more precision than that.
            part = np.clip(X[start : start + take], -_LIMIT, _LIMIT) / self.chunk_size
            self._chunk_sum += part.sum(axis=0)
            self._chunk_n += take
            start += take
            if self._chunk_n == self.chunk_size:
                means.append(self._chunk_sum.copy())
                self._chunk_sum = np.zeros(len(self.features))
                self._chunk_n = 0
        return means

    def drifting(self) -> list[str]:
        """Signals whose last detection is less than ``hold_s`` seconds old."""
        now = self.clock()
        return [
            s
            for s, st in self.states.items()
            if st.last_detected_at is not None and now - st.last_detected_at < self.hold_s
        ]

    def state(self) -> dict[str, Any]:
        """JSON-able summary for the health page."""
        return {
            "drifting": self.drifting(),
            "signals": {
                s: {
                    "detections": st.detections,
                    "last_detected_at": st.last_detected_at,
                }
                for s, st in self.states.items()
            },
        }
