"""A live simulated stream through the embedded broker: events first, labels after their delay."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from stream_detector.devbroker import EmbeddedBroker
from stream_detector.errors import ConfigError
from stream_detector.simulate import TransactionSimulator
from stream_detector.simulate.command import SimulateCommand
from stream_detector.simulate.producer import produce_stream

COUNT = 400


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    SimulateCommand().add_arguments(parser)
    return parser.parse_args(argv)


def test_simulate_streams_every_event_then_its_label(
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    consume_all: Callable[..., list[Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    events_topic, labels_topic = topic_factory(prefix="events"), topic_factory(prefix="labels")
    args = _args(
        "--bootstrap-servers", broker.bootstrap_servers, "--topic", events_topic,
        "--labels-topic", labels_topic, "--count", str(COUNT), "--seed", "5",
        "--label-delay", "0.2", "--start-day", "30", "--clock", "simulated",
    )  # fmt: skip
    assert SimulateCommand().run(args) == 0

    expected = TransactionSimulator.from_preset("demo", random_state=5).take(COUNT, start_day=30)
    events = consume_all(events_topic, COUNT, settle=0.5)
    labels = consume_all(labels_topic, COUNT, settle=0.5)
    assert len(events) == len(labels) == COUNT
    assert [r.key for r in events] == [e.encode() for e in expected["event_id"]]
    assert [orjson.loads(r.value) for r in events] == list(expected.iter_events())
    assert [r.key for r in labels] == [r.key for r in events]
    assert [orjson.loads(r.value) for r in labels] == list(expected.iter_labels(delay_ms=200))
    assert expected.n_frauds > 0
    err = capsys.readouterr().err
    assert err.startswith(
        f"simulate: sent {COUNT} events to {events_topic!r} and {COUNT} labels to "
        f"{labels_topic!r} on {broker.bootstrap_servers} ({expected.n_frauds} frauds, "
        f"{expected.fraud_rate:.2%}) in "
    )
    assert err.endswith(" s\n")
    assert err.count("\n") == 1


def test_wall_clock_stamps_events_when_sent_and_labels_after_the_delay(
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    consume_all: Callable[..., list[Any]],
) -> None:
    events_topic, labels_topic = topic_factory(), topic_factory()
    tx = TransactionSimulator.from_preset("demo", random_state=1).take(30)
    progress: list[tuple[int, int]] = []
    report = produce_stream(
        tx,
        client_kwargs={"bootstrap_servers": broker.bootstrap_servers},
        topic=events_topic,
        labels_topic=labels_topic,
        label_delay=0.3,
        rate=300.0,
        clock="wall",
        progress=lambda sent, total: progress.append((sent, total)),
    )
    assert (report.events, report.labels, report.frauds) == (30, 30, tx.n_frauds)
    assert progress == [(i, 30) for i in range(1, 31)]
    events = [orjson.loads(r.value) for r in consume_all(events_topic, 30, settle=0.3)]
    labels = [orjson.loads(r.value) for r in consume_all(labels_topic, 30, settle=0.3)]
    sent_at = {e["event_id"]: e["timestamp"] for e in events}
    assert [e["event_id"] for e in events] == tx["event_id"].tolist()
    stamps = list(sent_at.values())
    assert stamps == sorted(stamps)
    assert min(sent_at.values()) > tx["timestamp"].max()  # the wall clock, not 2018
    assert [label["label"] for label in labels] == tx["is_fraud"].tolist()
    assert all(label["timestamp"] >= sent_at[label["event_id"]] + 300 for label in labels)


def test_no_labels_topic_sends_events_only(
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    consume_all: Callable[..., list[Any]],
) -> None:
    topic = topic_factory()
    tx = TransactionSimulator.from_preset("demo", random_state=2).take(25)
    report = produce_stream(
        tx, client_kwargs={"bootstrap_servers": broker.bootstrap_servers}, topic=topic,
        labels_topic=None, label_delay=60.0,
    )  # fmt: skip
    assert (report.events, report.labels) == (25, 0)
    assert [r.key.decode() for r in consume_all(topic, 25)] == tx["event_id"].tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": -1.0}, "rate must be >= 0 events per second; got -1.0"),
     ({"label_delay": -2.0}, "label delay must be >= 0 seconds; got -2.0")],
)  # fmt: skip
def test_bad_rate_or_delay_is_a_config_error(kwargs: dict[str, float], message: str) -> None:
    tx = TransactionSimulator.from_preset("demo", random_state=2).take(1)
    with pytest.raises(ConfigError, match=message):
        produce_stream(tx, client_kwargs={"bootstrap_servers": "127.0.0.1:1"}, **kwargs)  # type: ignore[arg-type]
