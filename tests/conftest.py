"""Shared fixtures: a real Kafka-compatible broker for the session, factories around it, data.

Integration tests use a development broker through the session-scoped ``broker`` fixture and
build what they need with the factories, in the style of Quix Streams' test suite::

    def test_round_trip(topic_factory, producer_factory, consume_all):
        topic = topic_factory(partitions=2)
        producer_factory().send(topic, key=b"k", value=b"v").get(timeout=10)
        assert [record.value for record in consume_all(topic, 1)] == [b"v"]

Every test that uses ``broker`` (directly or through a factory) is marked ``integration``, so
``pytest -m "not integration"`` runs the rest without starting it.

Two brokers: every integration test runs on the embedded Tansu broker; the tests of delivery
(publishing, transactions, rebalances, the fault harness, the service end to end: the paths in
``APACHE_PATHS``) run on Apache Kafka as well, as ``test_x[apache]`` beside ``test_x[tansu]``.
``--broker tansu`` or ``--broker apache`` runs one kind only. Under pytest-xdist (``make test``
runs two worker processes with ``--dist loadgroup``) each worker starts its own Tansu broker and
Redis; the Apache Kafka variants all go to one worker, so one JVM serves them. Without Java 17+
(or Maven before the jars are cached) the Apache Kafka variants are left out with one line
saying why; with ``CI`` set in the environment they fail instead.
Redis (the feature state store) is Debian's ``redis-server``, started by the session fixture
``redis_server`` on a free port without persistence; ``redis_factory(appendonly=True)`` starts
one of a test's own, with AOF, that the test can stop and restart on the same port and data.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

if TYPE_CHECKING:
    from stream_detector.devbroker import DevBroker

# kafka-python 3.0 loads its protocol schemas with importlib.resources' legacy functions,
# deprecated since Python 3.11; with warnings as errors its first import would fail.
KAFKA_PYTHON_DEPRECATIONS = (
    r"ignore:(read|open)_text is deprecated\. Use files\(\) instead:DeprecationWarning"
)

SHUTTLE_ROWS = 49_097
SHUTTLE_POSITIVES = 3_511


#: Test files and folders (relative to tests/) whose integration tests also run on Apache Kafka.
APACHE_PATHS = (
    "faults/",
    "stream_detector/kafka/",
    "stream_detector/test_service.py",
)
_TESTS = Path(__file__).resolve().parent
_APACHE_SKIPPED = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        choices=("tansu", "apache", "both"),
        default="both",
        help="brokers for the integration tests: every one on tansu, the delivery tests "
        "(APACHE_PATHS in tests/conftest.py) on apache too (default both)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KAFKA_PYTHON_DEPRECATIONS)
    config.addinivalue_line(
        "markers", "broker_kinds(*kinds): the only broker kinds an integration test runs on"
    )
    config.addinivalue_line(  # pytest-xdist's own, declared for runs without it (-p no:xdist)
        "markers", "xdist_group(name): tests that pytest-xdist runs in one worker process"
    )


def _runs_on_apache(path: Path) -> bool:
    try:
        relative = path.resolve().relative_to(_TESTS).as_posix()
    except ValueError:
        return False
    return relative.startswith(APACHE_PATHS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that needs a broker on the broker kinds chosen for its file."""
    if "broker_kind" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("--broker")
    if not _runs_on_apache(metafunc.definition.path):
        kinds = ["tansu"]
    else:
        kinds = ["tansu", "apache"] if chosen == "both" else [chosen]
    only = metafunc.definition.get_closest_marker("broker_kinds")
    if only is not None:
        kinds = [kind for kind in kinds if kind in only.args]
        if not kinds:  # not on the broker kinds chosen for this run
            metafunc.parametrize("broker_kind", [], indirect=True, scope="session")
            return
    metafunc.parametrize("broker_kind", kinds, indirect=True, scope="session")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_apache: list[pytest.Item] = []
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        if _broker_kind(item) == "apache":  # one worker runs them all: one JVM, not one each
            item.add_marker(pytest.mark.xdist_group("apache"))
            on_apache.append(item)
    if not on_apache or os.environ.get("CI"):
        return  # in CI a missing Java or Maven fails the Apache Kafka tests (broker_kind)
    from stream_detector.devbroker import apache_kafka_unavailable

    reason = apache_kafka_unavailable()
    if reason is not None:  # one line in the summary, not one skip per test
        config.stash[_APACHE_SKIPPED] = f"{len(on_apache)} Apache Kafka tests not run: {reason}"
        items[:] = [item for item in items if _broker_kind(item) != "apache"]
        config.hook.pytest_deselected(items=on_apache)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(_APACHE_SKIPPED, None)
    distributed = getattr(config.option, "dist", "no") != "no" and not hasattr(
        config, "workerinput"
    )
    if line is None and distributed and config.getoption("--broker") != "tansu":
        # Under pytest-xdist the workers collect, and their stash stays with them.
        from stream_detector.devbroker import apache_kafka_unavailable

        reason = None if os.environ.get("CI") else apache_kafka_unavailable()
        if reason is not None:
            line = f"the Apache Kafka tests were not run: {reason}"
    if line is not None:
        terminalreporter.write_line(f"SKIPPED {line}", yellow=True)


