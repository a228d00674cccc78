"""The ``stream-detector broker`` command: its topic spec, and the command in its own process."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_detector.devbroker import DEFAULT_TOPICS, format_topic_spec, parse_topic_spec
from stream_detector.errors import ConfigError

from .conftest import accepts, partitions_of

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
        format_topic_spec(DEFAULT_TOPICS)
        == "events:4,labels:1,decisions:4,alerts:4,events.dlq:1,alerts.notify.dlq:1"
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
        partitions = partitions_of(address)
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
    assert not accepts(int(address.rsplit(":", 1)[1]))


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
