"""configs/alerts.yml: Prometheus alerting rules that name only metrics and labels the code
exports, each one tested by ``promtool test rules`` (tests/alerts_test.yml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream_detector.metrics import DeliveryMetrics, DetectorMetrics, NotifyMetrics

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "configs" / "alerts.yml"
RULE_TESTS = Path(__file__).resolve().parent / "alerts_test.yml"
PROMETHEUS_CONFIG = ROOT / "configs" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "configs" / "alertmanager.yml"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported() -> dict[str, set[str]]:
    """Every series name Prometheus sees -> the label names it carries."""
    registry = CollectorRegistry()
    groups = (DetectorMetrics(registry), DeliveryMetrics(registry), NotifyMetrics(registry))
    labels = {
        collector._name: set(collector._labelnames)
        for metrics in groups
        for collector in vars(metrics).values()
        if hasattr(collector, "_labelnames")
    }
    series: dict[str, set[str]] = {}
    for family in registry.collect():
        for suffix in SUFFIXES[family.type]:
            series[family.name + suffix] = labels.get(family.name, set())
    series["stream_detector_model_info"] = {"model_version", "technique", "scorer"}
    return series


def scrape_jobs() -> set[str]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return {job["job_name"] for job in config["scrape_configs"]}


@pytest.fixture(scope="module")
def all_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture(scope="module")
def rules(all_rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerting rules (not the recording rules)."""
    return [rule for rule in all_rules if "alert" in rule]


def test_recording_rules_are_settings_the_alerts_use(all_rules: list[dict[str, Any]]) -> None:
    records = {rule["record"]: rule["expr"] for rule in all_rules if "record" in rule}
    assert set(records) == {
        "stream_detector:quality_alert_factor",
        "stream_detector:quality_min_labels",
    }
    for expr in records.values():
        assert re.fullmatch(r"vector\([0-9.]+\)", expr), expr
    used = {name for rule in all_rules for name in re.findall(r"stream_detector:\w+", rule["expr"])}
    assert used == set(records)
    # Recording rules come first: the alerts of the same evaluation see their values.
    kinds = ["record" if "record" in rule else "alert" for rule in all_rules]
    assert kinds == sorted(kinds, key=lambda kind: kind == "alert")


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
    jobs = scrape_jobs()
    for rule in rules:
        scraped = re.findall(r'\bup\{job="([^"]+)"\}', rule["expr"])
        assert set(scraped) <= jobs, f"{rule['alert']} names a job Prometheus does not scrape"
        if scraped:
            continue
        used = set(re.findall(r"\bstream_detector_\w+", rule["expr"]))
        assert used, f"{rule['alert']} names no stream-detector metric"
        unknown = used - set(series)
        assert not unknown, f"{rule['alert']} names metrics the code does not export: {unknown}"
        available = {"job", "instance"}.union(*(series[name] for name in used))  # target labels
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
        "stream_detector_ready",
        "stream_detector_broker_unreachable_seconds",
        "stream_detector_publish_retries_total",
        "stream_detector_alert_precision",
        "stream_detector_validation_precision",
        "stream_detector_alert_recall",
        "stream_detector_validation_recall",
        "stream_detector_notify_dead_letters_total",
        "stream_detector_notify_failures_total",
    } <= used
    scraped = {job for rule in rules for job in re.findall(r'\bup\{job="([^"]+)"\}', rule["expr"])}
    assert scraped == scrape_jobs()  # every scraped process has a "down" rule


def test_every_alert_has_a_promtool_case_where_it_fires(rules: list[dict[str, Any]]) -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())
    assert cases["rule_files"] == [os.path.relpath(ALERTS, RULE_TESTS.parent)]
    firing = {
        test["alertname"]
        for case in cases["tests"]
        for test in case.get("alert_rule_test", [])
        if test["exp_alerts"]
    }
    assert firing == {rule["alert"] for rule in rules}


def required_tool(name: str, package: str) -> str:
    """The tool's path; skip when it is missing here, fail when it is missing in CI."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing in CI: .ci/run installs Debian's {package} package")
        pytest.skip(f"{name} is not installed (apt-get install --no-install-recommends {package})")
    return found


def test_promtool_passes_every_rule_test() -> None:
    promtool = required_tool("promtool", "prometheus")
    for command in (["check", "rules", str(ALERTS)], ["test", "rules", str(RULE_TESTS)]):
        result = subprocess.run(
            [promtool, *command], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = required_tool("amtool", "prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_every_severity_the_rules_use(rules: list[dict[str, Any]]) -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = config["route"].get("routes", [])
    assert config["route"]["receiver"] in receivers
    routed: set[str] = set()
    for route in routes:
        assert route["receiver"] in receivers
        for matcher in route["matchers"]:
            if match := re.fullmatch(r'severity(=~?)"([^"]+)"', matcher):
                routed |= set(match[2].split("|"))
    assert {rule["labels"]["severity"] for rule in rules} <= routed
    alerts = {rule["alert"] for rule in rules}
    for inhibit in config.get("inhibit_rules", []):
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            names = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            assert names, matcher
            assert set(names[1].split("|")) <= alerts, matcher
