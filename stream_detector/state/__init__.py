"""State stores: the history per entity that the feature engine keeps between batches.

:class:`MemoryStore` (one process) and :class:`RedisStore` (survives restarts, shared by the
replicas of a consumer group) follow the contract of :class:`StateStore`.
"""

from __future__ import annotations

from stream_detector.state.base import (
    HEADER_BYTES,
    Append,
    Appends,
    StateRead,
    StateStore,
    StoreCounters,
    merge_rows,
)
from stream_detector.state.memory import MemoryStore
from stream_detector.state.redis import RedisStore

__all__ = [
    "HEADER_BYTES",
    "Append",
    "Appends",
    "MemoryStore",
    "RedisStore",
    "StateRead",
    "StateStore",
    "StoreCounters",
    "merge_rows",
]
