"""Apache Kafka as a development broker: one KRaft node (broker and controller in one JVM).

:class:`ApacheKafkaBroker` runs the Apache Kafka version pinned in ``kafka-pom.xml`` on
``127.0.0.1``, with settings for tests: internal topics with one replica, no initial rebalance
delay, session timeouts down to one second. Its jars come from Maven Central through
``mvn dependency:copy-dependencies`` the first time and are kept in a cache directory
(``~/.cache/stream-detector/kafka-<version>/``) for every later start. It needs Java 17 or newer,
and Maven until the jars are cached. Storage is formatted in a temporary directory, removed when
the broker stops: every start is an empty cluster, as with the embedded broker.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import ClassVar

from stream_detector.devbroker.base import BrokerKind, DevBroker, free_port
from stream_detector.errors import BrokerError

__all__ = [
    "KAFKA_POM",
    "ApacheKafkaBroker",
    "apache_kafka_unavailable",
    "fetch_kafka",
    "java_version",
    "kafka_version",
]

#: The Maven project naming the Kafka broker artefact and its pinned version.
KAFKA_POM = Path(__file__).with_name("kafka-pom.xml")
MIN_JAVA = 17
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')
_COMPLETE = ".complete"
_JVM_OPTIONS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
# Warnings and errors on the console (the broker's log file); Kafka's INFO chatter is dropped.
_LOG4J2 = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
"""
_TAKEN = re.compile(r"(?i)address already in use|BindException")


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """The Apache Kafka version pinned in the project's ``kafka-pom.xml``.

    Examples
    --------
    >>> kafka_version().split(".")[0]
    '4'
    """
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{pom} pins no <kafka.version> property")
    return (node.text or "").strip()


def default_cache_dir(version: str | None = None) -> Path:
    """``~/.cache/stream-detector/kafka-<version>``: where the broker's jars are kept."""
    return Path.home() / ".cache" / "stream-detector" / f"kafka-{version or kafka_version()}"


