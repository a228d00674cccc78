"""The Redis state store: survives restarts of ``serve`` and is shared by its replicas.

Each entity is one Redis string of fixed-width rows; appending runs server-side in one Lua
script per batch (atomic: skips rows already held, drops rows older than the cutoff, sets the
TTL), so two replicas appending to the same entity never lose each other's rows and a batch
replayed after a crash adds nothing. A batch costs two round trips: one pipeline to read
(``MGET`` of its entities, ``INCRBY`` of the arrival sequence), one to write (the script).
Keys are ``<key_prefix><spec digest>|...``: state written under one feature spec is never
read under another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stream_detector.errors import StateStoreError
from stream_detector.state.base import Append, StateStore, StoreCounters

__all__ = ["RedisStore"]

_APPEND = """
local ttl = ARGV[1]
local n_appends = tonumber(ARGV[2])
local n_puts = tonumber(ARGV[3])
local a = 4
for i = 1, n_appends do
  local key = KEYS[i]
  local size = tonumber(ARGV[a])
  local rows = ARGV[a + 1]
  local cutoff = tonumber(ARGV[a + 2])
  a = a + 3
  local cur = redis.call('GET', key) or ''
  local parts = {cur}
  for off = 1, #rows, size do
    local row = string.sub(rows, off, off + size - 1)
    local eid = string.sub(row, 17, 24)
    local label = string.byte(row, 16) >= 128
    local held = false
    local init = 1
    while true do
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
  cur = table.concat(parts)
  local drop = 0
  while drop < #cur and struct.unpack('<i8', cur, drop + 1) < cutoff do drop = drop + size end
  if drop > 0 then cur = string.sub(cur, drop + 1) end
  if #cur > 0 then
    redis.call('SET', key, cur, 'PX', ttl)
  else
    redis.call('DEL', key)
  end
end
for i = n_appends + 1, n_appends + n_puts do
  redis.call('SET', KEYS[i], ARGV[a], 'PX', ttl)
  a = a + 1
end
for i = n_appends + n_puts + 1, #KEYS do
  redis.call('DEL', KEYS[i])
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
        self._script = self._client.register_script(_APPEND)
        self._sequence_key = f"{key_prefix}sequence"
        self._size = 0
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def read(self, keys: Sequence[str], *, reserve: int = 0) -> tuple[list[bytes | None], int]:
        if not keys and not reserve:
            return [], 0
        prefix = self.key_prefix
        try:
            with self.counters.timed():
                pipe = self._client.pipeline(transaction=False)
                if keys:
                    pipe.mget([prefix + key for key in keys])
                if reserve:
                    pipe.incrby(self._sequence_key, reserve)
                results = pipe.execute()
        except self._errors as exc:
            raise self._error(exc) from exc
        values: list[bytes | None] = results[0] if keys else []
        first = int(results[-1]) - reserve if reserve else 0
        return values, first

    def write(
        self,
        appends: Sequence[Append],
        *,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
        ttl_ms: int,
    ) -> None:
        puts = puts or {}
        if not (appends or puts or deletes):
            return
        prefix = self.key_prefix
        keys = [prefix + item.key for item in appends]
        keys += [prefix + key for key in puts]
        keys += [prefix + key for key in deletes]
        args: list[Any] = [max(int(ttl_ms), 1), len(appends), len(puts)]
        for item in appends:
            args += [item.row_size, item.rows, item.cutoff_ms]
        args += list(puts.values())
        try:
            with self.counters.timed():
                self._size = int(self._script(keys=keys, args=args))
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
