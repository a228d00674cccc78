"""The Redis state store: survives restarts of ``serve`` and is shared by its replicas.

Each entity is one Redis string of fixed-width rows; appending runs server-side in one Lua
script per batch (atomic: ``APPEND``, or, when rows must be dropped, a merge that skips rows
already held and drops rows older than the cutoff; then the TTL), so two replicas appending to
the same entity never lose each other's rows, and a batch replayed after a crash adds nothing:
the engine sends only the events it did not find held when it read. (Two replicas processing
the same event at the same moment, which a consumer group does not do outside a rebalance,
could both append it until the entity's next merge.) A batch costs two round trips, each one Lua script: one to
read (every entity's rows, and the arrival sequence reserved with ``INCRBY``), one to write.
Keys are ``<key_prefix><spec digest>|...``: state written under one feature spec is never
read under another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stream_detector.errors import StateStoreError
from stream_detector.state.base import Append, Appends, StateRead, StateStore, StoreCounters

__all__ = ["RedisStore"]

# Keys travel as one argument (each ends with a NUL byte), rows as another: packing thousands of
# arguments one by one would cost the client more than the server's work. Keys are named in
# the arguments, not KEYS: the store needs a single Redis server (or one shard), not a cluster.
# Rows and keys travel as a few large arguments: packing thousands of arguments one by one
# would cost the client more than the server's work. An append is APPEND and PEXPIRE; only a
# key the client marks (rows to drop, or possibly held rows) is read back, merged and rewritten.
# Keys are named in the arguments, not KEYS: the store needs a single Redis server (or one
# shard), not a cluster.
_WRITE = r"""
local ttl, prefix, rows = ARGV[1], ARGV[2], ARGV[5]
local keys = {}
for key in string.gmatch(ARGV[3], "([^%z]+)%z") do keys[#keys + 1] = prefix .. key end
local k, pos = 1, 1
for size, nbytes, cutoff, merge in string.gmatch(ARGV[4], "(%d+),(%d+),(-?%d+),(%d)\n") do
  size, nbytes, cutoff = tonumber(size), tonumber(nbytes), tonumber(cutoff)
  local key = keys[k]
  k = k + 1
  if merge == "0" then
    if nbytes > 0 then redis.call('APPEND', key, string.sub(rows, pos, pos + nbytes - 1)) end
    redis.call('PEXPIRE', key, ttl)
  else
    local cur = redis.call('GET', key) or ''
    local parts = {cur}
    for off = pos, pos + nbytes - 1, size do
      local row = string.sub(rows, off, off + size - 1)
      local eid = string.sub(row, 17, 24)
      local label = string.byte(row, 16) >= 128
      local held = false
      local init = 1
      while #cur > 0 do
        local at = string.find(cur, eid, init, true)
        if not at then break end
        if at >= 17 and (at - 17) % size == 0 and ((string.byte(cur, at - 1) >= 128) == label) then
          held = true
          break
        end
        init = at + 1
      end
      if not held then parts[#parts + 1] = row end
    end
    local all = table.concat(parts)
    local drop = 0
    while drop < #all and struct.unpack('<i8', all, drop + 1) < cutoff do drop = drop + size end
    if drop < #all then
      redis.call('SET', key, drop > 0 and string.sub(all, drop + 1) or all, 'PX', ttl)
    elseif #cur > 0 then
      redis.call('DEL', key)
    end
  end
  pos = pos + nbytes
end
local others = {}
for key in string.gmatch(ARGV[8], "([^%z]+)%z") do others[#others + 1] = prefix .. key end
k, pos = 1, 1
for vlen in string.gmatch(ARGV[6], "(%d+)\n") do
  vlen = tonumber(vlen)
  redis.call('SET', others[k], string.sub(ARGV[7], pos, pos + vlen - 1), 'PX', ttl)
  pos = pos + vlen
  k = k + 1
end
for i = k, #others, 1000 do
  redis.call('DEL', unpack(others, i, math.min(i + 999, #others)))
end
return redis.call('DBSIZE')
"""


class RedisStore(StateStore):
    """State in a Redis server (``redis`` client from PyPI).

    Parameters
    ----------
    url
        ``redis://[:password@]host:port/db``; the password never appears in messages.
    key_prefix
        Prefix of every key, so that several detectors can share a server.
    timeout_s
        Socket connect and read timeout; a longer wait is a :class:`StateStoreError`.
    client
        An existing ``redis.Redis`` client to use instead of ``url``.

    Examples
    --------
    >>> store = RedisStore("redis://localhost:1/0", timeout_s=0.2)
    >>> store.address
    'localhost:1/0'
    >>> store.read(["k"], reserve=1)
    Traceback (most recent call last):
    ...
    stream_detector.errors.StateStoreError: state store at localhost:1/0: Error 111 connecting to localhost:1. Connection refused.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        key_prefix: str = "stream-detector|",
        timeout_s: float = 5.0,
        client: Any = None,
    ) -> None:
        import redis  # imported here: only serve with a Redis store needs it

        self.key_prefix = key_prefix
        self.counters = StoreCounters()
        self._client = client or redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        kwargs = self._client.connection_pool.connection_kwargs
        where = (
            kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        )
        self.address = f"{where}/{kwargs.get('db', 0)}"
        self._writer = self._client.register_script(_WRITE)
        self._size = 0
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def read(self, keys: Sequence[str], *, reserve: int = 0) -> StateRead:
        if not keys and not reserve:
            return StateRead(np.zeros(0, dtype=np.int64), b"", 0)
        prefix = self.key_prefix
        try:
            with self.counters.timed():
                pipe = self._client.pipeline(transaction=False)
                if keys:
                    pipe.mget([prefix + key for key in keys])
                if reserve:
                    pipe.incrby(f"{prefix}sequence", reserve)
                results = pipe.execute()
        except self._errors as exc:
            raise self._error(exc) from exc
        values: list[bytes | None] = results[0] if keys else []
        lengths = np.fromiter((-1 if v is None else len(v) for v in values), np.int64, len(values))
        first = int(results[-1]) - reserve if reserve else 0
        return StateRead(lengths, b"".join([v for v in values if v]), first)

    def write(
        self,
        appends: Sequence[Append | Appends],
        *,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
        ttl_ms: int,
    ) -> None:
        puts = puts or {}
        if not (appends or puts or deletes):
            return
        others = [*puts, *deletes]
        keys: list[str] = []
        meta: list[str] = []
        for item in appends:
            if isinstance(item, Append):
                keys.append(item.key)
                meta.append(
                    f"{item.row_size},{len(item.rows)},{item.cutoff_ms},{int(item.merge)}\n"
                )
                continue
            size = item.row_size
            keys += item.keys
            meta += [
                f"{size},{count * size},{cutoff},{int(merge)}\n"
                for count, cutoff, merge in zip(
                    item.counts, item.cutoffs_ms, item.merges, strict=True
                )
            ]
        args: list[bytes | str | int] = [
            max(int(ttl_ms), 1),
            self.key_prefix,
            _names(keys),
            "".join(meta),
            b"".join([item.rows for item in appends]),
            "".join([f"{len(value)}\n" for value in puts.values()]),
            b"".join(puts.values()),
            _names(others),
        ]
        try:
            with self.counters.timed():
                self._size = int(self._writer(args=args))
        except self._errors as exc:
            raise self._error(exc) from exc

    def size(self) -> int:
        """Keys in the Redis database, as of the last write."""
        return self._size

    def close(self) -> None:
        self._client.close()

    def _error(self, exc: BaseException) -> StateStoreError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return StateStoreError(f"state store at {self.address}: {text}")


def _names(keys: Sequence[str]) -> bytes:
    """Keys as one argument, each ending with NUL (a NUL or an empty key is replaced, so that
    hostile values cannot shift the keys that follow)."""
    text = "".join([f"{key}\0" for key in keys])
    if text.count("\0") != len(keys) or "\0\0" in text or text.startswith("\0"):
        text = "".join([f"{key.replace(chr(0), chr(0xFFFD)) or chr(0xFFFD)}\0" for key in keys])
    return text.encode()