@functools.cache
def java_version(java: str = "java") -> int:
    """The major version of ``java`` (``8`` for ``1.8``); 0 when it is missing or does not run.

    Examples
    --------
    >>> java_version("no-such-java")
    0
    """
    path = shutil.which(java)
    if path is None:
        return 0
    try:
        done = subprocess.run(
            [path, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = _JAVA_VERSION.search(done.stderr + done.stdout)
    if match is None:
        return 0
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def _cached(cache_dir: Path) -> bool:
    """Whether ``cache_dir`` holds a complete fetch of the current ``kafka-pom.xml``."""
    try:
        return (cache_dir / _COMPLETE).read_bytes() == KAFKA_POM.read_bytes()
    except OSError:
        return False


def apache_kafka_unavailable(*, java: str = "java", cache_dir: Path | None = None) -> str | None:
    """Why Apache Kafka cannot run here (one line), or ``None`` when it can.

    It can when Java 17+ runs and either the jars are cached or Maven can fetch them.

    Examples
    --------
    >>> apache_kafka_unavailable(java="no-such-java")
    'Apache Kafka needs Java 17 or newer: `no-such-java` is not installed (install a JRE 17+, e.g. apt-get install default-jre-headless)'
    """
    major = java_version(java)
    if major == 0:
        return (
            f"Apache Kafka needs Java {MIN_JAVA} or newer: `{java}` is not installed "
            f"(install a JRE {MIN_JAVA}+, e.g. apt-get install default-jre-headless)"
        )
    if major < MIN_JAVA:
        return f"Apache Kafka needs Java {MIN_JAVA} or newer; `{java}` is Java {major}"
    if not _cached(cache_dir or default_cache_dir()) and shutil.which("mvn") is None:
        return (
            f"Apache Kafka {kafka_version()} is not cached and Maven (`mvn`) is not installed "
            f"to fetch it (e.g. apt-get install maven)"
        )
    return None


def fetch_kafka(cache_dir: Path | None = None, *, timeout: float = 900.0) -> Path:
    """Return a directory holding the broker's jars, fetching them with Maven the first time.

    Parameters
    ----------
    cache_dir
        Where the jars are kept; :func:`default_cache_dir` by default.
    timeout
        Seconds Maven may take.

    Raises
    ------
    BrokerError
        If Maven is missing or fails (its last lines are in the message).
    """
    cache_dir = cache_dir or default_cache_dir()
    if _cached(cache_dir):
        return cache_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Apache Kafka {kafka_version()} is not cached in {cache_dir} and Maven (`mvn`) is "
            f"not installed to fetch it (e.g. apt-get install maven)"
        )
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}-", dir=cache_dir.parent))
    try:
        shutil.copyfile(KAFKA_POM, staging / "pom.xml")
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(staging / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / 'lib'}",
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"Maven did not fetch Apache Kafka within {timeout:g} s") from exc
        if done.returncode != 0:
            tail = " | ".join(
                line.strip() for line in (done.stdout + done.stderr).splitlines()[-5:]
            )
            raise BrokerError(
                f"Maven could not fetch Apache Kafka {kafka_version()} (exit code "
                f"{done.returncode}): {tail[-600:]}"
            )
        shutil.rmtree(staging / "target", ignore_errors=True)
        (staging / _COMPLETE).write_bytes(KAFKA_POM.read_bytes())
        if cache_dir.exists() and not _cached(cache_dir):
            shutil.rmtree(cache_dir)  # fetched for an older kafka-pom.xml
        try:
            staging.rename(cache_dir)
        except OSError:
            if not _cached(cache_dir):  # another process fetched it first otherwise
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache_dir


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding.

    Never one starting with ``-``: the storage tool would read it as an option (one id in 64
    did; Kafka's own ``Uuid.randomUuid`` draws again for the same reason).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class ApacheKafkaBroker(DevBroker):
    """An Apache Kafka broker (single-node KRaft) listening on ``127.0.0.1``.

    Parameters
    ----------
    port
        TCP port of the client listener; ``None`` picks a free one. The controller listens on
        another free port.
    startup_timeout
        Seconds to wait for storage formatting and for the broker to answer.
    java
        The ``java`` executable (17 or newer).
    cache_dir
        Where the jars are kept (:func:`default_cache_dir` by default).

    Examples
    --------
    >>> broker = ApacheKafkaBroker(port=19092)
    >>> broker.kind, broker.bootstrap_servers
    ('apache', '127.0.0.1:19092')
    >>> properties = broker.server_properties(controller_port=19093, log_dir="/data")
    >>> print(properties)  # doctest: +ELLIPSIS
    process.roles=broker,controller
    node.id=1
    controller.quorum.voters=1@127.0.0.1:19093
    listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093
    ...
    group.initial.rebalance.delay.ms=0
    ...
    """

    kind: ClassVar[BrokerKind] = "apache"
    label: ClassVar[str] = "Apache Kafka broker"

    #: Settings for a one-node cluster under test; anything else is Kafka's default.
    SETTINGS: ClassVar[dict[str, str]] = {
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "default.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "num.partitions": "1",
        # Messages up to 16 MiB, as the embedded broker takes them: the tests send 10 MB ones.
        "message.max.bytes": "16777216",
        "replica.fetch.max.bytes": "16777216",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout: float = 180.0,
        java: str = "java",
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__(port=port, startup_timeout=startup_timeout)
        self._java = java
        self._cache_dir = cache_dir
        self._classpath = ""
        self._workdir: Path | None = None
        self._controller_port = 0

    def server_properties(self, *, controller_port: int, log_dir: str) -> str:
        """The ``server.properties`` of this broker, one ``key=value`` a line."""
        listeners = f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": log_dir,
            **self.SETTINGS,
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def _prepare(self) -> None:
        reason = apache_kafka_unavailable(java=self._java, cache_dir=self._cache_dir)
        if reason is not None:
            raise BrokerError(reason)
        self._classpath = str(fetch_kafka(self._cache_dir) / "lib" / "*")

    def _port_taken(self, log: str) -> bool:
        return _TAKEN.search(log) is not None

    def _launch(self, port: int) -> None:
        self._cleanup()
        self._workdir = Path(tempfile.mkdtemp(prefix="stream-detector-kafka-"))
        self._controller_port = free_port()
        self._cluster_id = _cluster_id()
        config = self._workdir / "server.properties"
        config.write_text(
            self.server_properties(
                controller_port=self._controller_port, log_dir=str(self._workdir / "data")
            )
        )
        logging_config = self._workdir / "log4j2.properties"
        logging_config.write_text(_LOG4J2)
        java = [
            shutil.which(self._java) or self._java,
            *_JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={logging_config}",
            "-cp",
            self._classpath,
        ]
        storage = [*java, "kafka.tools.StorageTool", "format", "-t", self._cluster_id]
        try:
            done = subprocess.run(
                [*storage, "-c", str(config)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self._startup_timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerError(f"cannot format the {self.label}'s storage: {exc}") from exc
        if done.returncode != 0:
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise BrokerError(
                f"formatting the {self.label}'s storage failed (exit code {done.returncode}): "
                f"{tail[-600:]}"
            )
        env = {**os.environ, "LOG_DIR": str(self._workdir / "logs")}
        self._spawn([*java, "kafka.Kafka", str(config)], what="java", env=env)

    def _cleanup(self) -> None:
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker (a controlled shutdown, then kill) and remove its storage."""
        super().stop(timeout)
