"""Pick a development broker by kind: ``make_broker("tansu")`` or ``make_broker("apache")``."""

from __future__ import annotations

from typing import get_args

from stream_detector.devbroker.apache import ApacheKafkaBroker
from stream_detector.devbroker.base import BrokerKind, DevBroker
from stream_detector.devbroker.embedded import EmbeddedBroker
from stream_detector.errors import ConfigError

__all__ = ["BROKER_KINDS", "make_broker"]

#: Every development broker kind, the default first.
BROKER_KINDS: tuple[BrokerKind, ...] = get_args(BrokerKind)
_CLASSES: dict[str, type[EmbeddedBroker] | type[ApacheKafkaBroker]] = {
    EmbeddedBroker.kind: EmbeddedBroker,
    ApacheKafkaBroker.kind: ApacheKafkaBroker,
}


def make_broker(
    kind: str = "tansu", *, port: int | None = None, startup_timeout: float | None = None
) -> DevBroker:
    """A development broker of ``kind``, not started yet.

    Examples
    --------
    >>> make_broker("apache", port=19092)
    ApacheKafkaBroker(127.0.0.1:19092, running=False)
    >>> make_broker("redpanda")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: broker kind must be one of 'tansu', 'apache'; got 'redpanda'
    """
    cls = _CLASSES.get(kind)
    if cls is None:
        raise ConfigError(
            f"broker kind must be one of {', '.join(map(repr, BROKER_KINDS))}; got {kind!r}"
        )
    if startup_timeout is None:
        return cls(port=port)
    return cls(port=port, startup_timeout=startup_timeout)
