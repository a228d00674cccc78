from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from stream_detector.config import DetectorSettings
from stream_detector.kafka.at_least_once import AtLeastOnceDelivery
from stream_detector.kafka.factory import make_delivery
from stream_detector.kafka.publish import OutRecord
from stream_detector.kafka.transactions import ExactlyOnceDelivery, default_transactional_id


def _records(*ids: str) -> list[OutRecord]:
    out = [OutRecord("decision", "d", i.encode(), b"{}", event_id=i) for i in ids]
    return out + [OutRecord("alert", "a", i.encode(), b"{}", event_id=i) for i in ids]


def test_the_guarantee_setting_picks_the_delivery() -> None:
    stop = threading.Event()
    alo = make_delivery(DetectorSettings.load(), registry=CollectorRegistry(), stop=stop)
    eos = make_delivery(
        DetectorSettings.load(overrides={"processing_guarantee": "exactly_once"}),
        registry=CollectorRegistry(),
        stop=stop,
    )
    assert type(alo) is AtLeastOnceDelivery
    assert type(eos) is ExactlyOnceDelivery
    assert eos.consumer_overrides() == {"isolation_level": "read_committed"}
    assert alo.consumer_overrides() == {}
    assert eos.transactional_id == default_transactional_id("stream-detector")


def test_replayed_and_repeated_alerts_are_dropped_and_counted_decisions_kept() -> None:
    registry = CollectorRegistry()
    delivery = make_delivery(DetectorSettings.load(), registry=registry, stop=threading.Event())
    delivery._remember_alerts(_records("e1"))
    kept = delivery._first_alerts(_records("e1", "e2", "e2"))
    assert [(r.kind, r.event_id) for r in kept] == [
        ("decision", "e1"),
        ("decision", "e2"),
        ("decision", "e2"),
        ("alert", "e2"),
    ]
    assert registry.get_sample_value("stream_detector_alerts_suppressed_total") == 2.0


def test_dedupe_can_be_turned_off() -> None:
    settings = DetectorSettings.load(overrides={"dedupe": {"enabled": False}})
    delivery = make_delivery(settings, registry=CollectorRegistry(), stop=threading.Event())
    delivery._remember_alerts(_records("e1"))
    assert len(delivery._first_alerts(_records("e1", "e1"))) == 4


def test_readiness_follows_the_outage_clock() -> None:
    delivery = make_delivery(
        DetectorSettings.load(), registry=CollectorRegistry(), stop=threading.Event()
    )
    assert delivery.healthy
    delivery.clock.failed("publishing", "refused")
    assert not delivery.healthy
    delivery.clock.ok()
    assert delivery.healthy
