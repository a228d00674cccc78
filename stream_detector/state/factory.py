"""The state store the detector settings ask for (``state:`` in ``configs/detector.yaml``)."""

from __future__ import annotations

from stream_detector.config import StateSettings
from stream_detector.features import FeatureSpec
from stream_detector.state.base import StateStore
from stream_detector.state.memory import MemoryStore

__all__ = ["make_store"]


def make_store(settings: StateSettings, spec: FeatureSpec) -> StateStore:
    """A :class:`~stream_detector.state.MemoryStore`, or a Redis store for ``store: redis``
    whose keys start with ``key_prefix`` (the spec's digest follows, so state written for one
    spec is never read for another).

    Examples
    --------
    >>> spec = FeatureSpec(numeric=["amount"])
    >>> type(make_store(StateSettings(), spec)).__name__
    'MemoryStore'
    """
    if settings.store == "memory":
        return MemoryStore()
    from stream_detector.state.redis import RedisStore

    return RedisStore(
        settings.redis_url.get_secret_value(),
        prefix=settings.key_prefix,
        socket_timeout_s=settings.socket_timeout_s,
        connect_timeout_s=settings.connect_timeout_s,
    )
