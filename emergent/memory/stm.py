"""Short-term memory: a small contract with two backends.

``LocalSTM`` lives in the process (embedded default); ``RedisSTM`` is shared by every process on
one Redis. Both keep, per agent, a recency index and at most ``max_items`` items; an item lives
until its TTL (derived from the forgetting curve) runs out. Items pushed out by the size bound
are not dropped silently: they go to an *evicted* list that consolidation reads, so an important
memory is promoted to long-term memory rather than lost.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from emergent.memory import _codec
from emergent.memory.types import MemoryRecord
from emergent.registry import Registry


class STM(ABC):
    """Contract: put / get / scan / delete (plus ``drain_evicted`` for consolidation)."""

    name: str = "stm"

    @abstractmethod
    def put(self, rec: MemoryRecord, ttl_s: float) -> int:
        """Store or replace ``rec``; returns how many items the size bound evicted."""

    @abstractmethod
    def get(self, agent: str, id: str) -> MemoryRecord | None:
        """The live item ``id`` of ``agent``, or None."""

    @abstractmethod
    def scan(self, agent: str, limit: int | None = None) -> list[MemoryRecord]:
        """Live items of ``agent``, most recent first."""

    @abstractmethod
    def delete(self, agent: str, ids: list[str]) -> int:
        """Remove items; returns how many existed."""

    @abstractmethod
    def drain_evicted(self, agent: str) -> list[MemoryRecord]:
        """Items evicted by the size bound since the last call (consolidation reads these)."""

    @abstractmethod
    def agents(self) -> list[str]:
        """Agents with items (for dumps and consolidation)."""

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "ok": True}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# --------------------------------------------------------------------------------- local
class LocalSTM(STM):
    """In-process STM: a dict per agent in recency order, guarded by one lock.

    Unlike Redis (which drops an expired key unseen), expired items are parked with the evicted
    ones, so consolidation can still promote an important memory whose TTL ran out.
    """

    name = "local"

    def __init__(self, max_items: int = 2000, max_evicted: int = 10_000, clock: Callable[[], float] | None = None) -> None:
        self.max_items = max_items
        self.max_evicted = max_evicted
        self._now = clock or time.time
        self._items: dict[str, OrderedDict[str, tuple[float, MemoryRecord]]] = {}
        self._evicted: dict[str, deque[MemoryRecord]] = {}
        self._lock = threading.Lock()

    def put(self, rec: MemoryRecord, ttl_s: float) -> int:
        agent = rec.scope.agent
        with self._lock:
            items = self._items.setdefault(agent, OrderedDict())
            items[rec.id] = (self._now() + ttl_s, rec)
            items.move_to_end(rec.id)
            evicted = 0
            while len(items) > self.max_items:
                _, (_, old) = items.popitem(last=False)
                self._evicted.setdefault(agent, deque(maxlen=self.max_evicted)).append(old)
                evicted += 1
            return evicted

    def get(self, agent: str, id: str) -> MemoryRecord | None:
        items = self._items.get(agent)
        entry = items.get(id) if items else None
        if entry is None or entry[0] <= self._now():
            return None
        return entry[1]

    def scan(self, agent: str, limit: int | None = None) -> list[MemoryRecord]:
        now = self._now()
        with self._lock:
            items = self._items.get(agent)
            if not items:
                return []
            expired = [k for k, (exp, _) in items.items() if exp <= now]
            if expired:  # kept for consolidation to judge, like evicted items
                parked = self._evicted.setdefault(agent, deque(maxlen=self.max_evicted))
                for k in expired:
                    parked.append(items.pop(k)[1])
            out = [rec for _, rec in reversed(items.values())]
        return out[:limit] if limit else out

    def delete(self, agent: str, ids: list[str]) -> int:
        with self._lock:
            items = self._items.get(agent)
            return sum(items.pop(i, None) is not None for i in ids) if items else 0

    def drain_evicted(self, agent: str) -> list[MemoryRecord]:
        with self._lock:
            q = self._evicted.pop(agent, None)
        return list(q) if q else []

    def agents(self) -> list[str]:
        with self._lock:
            return sorted({a for a, items in self._items.items() if items}
                          | {a for a, q in self._evicted.items() if q})


# --------------------------------------------------------------------------------- redis
# One round trip per put: store the value with its TTL, index it by recency, trim the agent to
# its bound, and move what was trimmed to the evicted list (all keys share the {agent} hash tag,
# so this also works on Redis Cluster).
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if n <= 0 then return 0 end
local old = redis.call('ZPOPMIN', KEYS[2], n)
local evicted = 0
for i = 1, #old, 2 do
  local k = ARGV[6] .. old[i]
  local v = redis.call('GET', k)
  if v then
    redis.call('LPUSH', KEYS[3], v)
    redis.call('DEL', k)
    evicted = evicted + 1
  end
end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
return evicted
"""


