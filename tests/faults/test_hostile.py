"""Scenario 6: hostile input, interleaved with valid events, through the running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from stream_detector.events import InvalidReason
from stream_detector.testing.faults.checker import Sent, check
from stream_detector.testing.faults.harness import produce
from stream_detector.testing.faults.hostile import Hostile, HostileService, hostile_messages

pytestmark = pytest.mark.integration

MAX_MESSAGE_BYTES = 65_536


@pytest.fixture(scope="module")
def service(broker: Any, fault_bundle: Path) -> Iterator[HostileService]:
    running = HostileService(broker, fault_bundle, max_message_bytes=MAX_MESSAGE_BYTES).start()
    assert running.detector.is_ready(), "the service did not get its partitions"
    yield running
    running.stop()


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking would replay against the broker
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(
    batch=st.lists(hostile_messages(max_message_bytes=MAX_MESSAGE_BYTES), min_size=1, max_size=25)
)
def test_hostile_messages_are_dead_lettered_and_valid_neighbours_unaffected(
    service: HostileService, batch: list[Hostile]
) -> None:
    report = service.feed(batch)
    assert service.alive, f"the service stopped: {service.error!r}"
    report.assert_ok(exactly_once_decisions=True)
    assert report.valid == sum(h.valid for h in batch) + 2 * len(batch)
    assert report.invalid == sum(not h.valid for h in batch)


def test_finite_extremes_keep_the_service_running(service: HostileService) -> None:
    # Finite numbers at the float limit are valid events: everything downstream of the
    # model (explanations, drift statistics) must cope with them.
    big = 1.7976931348623157e308
    batch = [
        Hostile(
            f'{{"event_id": "@@EID@@", "amount": {a!r}, "hour_of_day": {h!r}, '
            f'"distance": {d!r}}}'.encode(),
            None,
            (a, h, d),
        )
        for a, h, d in [(big, -big, big), (-big, big, -big), (big, big, big)] * 4
    ]
    report = service.feed(batch, timeout=30)
    assert service.alive, f"the service stopped: {service.error!r}"
    report.assert_ok(exactly_once_decisions=True)


def test_ten_megabyte_message_is_dead_lettered_as_a_truncated_copy(service: HostileService) -> None:
    huge = (
        b'{"amount": 1, "hour_of_day": 2, "distance": 3, "pad": "'
        + b"x" * (10 * 1024 * 1024)
        + b'"}'
    )
    report = service.feed([Hostile(huge, "too_large")], timeout=120)
    report.assert_ok(exactly_once_decisions=True)
    dead = [
        r
        for r in service.collector.dead_letters
        if r.value and len(r.value) == service.dead_letter_max_bytes
    ]
    assert dead, "the 10 MB dead letter was not cut to dead_letter_max_bytes"
    headers = dict(dead[-1].headers)
    assert headers["error.type"] == b"too_large"
    assert headers["error.truncated"] == b"true"
    assert int(headers["source.value_bytes"]) == len(huge)


def test_metric_labels_never_carry_payload_contents(service: HostileService) -> None:
    marker = "PAYLOAD-MARKER-7f3a"
    sent = [
        Sent(
            f"{marker}-k1".encode(),
            f'{{"event_id": "{marker}-1", "entity_id": "{marker}", "amount": 1, '
            f'"hour_of_day": 2, "distance": 3, "{marker}": "{marker}"}}'.encode(),
            f"{marker}-1",
        ),
        Sent(
            f"{marker}-k2".encode(),
            f'{{"amount": "{marker}", "hour_of_day": 2, "distance": 3}}'.encode(),
            None,
            "non_numeric",
        ),
        Sent(f"{marker}-k3".encode(), f'{{"{marker}": 1}}'.encode(), None, "missing_feature"),
    ]
    produce(service.broker.bootstrap_servers, service.topics.events, sent)
    done = service.collector.wait_accounted(sent, timeout=60)
    assert done == len(sent)
    text = generate_latest(service.registry).decode()
    assert marker not in text
    allowed_reasons = set(InvalidReason.__args__)  # type: ignore[attr-defined]
    for metric in service.registry.collect():
        for sample in metric.samples:
            for name, value in sample.labels.items():
                if name == "reason":
                    assert value in allowed_reasons, (sample.name, value)
                elif name in ("partition", "label"):
                    assert value.isdigit(), (sample.name, value)
                elif name not in ("model_version", "technique", "scorer", "le", "quantile"):
                    assert marker not in value, (sample.name, name, value)
                    assert len(value) < 64, (sample.name, name, value)
    report = check(
        sent,
        [r for r in service.collector.decisions if r.key.startswith(marker.encode())],
        [r for r in service.collector.alerts if r.key.startswith(marker.encode())],
        [r for r in service.collector.dead_letters if r.key.startswith(marker.encode())],
    )
    report.assert_ok(exactly_once_decisions=True)
