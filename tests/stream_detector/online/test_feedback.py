"""Labels joined to remembered decisions; live precision and recall against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from stream_detector.errors import ConfigError
from stream_detector.online import Feedback


def decisions(flags: np.ndarray, prefix: str = "tx") -> tuple[list[str], list[bool]]:
    return [f"{prefix}-{i}" for i in range(len(flags))], [bool(f) for f in flags]


def test_precision_and_recall_equal_numpy_over_their_windows() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    y = (rng.uniform(size=n) < 0.03).astype(int)
    flagged = np.where(y == 1, rng.uniform(size=n) < 0.7, rng.uniform(size=n) < 0.02)
    fb = Feedback(memory_size=n, window_size=200)
    fb.remember(*decisions(flagged))
    order = rng.permutation(n)  # labels arrive in any order
    for i in order:
        assert fb.join(f"tx-{i}", int(y[i]))
    y_o, f_o = y[order], flagged[order]
    last_alerts = y_o[f_o][-200:]
    last_frauds = f_o[y_o == 1][-200:]
    assert fb.precision() == pytest.approx(last_alerts.mean(), abs=1e-12)
    assert fb.recall() == pytest.approx(last_frauds.mean(), abs=1e-12)
    assert (fb.n_joined_, fb.n_unmatched_, len(fb)) == (n, 0, 0)


def test_memory_is_bounded_and_unknown_ids_are_counted() -> None:
    fb = Feedback(memory_size=100, window_size=10)
    assert fb.precision() is None
    assert fb.recall() is None
    fb.remember(*decisions(np.zeros(250)))
    assert len(fb) == 100
    assert not fb.join("tx-149", 0)  # forgotten: only tx-150 .. tx-249 are kept
    assert fb.join("tx-150", 0)
    assert not fb.join("tx-150", 0)  # one label per decision
    assert not fb.join("never-seen", 1)
    assert (fb.n_joined_, fb.n_unmatched_) == (1, 3)
    assert fb.precision() is None  # no alert was labelled yet
    assert fb.join("tx-151", 1)
    assert fb.recall() == 0.0


def test_a_repeated_decision_is_remembered_once_and_refreshed() -> None:
    fb = Feedback(memory_size=2, window_size=10)
    fb.remember(["a", "b"], [False, False])
    fb.remember(["a", "c"], [True, False])
    assert len(fb) == 2
    assert not fb.join("b", 0)
    assert fb.join("a", 1)
    assert fb.precision() == 1.0


def test_bad_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="memory_size and window_size must be >= 1; got 0 and 5"):
        Feedback(memory_size=0, window_size=5)
