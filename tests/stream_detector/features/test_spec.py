"""The feature spec: names, required fields, horizon, and one-line errors for bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_detector.errors import ConfigError
from stream_detector.features.spec import FeatureSpec, WindowFeature, duration_ms

CARD = {
    "numeric": ["amount"],
    "calendar": ["hour", "night"],
    "windows": [
        {
            "key": "customer_id",
            "windows": ["1d", "30d"],
            "field": "amount",
            "stats": ["count", "mean", "std"],
            "relative": ["ratio", "zscore"],
            "since_previous": True,
            "distinct": "terminal_id",
        },
        {"key": "terminal_id", "windows": ["7d"], "delay": "7d", "labels": ["count", "rate"]},
    ],
}


def test_names_are_stable_and_readable() -> None:
    spec = FeatureSpec.parse(CARD)
    assert spec.names == (
        "amount",
        "hour",
        "night",
        "customer_id.amount.count.1d",
        "customer_id.amount.mean.1d",
        "customer_id.amount.std.1d",
        "customer_id.amount.ratio.1d",
        "customer_id.amount.zscore.1d",
        "customer_id.terminal_id.distinct.1d",
        "customer_id.amount.count.30d",
        "customer_id.amount.mean.30d",
        "customer_id.amount.std.30d",
        "customer_id.amount.ratio.30d",
        "customer_id.amount.zscore.30d",
        "customer_id.terminal_id.distinct.30d",
        "customer_id.since_previous",
        "terminal_id.fraud_count.7d.delay7d",
        "terminal_id.fraud_rate.7d.delay7d",
    )
    assert spec.required_fields == ("timestamp", "customer_id", "terminal_id", "amount")
    assert spec.keys == ("customer_id", "terminal_id")
    assert spec.horizon_ms == duration_ms("30d") + duration_ms("1d")
    assert spec.has_labels


def test_the_digest_follows_the_content() -> None:
    assert FeatureSpec.parse(CARD).digest == FeatureSpec.parse(dict(CARD)).digest
    assert FeatureSpec.parse(CARD).digest != FeatureSpec.parse({**CARD, "lateness": "2d"}).digest


def test_numeric_only_spec_needs_no_timestamp() -> None:
    spec = FeatureSpec.parse({"numeric": ["amount", "distance"]})
    assert spec.required_fields == ("amount", "distance")
    assert spec.horizon_ms == duration_ms("1d")


def window(**overrides: Any) -> dict[str, Any]:
    return {"windows": [{"key": "customer_id", "windows": ["1h"], **overrides}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            window(stats=["median"]),
            "features.windows[0].stats[0]: unknown value 'median'; "
            "expected one of count, sum, mean, std, min, max",
        ),
        (
            window(windows=["7x"], stats=["count"]),
            "features.windows[0].windows[0]: '7x' is not a duration",
        ),
        (window(windows=[], stats=["count"]), "at least one window is required; got none"),
        (window(windows=["0s"], stats=["count"]), "a window must be longer than 0; got '0s'"),
        (
            window(windows=["60m", "1h"], stats=["count"]),
            "window lengths (in ms) must be unique; got 3600000 twice",
        ),
        (window(delay="7d", since_previous=True), "needs labels or stats to delay"),
        (window(labels=["rate"]), "labels need a delay > 0"),
        (window(stats=["mean"]), "'mean' needs a numeric `field`; got none"),
        (window(relative=["zscore"]), "'zscore' needs a numeric `field`"),
        (window(field="amount", stats=["count"]), "no stat or relative feature uses it"),
        (window(), "compute nothing"),
        (window(stats=["count"], colour="red"), "features.windows[0].colour: unknown key"),
        (
            {"windows": [window(stats=["count"])["windows"][0]] * 2},
            "feature names must be unique; got 'customer_id.count.1h' twice",
        ),
        ({"numeric": ["amount", "amount"]}, "feature names must be unique"),
        ({"numeric": ["event_id"]}, "identifier columns cannot be numeric features"),
        ({}, "no features declared"),
        ({"numeric": ["a"], "time_zone": "Mars/Olympus"}, "unknown zone 'Mars/Olympus'"),
        ({"numeric": ["a"], "night_hours": [22, 22]}, "night_hours must be two different"),
        ({"numeric": ["a"], "lateness": "soon"}, "features.lateness: 'soon' is not a duration"),
        ({"calendar": ["moon"]}, "features.calendar[0]: unknown value 'moon'"),
    ],
)
def test_bad_specs_stop_with_one_line(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        FeatureSpec.parse(data)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
def test_durations_round_trip(number: int, unit: str) -> None:
    factor = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    assert duration_ms(f"{number}{unit}") == number * factor[unit]


@given(st.text(max_size=8))
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    import re

    if re.fullmatch(r"\s*\d+(ms|s|m|h|d|w)\s*", text):
        assert duration_ms(text) >= 0
    else:
        with pytest.raises(ValueError, match="is not a duration"):
            duration_ms(text)


def test_window_feature_alone() -> None:
    entry = WindowFeature(key="terminal_id", windows=["7d"], delay="7d", labels=["count"])
    assert entry.delay_ms == duration_ms("7d")
    assert entry.span_ms == duration_ms("14d")
    assert entry.names == ("terminal_id.fraud_count.7d.delay7d",)
