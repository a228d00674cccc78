"""observe_many against prometheus_client's own observe, value by value."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from stream_detector.metrics import observe_many

BUCKETS = (0.005, 0.01, 0.25, 0.5, 0.99, 1.0, 5.0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(BUCKETS)
        | st.sampled_from([math.nan, math.inf, -math.inf])
        | st.floats(-1e300, 1e300)
        | st.floats(0, 1.2),
        max_size=60,
    )
)
def test_observe_many_counts_like_observe(values: list[float]) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "doc", buckets=BUCKETS, registry=one)
    h2 = Histogram("h", "doc", buckets=BUCKETS, registry=many)
    for v in values:
        h1.observe(v)
    observe_many(h2, values)
    expected, got = samples(one), samples(many)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if key[0] == "h_sum" and math.isfinite(value):
            # numpy adds in another order: equal up to rounding, relative to the magnitudes
            scale = math.fsum(abs(v) for v in values) + 1.0
            assert abs(got[key] - value) <= 1e-12 * scale
        elif key[0] == "h_sum":
            assert got[key] == value or (math.isnan(value) and math.isnan(got[key]))
        else:
            assert got[key] == value, key


def test_labelled_children_count_too() -> None:
    registry = CollectorRegistry()
    h = Histogram("h", "doc", ["kind"], buckets=(1.0,), registry=registry)
    observe_many(h.labels(kind="a"), [0.5, 2.0])
    assert registry.get_sample_value("h_bucket", {"kind": "a", "le": "1.0"}) == 1.0
    assert registry.get_sample_value("h_count", {"kind": "a"}) == 2.0