def _broker_kind(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("broker_kind")


# -- the broker and its factories -------------------------------------------------------------


@pytest.fixture(scope="session")
def broker_kind(request: pytest.FixtureRequest) -> str:
    """``"tansu"`` or ``"apache"``: the broker kind of this test's variant.

    The Apache Kafka variant is skipped when Java 17+ (or Maven, before the jars are cached) is
    missing, and fails then when ``CI`` is set: CI must run it.
    """
    kind: str = request.param
    if kind == "apache":
        from stream_detector.devbroker import apache_kafka_unavailable

        reason = apache_kafka_unavailable()
        if reason is not None and os.environ.get("CI"):
            pytest.fail(f"CI runs the tests on Apache Kafka too: {reason}", pytrace=False)
        if reason is not None:
            pytest.skip(f"Apache Kafka tests skipped: {reason}")
    return kind


@pytest.fixture(scope="session")
def broker(broker_kind: str) -> Iterator[DevBroker]:
    """One development broker of ``broker_kind`` on a free port for the whole session."""
    # Imported here, not at the top: pytest_configure must install the warning filter first.
    from stream_detector.devbroker import make_broker

    with make_broker(broker_kind) as running:
        yield running


@pytest.fixture
def topic_factory(broker: DevBroker) -> Callable[..., str]:
    """Create a uniquely named topic and return its name: ``topic_factory(partitions=4)``."""

    def factory(partitions: int = 1, *, prefix: str = "topic") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        broker.create_topics({name: partitions})
        return name

    return factory


@pytest.fixture
def producer_factory(broker: DevBroker) -> Iterator[Callable[..., Any]]:
    """Return ``factory(**overrides) -> KafkaProducer`` bound to the broker; closed at teardown."""
    from kafka import KafkaProducer

    producers: list[KafkaProducer] = []

    def factory(**overrides: Any) -> KafkaProducer:
        kwargs: dict[str, Any] = {"bootstrap_servers": broker.bootstrap_servers, "linger_ms": 5}
        kwargs.update(overrides)
        producer = KafkaProducer(**kwargs)
        producers.append(producer)
        return producer

    yield factory
    for producer in producers:
        producer.close(timeout=10)


@pytest.fixture
def consumer_factory(broker: DevBroker) -> Iterator[Callable[..., Any]]:
    """Return ``factory(*topics, **overrides) -> KafkaConsumer``; closed at teardown.

    Defaults suit both brokers: group joins take ~3 s on Tansu with these timeouts, offsets
    start at the earliest record and are committed only explicitly.
    """
    from kafka import KafkaConsumer

    consumers: list[KafkaConsumer] = []

    def factory(*topics: str, **overrides: Any) -> KafkaConsumer:
        kwargs: dict[str, Any] = {
            "bootstrap_servers": broker.bootstrap_servers,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
        }
        kwargs.update(overrides)
        consumer = KafkaConsumer(*topics, **kwargs)
        consumers.append(consumer)
        return consumer

    yield factory
    for consumer in consumers:
        consumer.close()


@pytest.fixture
def consume_all(consumer_factory: Callable[..., Any]) -> Callable[..., list[Any]]:
    """Return ``consume_all(topic, expected_count, timeout=20.0, *, settle=0.0)``.

    It reads every partition of ``topic`` from the beginning, without a consumer group, until
    at least ``expected_count`` records arrived or ``timeout`` seconds passed, then keeps
    polling ``settle`` more seconds to catch surplus records (duplicates). Records come back
    sorted by (partition, offset); fewer than expected means the timeout ran out. End offsets
    are never used: the embedded broker reports wrong high watermarks after batches.
    """
    from kafka import TopicPartition

    def consume(
        topic: str, expected_count: int, timeout: float = 20.0, *, settle: float = 0.0
    ) -> list[Any]:
        consumer = consumer_factory()
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise AssertionError(f"topic {topic!r} has no partitions after {timeout} s")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[Any] = []
        while len(records) < expected_count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
        consumer.close()
        return sorted(records, key=lambda r: (r.partition, r.offset))

    return consume


# -- Redis ------------------------------------------------------------------------------------


class RedisServer:
    """A ``redis-server`` process on a free local port, its data in a temporary directory.

    ``stop()`` ends it (``kill=True``: SIGKILL, as a crash); ``start()`` starts it again on
    the same port and directory, so with ``appendonly`` its data survives.
    """

    def __init__(self, *, appendonly: bool = False) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory = tempfile.mkdtemp(prefix="redis-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.args = [
            executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 20 s")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One ``redis-server`` without persistence for the whole session."""
    server = RedisServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Return ``factory(appendonly=False) -> RedisServer`` (started); removed at teardown."""
    servers: list[RedisServer] = []

    def factory(*, appendonly: bool = False) -> RedisServer:
        server = RedisServer(appendonly=appendonly)
        servers.append(server)
        server.start()
        return server

    yield factory
    for server in servers:
        server.remove()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so tests sharing ``redis_server`` never meet."""
    return f"test-{uuid.uuid4().hex[:12]}|"


# -- data -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shuttle_frame() -> pd.DataFrame:
    """River's Statlog Shuttle data: 49,097 rows, features ``f1``..``f9`` (float64) and the
    0/1 label ``anomaly`` (1 = one of the rare classes; 3,511 rows, 7.15%). Do not mutate it.
    """
    spec = importlib.util.find_spec("river")  # locate the file without importing all of River
    assert spec is not None, "river is not installed"
    assert spec.submodule_search_locations, "river is not a package"
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "shuttle.csv.gz"
    with gzip.open(path) as text:
        frame = pd.read_csv(text)
    features = [f"f{i}" for i in range(1, 10)]
    assert list(frame.columns) == [*features, "anomaly"], list(frame.columns)
    frame[features] = frame[features].astype("float64")
    frame["anomaly"] = frame["anomaly"].astype("int64")
    assert len(frame) == SHUTTLE_ROWS, len(frame)
    assert int(frame["anomaly"].sum()) == SHUTTLE_POSITIVES
    assert set(frame["anomaly"].unique()) == {0, 1}
    return frame


@pytest.fixture
def python_output() -> Callable[[str], str]:
    """Run ``python -c CODE`` in a fresh interpreter; return what it printed."""

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        return done.stdout

    return run
