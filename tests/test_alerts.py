"""configs/alerts.yml: Prometheus alerting rules that name only metrics and labels the code exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream_detector.metrics import DetectorMetrics

ALERTS = Path(__file__).resolve().parents[1] / "configs" / "alerts.yml"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported() -> dict[str, set[str]]:
    """Every series name Prometheus sees -> the label names it carries."""
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry)
    labels = {
        collector._name: set(collector._labelnames)
        for collector in vars(metrics).values()
        if hasattr(collector, "_labelnames")
    }
    series: dict[str, set[str]] = {}
    for family in registry.collect():
        for suffix in SUFFIXES[family.type]:
            series[family.name + suffix] = labels.get(family.name, set())
    series["stream_detector_model_info"] = {"model_version", "technique", "scorer"}
    return series


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_rule_is_complete(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")")
        assert expr.count("[") == expr.count("]")
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"])


def test_every_metric_and_label_exists(rules: list[dict[str, Any]]) -> None:
    series = exported()
    for rule in rules:
        used = set(re.findall(r"\bstream_detector_\w+", rule["expr"]))
        assert used, f"{rule['alert']} names no stream-detector metric"
        unknown = used - set(series)
        assert not unknown, f"{rule['alert']} names metrics the code does not export: {unknown}"
        available = set().union(*(series[name] for name in used))
        grouped = {
            label.strip()
            for group in re.findall(r"\bby \(([^)]*)\)", rule["expr"])
            for label in group.split(",")
        }
        templated = set(re.findall(r"\$labels\.(\w+)", str(rule["annotations"])))
        assert grouped | templated <= available, (rule["alert"], (grouped | templated) - available)


def test_the_rules_cover_drift_alert_rate_dead_letters_and_lag(rules: list[dict[str, Any]]) -> None:
    used = {name for rule in rules for name in re.findall(r"\bstream_detector_\w+", rule["expr"])}
    assert {
        "stream_detector_drift_total",
        "stream_detector_alerts_total",
        "stream_detector_events_invalid_total",
        "stream_detector_consumer_lag",
    } <= used
