"""The state store the detector settings ask for (``state:`` in ``configs/detector.yaml``)."""

from __future__ import annotations

from stream_detector.config import StateSettings
from stream_detector.features import FeatureSpec
from stream_detector.state import MemoryStore, RedisStore, StateStore

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
    return RedisStore(
        settings.redis_url.get_secret_value(),
        key_prefix=f"{settings.key_prefix}|",
        timeout_s=settings.timeout_s,
    )
