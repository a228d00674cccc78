"""The metrics module: every name of the contract exported, and the batch observer against
prometheus_client's own observe, value by value."""

from __future__ import annotations

import math
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from stream_detector.config import DetectorSettings
from stream_detector.errors import ConfigError
from stream_detector.metrics import (
    SCORE_BUCKETS,
    BatchObserver,
    DeliveryMetrics,
    DetectorMetrics,
    NotifyMetrics,
    observe_many,
)

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "CONTRACT.md"

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


def contract_metrics() -> dict[str, tuple[str, ...]]:
    """Every metric of docs/CONTRACT.md's table: exported name -> label names."""
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split("## Prometheus metrics", 1)[1].split("\n\n", 1)[0]
    found = {}
    for name, labels in re.findall(
        r"^\| `(stream_detector_\w+)(?:\{([\w,]+)\})?` \|", section, re.M
    ):
        found[name] = tuple(labels.split(",")) if labels else ()
    return found


def exported(metric: Counter | Gauge | Histogram | Info) -> str:
    """The name a scrape shows for ``metric`` (counters end in _total, info in _info)."""
    family = metric.describe()[0]
    suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
    return family.name + suffix


def test_the_registry_exports_exactly_the_contract_metrics() -> None:
    contract = contract_metrics()
    assert len(contract) == 44, sorted(contract)  # the table was read, not a part of it
    registry = CollectorRegistry()
    metrics = {
        exported(m): m
        for group in (DetectorMetrics(registry), DeliveryMetrics(registry), NotifyMetrics(registry))
        for m in vars(group).values()
        if isinstance(m, Counter | Gauge | Histogram | Info)
    }
    assert sorted(metrics) == sorted(contract)
    for name, labels in contract.items():
        metric = metrics[name]
        if isinstance(metric, Info):
            metric.info(dict.fromkeys(labels, "x"))
            assert registry.get_sample_value(name, dict.fromkeys(labels, "x")) == 1.0
        elif labels:
            metric.labels(**dict.fromkeys(labels, "x"))  # ValueError on other label names
    scraped = generate_latest(registry).decode()
    for name in contract:
        assert re.search(rf"^{name}(_bucket)?[{{ ]", scraped, re.M), name


def test_batch_observer_reads_the_histogram_internals_it_relies_on() -> None:
    """Fails when prometheus_client changes the private state BatchObserver counts into."""
    registry = CollectorRegistry()
    h = Histogram("h", "doc", buckets=(1.0, 2.0), registry=registry)
    observer = BatchObserver(h)
    assert observer.direct, (
        f"prometheus_client {version('prometheus_client')} no longer has Histogram._buckets/_upper_bounds/_sum as BatchObserver expects: "
        "batches are observed value by value (slower); update BatchObserver"
    )
    observer.observe_many([0.5, 1.5, 9.0])
    assert [registry.get_sample_value("h_bucket", {"le": le}) for le in ("1.0", "2.0", "+Inf")] == [
        1.0,
        2.0,
        3.0,
    ]


def test_batch_observer_falls_back_to_observe_without_the_internals() -> None:
    registry = CollectorRegistry()
    h = Histogram("h", "doc", ["kind"], buckets=(1.0,), registry=registry)
    parent = BatchObserver(h)  # a labelled parent has no buckets of its own
    assert not parent.direct
    with pytest.raises(ValueError, match="label"):  # what observe on a labelled parent says
        parent.observe_many([0.5])


def test_the_default_score_buckets_resolve_the_region_of_rare_event_thresholds() -> None:
    bounds = SCORE_BUCKETS
    assert list(bounds) == sorted(set(bounds))
    assert (bounds[0], bounds[-1]) == (1e-6, 1.0)
    for low in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2):  # three bounds in every decade up to 0.1
        assert len([b for b in bounds if low <= b < 10 * low]) == 3, low
    threshold = 0.00026  # a threshold as low as the simulator's fraud rate makes it
    below = max(b for b in bounds if b < threshold)
    above = min(b for b in bounds if b >= threshold)
    assert above / below <= 2.5


def test_the_score_buckets_are_a_setting() -> None:
    settings = DetectorSettings.load(overrides={"metrics": {"score_buckets": [0.001, 0.5]}})
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry, score_buckets=settings.metrics.score_buckets)
    observe_many(metrics.score, [0.0002, 0.2, 0.7])
    cumulative = [
        registry.get_sample_value("stream_detector_score_bucket", {"le": le})
        for le in ("0.001", "0.5", "+Inf")
    ]
    assert cumulative == [1.0, 2.0, 3.0]
    with pytest.raises(ConfigError) as raised:
        DetectorSettings.load(overrides={"metrics": {"score_buckets": [0.5, 0.1]}})
    assert str(raised.value) == (
        "config key 'metrics.score_buckets': must be increasing numbers in (0, 1]; got [0.5, 0.1]"
    )


def test_the_labelled_counters_of_fixed_label_sets_start_at_zero() -> None:
    registry = CollectorRegistry()
    DetectorMetrics(registry)
    DeliveryMetrics(registry)
    zero = {
        ("stream_detector_events_invalid_total", "reason", "not_json"),
        ("stream_detector_labels_invalid_total", "reason", "bad_label"),
        ("stream_detector_labels_total", "label", "1"),
        ("stream_detector_threshold_changes_total", "source", "sighup"),
        ("stream_detector_control_errors_total", "source", "admin"),
        ("stream_detector_batches_replayed_total", "reason", "fenced"),
    }
    for name, label, value in zero:
        assert registry.get_sample_value(name, {label: value}) == 0.0, name
    # drift signals depend on the bundle's features: the online monitor adds them
    assert registry.get_sample_value("stream_detector_drift_total", {"signal": "score"}) is None
