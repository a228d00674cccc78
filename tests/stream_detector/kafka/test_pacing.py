from __future__ import annotations

import pytest

from stream_detector.kafka.pacing import BatchPacer


@pytest.mark.parametrize(
    ("n", "seconds", "limit"),
    [(500, 1.0, 500), (500, 3.0, 250), (100, 30.0, 5), (10, 100.0, 1), (0, 5.0, 500)],
)
def test_pacer_keeps_a_batch_within_half_the_poll_interval(
    n: int, seconds: float, limit: int
) -> None:
    pacer = BatchPacer(max_records=500, max_poll_interval_ms=3000)
    pacer.observe(n, seconds)
    assert pacer.limit == limit


def test_pacer_grows_back_but_never_past_the_batch_size() -> None:
    pacer = BatchPacer(max_records=500, max_poll_interval_ms=3000)
    assert pacer.observe(500, 6.0)
    assert pacer.limit == 125
    for _ in range(30):
        pacer.observe(pacer.limit, pacer.limit * 0.0001)
    assert pacer.limit == 500
