"""Apache Kafka as a development broker: the pinned version, the tool checks, the lifecycle."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stream_detector.devbroker import ApacheKafkaBroker, apache_kafka_unavailable, kafka_version
from stream_detector.devbroker import apache as apache_module
from stream_detector.devbroker.apache import KAFKA_POM, fetch_kafka, java_version
from stream_detector.errors import BrokerError

from .conftest import accepts


def _tool(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def _fake_java(tmp_path: Path, version: str) -> str:
    body = f"echo 'openjdk version \"{version}\" 2025-04-15' >&2\n"
    return str(_tool(tmp_path / f"java-{version}", "java", body))


def test_the_pinned_version_is_a_kafka_4_release() -> None:
    version = kafka_version()
    assert version.split(".")[0] == "4"
    root = ET.parse(KAFKA_POM).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    dependency = root.find("m:dependencies/m:dependency", ns)
    assert dependency is not None
    assert dependency.findtext("m:groupId", namespaces=ns) == "org.apache.kafka"
    assert dependency.findtext("m:artifactId", namespaces=ns) == "kafka_2.13"
    assert dependency.findtext("m:version", namespaces=ns) == "${kafka.version}"


@pytest.mark.parametrize(("printed", "major"), [("17.0.15", 17), ("25", 25), ("1.8.0_402", 8)])
def test_java_version_reads_the_major_version(tmp_path: Path, printed: str, major: int) -> None:
    assert java_version(_fake_java(tmp_path, printed)) == major


def test_a_missing_or_old_java_is_named(tmp_path: Path) -> None:
    missing = apache_kafka_unavailable(java=str(tmp_path / "no-java"))
    assert missing is not None
    assert "needs Java 17 or newer" in missing
    assert "not installed" in missing
    old = apache_kafka_unavailable(java=_fake_java(tmp_path, "11.0.2"))
    assert old == f"Apache Kafka needs Java 17 or newer; `{tmp_path}/java-11.0.2/java` is Java 11"


def test_missing_maven_matters_only_until_the_jars_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = _fake_java(tmp_path, "17.0.1")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cache = tmp_path / "cache"
    reason = apache_kafka_unavailable(java=java, cache_dir=cache)
    assert reason is not None
    assert "Maven (`mvn`) is not installed" in reason
    with pytest.raises(BrokerError, match=r"Maven .* is not installed"):
        fetch_kafka(cache)
    cache.mkdir()
    (cache / ".complete").write_bytes(KAFKA_POM.read_bytes())
    assert apache_kafka_unavailable(java=java, cache_dir=cache) is None
    assert fetch_kafka(cache) == cache


def test_a_failing_maven_is_a_broker_error_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    _tool(tools, "mvn", "echo '[ERROR] Could not resolve org.apache.kafka:kafka_2.13'\nexit 1\n")
    monkeypatch.setenv("PATH", str(tools))
    cache = tmp_path / "cache" / "kafka-x"
    with pytest.raises(BrokerError, match=r"exit code 1\): .*Could not resolve"):
        fetch_kafka(cache)
    assert not cache.exists()
    assert list(cache.parent.iterdir()) == []  # the staging directory is removed


def test_maven_output_becomes_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "bin"
    # A stand-in for Maven that "copies" one jar where it is told to.
    _tool(
        tools,
        "mvn",
        """
        for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#*=}";; esac; done
        /bin/mkdir -p "$out" && /usr/bin/touch "$out/kafka_2.13.jar"
        """,
    )
    monkeypatch.setenv("PATH", str(tools))
    cache = tmp_path / "cache" / "kafka-x"
    assert fetch_kafka(cache) == cache
    assert (cache / "lib" / "kafka_2.13.jar").is_file()
    assert (cache / ".complete").read_bytes() == KAFKA_POM.read_bytes()
    # A changed kafka-pom.xml (another version) is fetched again, over the old cache.
    newer = tmp_path / "kafka-pom.xml"
    newer.write_bytes(
        KAFKA_POM.read_bytes().replace(b"<version>1</version>", b"<version>2</version>")
    )
    monkeypatch.setattr(apache_module, "KAFKA_POM", newer)
    (cache / "lib" / "kafka_2.13.jar").unlink()
    assert fetch_kafka(cache) == cache
    assert (cache / "lib" / "kafka_2.13.jar").is_file()
    assert (cache / ".complete").read_bytes() == newer.read_bytes()


def test_settings_suit_a_one_node_cluster() -> None:
    properties = ApacheKafkaBroker(port=19092).server_properties(
        controller_port=19093, log_dir="/data"
    )
    pairs = dict(line.split("=", 1) for line in properties.splitlines())
    assert pairs["process.roles"] == "broker,controller"
    assert pairs["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert pairs["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "min.insync.replicas",
    ):
        assert pairs[key] == "1"
    assert pairs["group.initial.rebalance.delay.ms"] == "0"
    assert pairs["log.dirs"] == "/data"


def test_the_command_exits_2_with_one_line_without_java(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no java on the PATH
    done = subprocess.run(
        [sys.executable, "-m", "stream_detector", "broker", "--kind", "apache"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Apache Kafka needs Java 17 or newer" in done.stderr


@pytest.mark.integration
def test_start_round_trip_and_stop_leave_nothing_behind() -> None:
    reason = apache_kafka_unavailable()
    if reason is not None:
        pytest.skip(reason)
    from kafka.admin import KafkaAdminClient

    broker = ApacheKafkaBroker()
    with broker:
        port = broker.port
        workdir = broker._workdir
        assert workdir is not None
        assert workdir.is_dir()
        broker.create_topics({"apache-in": 3})
        broker.create_topics({"apache-in": 5})  # an existing topic is kept as it is
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            topics = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
            assert admin.describe_cluster()["cluster_id"] == broker._cluster_id
        finally:
            admin.close()
        assert topics["apache-in"] == 3
    assert not broker.running
    assert not accepts(port)
    assert not workdir.exists()


@pytest.mark.integration
def test_a_given_port_in_use_is_an_error(tmp_path: Path) -> None:
    reason = apache_kafka_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clash = ApacheKafkaBroker(port=port, startup_timeout=120)
        with pytest.raises(BrokerError, match=rf"port {port} .* already in use"):
            clash.start()
    assert not clash.running


def test_a_cluster_id_never_starts_like_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # uuid4 bytes whose base64 starts with "-" (0xf8 = 0b111110..: index 62, "-"), then not.
    draws = iter([bytes([0xF8]) + bytes(15), bytes(16)])

    class FakeUuid:
        @property
        def bytes(self) -> bytes:
            return next(draws)

    monkeypatch.setattr(apache_module.uuid, "uuid4", FakeUuid)
    assert apache_module._cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
