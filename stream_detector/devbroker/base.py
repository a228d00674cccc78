"""The contract every development broker keeps, and the lifecycle they share.

A development broker is one Kafka-protocol broker process on ``127.0.0.1``, started for the
demo, the tests and manual runs: :meth:`DevBroker.start` launches it on a free or given port
and returns once it answers a metadata request with *its own* cluster id,
:meth:`DevBroker.create_topics` creates topics (replication factor 1) and :meth:`DevBroker.stop`
stops it. Subclasses say how to launch the process (:meth:`DevBroker._launch`) and how to
recognise a port someone else took first (:meth:`DevBroker._port_taken`); tests and benchmarks
take any of them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Any, ClassVar, Literal, Self

from stream_detector.errors import BrokerError, ConfigError

__all__ = ["BrokerKind", "DevBroker", "accepts_connections", "free_port", "port_free"]

#: The development brokers: ``tansu`` (embedded, the default) and ``apache`` (Apache Kafka).
BrokerKind = Literal["tansu", "apache"]

#: Kafka's error code for "topic already exists"; creating a topic twice is not an error here.
_TOPIC_ALREADY_EXISTS = 36
_PORT_ATTEMPTS = 3
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"(?i)error|panicked|\bErr\b|exception")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free at the time of the call.

    Another process may take the port before it is used; :class:`DevBroker` retries with a
    fresh port when that happens.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``host:port`` now (with SO_REUSEADDR, as a broker does).

    Examples
    --------
    >>> port_free(free_port())
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def accepts_connections(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now.

    Examples
    --------
    >>> accepts_connections(free_port())
    False
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class DevBroker(ABC):
    """A Kafka-protocol broker process on ``127.0.0.1`` (development and tests only).

    Parameters
    ----------
    port
        TCP port to listen on; ``None`` picks a free one (and retries with another if it is
        taken in the meantime).
    startup_timeout
        Seconds to wait for the broker to answer a metadata request before giving up.

    Attributes
    ----------
    kind : BrokerKind
        Which broker this is.
    port : int
        The port in use (known once the broker is started, or given).
    bootstrap_servers : str
        ``"127.0.0.1:PORT"``, for any Kafka client.
    """

    kind: ClassVar[BrokerKind]
    #: What error messages call this broker.
    label: ClassVar[str] = "broker"

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._port: int | None = port
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._cluster_id = ""

    # -- public surface ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the broker listens on."""
        if self._port is None:
            raise BrokerError(f"the {self.label} has no port yet; call start() first")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``HOST:PORT`` to give Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the broker and wait until it answers metadata requests.

        Returns
        -------
        DevBroker
            ``self``, so ``broker = EmbeddedBroker().start()`` works.

        Raises
        ------
        BrokerError
            If the broker cannot be found or run, exits early, or does not answer within
            ``startup_timeout`` seconds; the message ends with the last lines it logged.
        """
        if self._process is not None:
            raise BrokerError(f"the {self.label} is already running on {self.bootstrap_servers}")
        if self._requested_port is not None and not port_free(self._requested_port):
            raise BrokerError(
                f"port {self._requested_port} on 127.0.0.1 is already in use (another broker?); "
                f"stop what holds it or choose another port"
            )
        self._prepare()
        attempt = 0
        while True:
            attempt += 1
            port = self._requested_port if self._requested_port is not None else self._pick_port()
            try:
                self._port = port
                self._launch(port)
                self._wait_ready()
            except BrokerError:
                taken = self._port_taken(self._log_text())
                self.stop()
                if taken and self._requested_port is None and attempt < _PORT_ATTEMPTS:
                    continue  # another process took the free port first: try a new one
                raise
            except BaseException:  # Ctrl-C while waiting: never leave the process behind
                self.stop()
                raise
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (terminate, wait, then kill); safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._cleanup()
        if self._requested_port is None:
            self._port = None

    def create_topics(
        self, names_and_partitions: Mapping[str, int], *, timeout: float = 10.0
    ) -> None:
        """Create topics (replication factor 1); topics that already exist are left alone.

        Parameters
        ----------
        names_and_partitions
            Topic name -> number of partitions (>= 1).
        timeout
            Seconds to wait for the broker.

        Raises
        ------
        ConfigError
            If a partition count is not a positive integer.
        BrokerError
            If the broker refuses to create a topic or cannot be reached.
        """
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError

        for name, partitions in names_and_partitions.items():
            if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
                raise ConfigError(
                    f"topic {name!r} needs a positive number of partitions; got {partitions!r}"
                )
        if not names_and_partitions:
            return
        request = {
            name: {"num_partitions": partitions, "replication_factor": 1}
            for name, partitions in names_and_partitions.items()
        }
        admin: Any = None
        try:
            admin = KafkaAdminClient(**self._client_kwargs(timeout))
            response = admin.create_topics(request, raise_errors=False)
            refused = [
                f"{topic['name']} ({topic['error_code']}: {topic['error_message']})"
                for topic in response["topics"]
                if topic["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if refused:
                raise BrokerError(
                    f"broker {self.bootstrap_servers} refused to create topics: {', '.join(refused)}"
                )
            admin.wait_for_topics(list(request), timeout_ms=int(timeout * 1000))
        except KafkaError as exc:
            raise BrokerError(
                f"cannot create topics {sorted(request)} on {self.bootstrap_servers}: {exc}"
            ) from exc
        finally:
            if admin is not None:
                admin.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port is not None else "not started"
        return f"{type(self).__name__}({where}, running={self.running})"

    # -- what a subclass provides ----------------------------------------------------------

    def _prepare(self) -> None:
        """Check (and fetch) what the broker needs before the first launch; raise BrokerError."""
        return None

    @abstractmethod
    def _launch(self, port: int) -> None:
        """Start the process listening on ``port``; set ``_cluster_id`` and call _spawn."""

    @abstractmethod
    def _port_taken(self, log: str) -> bool:
        """Whether the broker's log says its port was already in use."""

    def _pick_port(self) -> int:
        return free_port()

    def _cleanup(self) -> None:
        """Remove what the last launch left on disk."""
        return None

    # -- shared machinery ------------------------------------------------------------------

    def _spawn(
        self, command: list[str], *, what: str, env: Mapping[str, str] | None = None
    ) -> None:
        # The broker's output goes to a file, not a pipe: nobody drains a pipe while the broker
        # runs, and a full one would block it. stop() closes it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
            )
        except OSError as exc:
            raise BrokerError(f"cannot run {what} {command[0]!r}: {exc}") from exc

    def _client_kwargs(self, timeout: float) -> dict[str, Any]:
        millis = max(int(timeout * 1000), 100)
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": millis,
            "bootstrap_timeout_ms": millis,
        }

    def _wait_ready(self) -> None:
        """Wait for the port to accept connections, then for a metadata answer from *our* broker."""
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self._startup_timeout
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"the {self.label} on {self.bootstrap_servers} did not answer within "
                    f"{self._startup_timeout:g} s{self._log_suffix()}"
                )
            if accepts_connections(self.port):
                admin: Any = None
                try:
                    admin = KafkaAdminClient(**self._client_kwargs(min(remaining, 5.0)))
                    cluster_id = admin.describe_cluster().get("cluster_id")
                except KafkaError:
                    cluster_id = None
                finally:
                    if admin is not None:
                        admin.close()
                # The port may belong to another process; only our own cluster id counts.
                if cluster_id == self._cluster_id:
                    self._check_alive()
                    return
            time.sleep(0.05)

    def _check_alive(self) -> None:
        process = self._process
        if process is not None and process.poll() is not None:
            suffix = self._log_suffix()
            if self._port_taken(suffix):
                raise BrokerError(
                    f"port {self.port} on 127.0.0.1 is already in use (another broker?): the "
                    f"{self.label} exited with code {process.returncode}{suffix}"
                )
            raise BrokerError(
                f"the {self.label} exited with code {process.returncode} while starting on "
                f"{self.bootstrap_servers}{suffix}"
            )

    def _log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = _ANSI_ESCAPE.sub("", self._log.read().decode("utf-8", errors="replace"))
        self._log.seek(0, os.SEEK_END)
        return text

    def _log_tail(self, lines: int = 5, limit: int = 600) -> str:
        kept = [line.strip() for line in self._log_text().splitlines() if line.strip()]
        # A crash ends with a backtrace hint; the error and panic lines say what happened.
        errors = [line for line in kept if _ERROR_LINE.search(line)]
        return " | ".join((errors or kept)[-lines:])[-limit:]

    def _log_suffix(self) -> str:
        tail = self._log_tail()
        return f"; broker log: {tail}" if tail else "; the broker logged nothing"