STM_LAYOUT_VERSION = 1


class RedisSTM(STM):
    """STM on Redis, shared by every process that opens the same workspace namespace."""

    name = "redis"

    def __init__(self, client: Any, namespace: str, max_items: int = 2000, max_evicted: int = 10_000, clock: Callable[[], float] | None = None) -> None:
        self.client = client
        self.ns = namespace
        self.max_items = max_items
        self.max_evicted = max_evicted
        self._now = clock or time.time
        self._put = client.register_script(_PUT)
        self._prefixes: dict[str, tuple[str, str, str]] = {}
        self._check_layout()

    def _check_layout(self) -> None:
        """Record the key layout's version once per namespace; refuse a newer one."""
        import redis

        key = f"{self.ns}:stm:layout"
        try:
            self.client.set(key, STM_LAYOUT_VERSION, nx=True)
            found = int(self.client.get(key) or STM_LAYOUT_VERSION)
        except (redis.ConnectionError, redis.TimeoutError):
            return  # unreachable now: every call will say so (or fall back, if the caller opted in)
        if found > STM_LAYOUT_VERSION:
            from emergent.errors import ConfigError

            raise ConfigError(
                f"Redis STM under {self.ns} uses key layout {found}, newer than this emergent ({STM_LAYOUT_VERSION})",
                hint="upgrade emergent, or point EMERGENT_REDIS_URL at another database",
            )

    def _prefix(self, agent: str) -> str:
        return f"{self.ns}:stm:{{{agent}}}:"

    def _keys(self, agent: str) -> tuple[str, str, str]:
        keys = self._prefixes.get(agent)
        if keys is None:
            p = self._prefix(agent)
            keys = self._prefixes[agent] = (p + "i:", p + "recent", p + "evicted")
        return keys

    def put(self, rec: MemoryRecord, ttl_s: float) -> int:
        item, recent, evicted = self._keys(rec.scope.agent)
        args = (_codec.encode(rec), max(1, int(ttl_s * 1000)), self._now(), rec.id, self.max_items, item,
                self.max_evicted)
        try:  # EVALSHA directly: Script.__call__ adds list building and a type check per call
            return int(self.client.evalsha(self._put.sha, 3, item + rec.id, recent, evicted, *args))
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            return int(self._put(keys=[item + rec.id, recent, evicted], args=list(args)))

    def get(self, agent: str, id: str) -> MemoryRecord | None:
        raw = self.client.get(self._prefix(agent) + "i:" + id)
        return None if raw is None else _codec.decode(raw)

    def scan(self, agent: str, limit: int | None = None) -> list[MemoryRecord]:
        p = self._prefix(agent)
        ids = [i.decode() for i in self.client.zrevrange(p + "recent", 0, (limit or 0) - 1)]
        if not ids:
            return []
        values = self.client.mget([p + "i:" + i for i in ids])
        gone = [i for i, v in zip(ids, values, strict=True) if v is None]
        if gone:  # expired by TTL: drop them from the recency index too
            self.client.zrem(p + "recent", *gone)
        return [_codec.decode(v) for v in values if v is not None]

    def delete(self, agent: str, ids: list[str]) -> int:
        if not ids:
            return 0
        p = self._prefix(agent)
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(*[p + "i:" + i for i in ids])
        pipe.zrem(p + "recent", *ids)
        deleted, _ = pipe.execute()
        return int(deleted)

    def drain_evicted(self, agent: str) -> list[MemoryRecord]:
        key = self._prefix(agent) + "evicted"
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        values, _ = pipe.execute()
        return [_codec.decode(v) for v in values]

    def agents(self) -> list[str]:
        out = set()
        for key in self.client.scan_iter(match=f"{self.ns}:stm:*:recent", count=1000):
            k = key.decode() if isinstance(key, bytes) else key
            out.add(k[len(self.ns) + 6 : k.index("}:recent")])
        return sorted(out)

    def health(self) -> dict[str, Any]:
        from emergent.stores.redis import health

        h = health(self.client)
        return {"backend": self.name, "ok": h.ok, "latency_ms": round(h.latency_ms, 3), "detail": h.detail}

    def close(self) -> None:
        self.client.close()


STM_BACKENDS: Registry[Callable[..., STM]] = Registry("STM backend", group="emergent.stm")
STM_BACKENDS.register("local", LocalSTM)
STM_BACKENDS.register("redis", RedisSTM)


def _sqlite(*args: Any, **kwargs: Any) -> STM:
    from emergent.memory.stm_sqlite import SQLiteSTM  # imports this module: resolved at call time

    return SQLiteSTM(*args, **kwargs)


STM_BACKENDS.register("sqlite", _sqlite)
