"""Short-term memory: a small contract with three backends.

``LocalSTM`` lives in the process (tests, and a fallback). ``SQLiteSTM`` (emergent.memory.stm_sqlite,
the embedded default) is one file in the workspace, shared by all its processes. ``RedisSTM`` is
shared by every process on one Redis and detects a Redis that lost its data. All keep, per agent,
a recency index and at most ``max_items`` items; an item lives until its TTL (derived from the
forgetting curve) runs out. Items pushed out by the size bound are not dropped silently: they go
to an *evicted* list that consolidation reads, so an important memory is promoted to long-term
memory rather than lost.

Backends are chosen by id through :data:`STM_BACKENDS` (``local``, ``sqlite``, ``redis``, or a
third-party ``emergent.stm`` entry point). :class:`FallbackSTM` wraps any of them and decides, once,
what an unreachable server means: an error, or (declared) a write to long-term memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from emergent.errors import ConfigError, StoreResetError, StoreUnavailableError
from emergent.memory import _codec
from emergent.memory.types import MemoryRecord, Tier
from emergent.registry import Registry
from emergent.stores.redis import Cooldown


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

    @contextlib.contextmanager
    def promoting_evicted(self, agent: str, drop: Callable[[MemoryRecord], bool] | None = None
                          ) -> Iterator[list[MemoryRecord]]:
        """The evicted items of ``agent`` for consolidation to promote inside the block; they leave the
        evicted list only when the block completes (what was promoted is committed to long-term
        memory by then). A failure (a full disk) or a kill inside the block leaves them for the next
        consolidation: an item reported as remembered is never dropped between the two stores. Those
        ``drop`` picks (an erasure's) leave at once and are not yielded. The built-in backends read
        without draining; a backend that cannot drains first (as before)."""
        yield [r for r in self.drain_evicted(agent) if drop is None or not drop(r)]

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

    @contextlib.contextmanager
    def promoting_evicted(self, agent: str, drop: Callable[[MemoryRecord], bool] | None = None
                          ) -> Iterator[list[MemoryRecord]]:
        with self._lock:
            records = list(self._evicted.get(agent, ()))
        if drop is not None:
            dropped = [r for r in records if drop(r)]
            self._remove_evicted(agent, dropped)
            records = [r for r in records if not drop(r)]
        yield records
        self._remove_evicted(agent, records)

    def _remove_evicted(self, agent: str, records: list[MemoryRecord]) -> None:
        if records:
            taken = {id(r) for r in records}
            with self._lock:
                q = self._evicted.get(agent)
                if q is not None:
                    kept = [r for r in q if id(r) not in taken]
                    q.clear()
                    q.extend(kept)

    def agents(self) -> list[str]:
        with self._lock:
            return sorted({a for a, items in self._items.items() if items}
                          | {a for a, q in self._evicted.items() if q})


# --------------------------------------------------------------------------------- redis
# One round trip per put: check the workspace marker (see RedisSTM), store the value with its TTL,
# index it by recency, trim the agent to its bound, and move what was trimmed to the evicted list
# (the item keys share the {agent} hash tag; on Redis Cluster the marker is in another slot, so
# there ARGV[8] is empty and the marker is checked in a separate round trip).
_PUT = """
if ARGV[8] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[8] then return -1 end
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


# Removes the evicted items a consolidation read (LRANGE 0 -1: ARGV[2] the newest, ARGV[3] the oldest,
# ARGV[1] of them) once they are promoted. Puts push newer ones at the head and the size bound trims
# the tail: when the tail still ends with exactly what was read, it goes in one LTRIM; otherwise -1
# (the caller then passes every value read, ARGV[4...], each removed from the tail end).
_ACK_EVICTED = """
local m = tonumber(ARGV[1])
if #ARGV > 3 then
  local n = 0
  for i = 4, #ARGV do n = n + redis.call('LREM', KEYS[1], -1, ARGV[i]) end
  return n
end
local len = redis.call('LLEN', KEYS[1])
if len < m or redis.call('LINDEX', KEYS[1], -1) ~= ARGV[3] or redis.call('LINDEX', KEYS[1], len - m) ~= ARGV[2] then
  return -1
end
if len == m then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, len - m - 1) end
return m
"""


STM_LAYOUT_VERSION = 1
#: agents whose last full scan a shared store keeps decoded (each up to max_items records)
SCANS_KEPT = 16


# Scans run in threads (recalls do) and RedisSTM has no lock of its own: two threads dropping the
# least recently listed agent at once raised KeyError, or "dictionary changed size during iteration"
# when one inserted while the other iterated. Every change of a kept-scans dict goes through it.
_KEEP_LOCK = threading.Lock()


def keep_scan(cache: dict[str, Any], agent: str, value: Any) -> None:
    """Remember ``value`` as ``agent``'s last scan; the least recently listed agent's goes beyond
    :data:`SCANS_KEPT` (a workspace with many agents must not hold every agent's items decoded)."""
    with _KEEP_LOCK:
        cache.pop(agent, None)
        cache[agent] = value
        while len(cache) > SCANS_KEPT:
            del cache[next(iter(cache))]


def drop_scan(cache: dict[str, Any], agent: str) -> None:
    """Forget ``agent``'s kept scan (its items were deleted, or it has none left)."""
    with _KEEP_LOCK:
        cache.pop(agent, None)


class RedisSTM(STM):
    """STM on Redis, shared by every process that opens the same workspace namespace.

    A Redis that lost its data is never mistaken for an empty short-term memory. The workspace's
    first use of a Redis writes a marker key ``<ns>:stm:marker`` holding a random token (and, with
    ``state_path``, records the token and the server's ``run_id`` in that file in the workspace).
    The marker goes when the data goes: a restart without persistence, FLUSHALL, a failover to an
    empty replica (a ``maxmemory-policy`` other than noeviction can drop items alone: ``health()``
    warns about it). Every put checks the marker inside its Lua script, every get and scan in the
    MGET that reads the data (no extra round trip; on a cluster, where the marker is in another
    slot, a put checks it in a separate GET and a read only when it comes back empty), and so does
    ``health()``. A missing or replaced marker raises :class:`~emergent.errors.StoreResetError`
    naming what was lost; from then on every call raises it until ``acknowledge_reset()`` (in any
    process of the workspace, when they share ``state_path``) arms a new marker. Without
    ``state_path`` a reset that happens while no process of the workspace has the STM open is not
    detectable.
    """

    name = "redis"

    def __init__(self, client: Any, namespace: str, max_items: int = 2000, max_evicted: int = 10_000,
                 clock: Callable[[], float] | None = None, *, state_path: str | os.PathLike[str] | None = None,
                 cipher: _codec.Sealer | None = None) -> None:
        self.client = client
        self._encode, self._decode = _codec.codec(cipher)  # cipher: values sealed at rest (AES-GCM)
        self.ns = namespace
        self.max_items = max_items
        self.max_evicted = max_evicted
        self.state_path = Path(state_path) if state_path is not None else None
        self._now = clock or time.time
        self._put = client.register_script(_PUT)
        self._ack_evicted = client.register_script(_ACK_EVICTED)
        self._prefixes: dict[str, tuple[str, str, str]] = {}
        self._decoded: dict[str, dict[str, tuple[bytes, MemoryRecord]]] = {}  # agent -> id -> (value, record)
        self._marker = f"{namespace}:stm:marker"
        self._cluster = type(client).__name__ == "RedisCluster"
        self._token: str | None = None  # the marker this instance expects; None until Redis answered
        self._run_id: str | None = None  # the server's run_id when the marker was last confirmed at open
        self._reset: dict[str, Any] | None = None  # what was detected, until acknowledged
        self._state_error: str | None = None
        self._open()

    # ------------------------------------------------------------------ layout and marker
    def _open(self) -> None:
        """Check the key layout's version and the workspace marker (again on first use if unreachable)."""
        import redis

        from emergent.stores.redis import run_id

        layout = f"{self.ns}:stm:layout"
        try:
            self.client.set(layout, STM_LAYOUT_VERSION, nx=True)
            found = int(self.client.get(layout) or STM_LAYOUT_VERSION)
            current = self._marker_value()
            rid = run_id(self.client)
        except (redis.ConnectionError, redis.TimeoutError):
            return  # unreachable now: every call will say so (or fall back, if the caller opted in)
        if found > STM_LAYOUT_VERSION:
            raise ConfigError(
                f"Redis STM under {self.ns} uses key layout {found}, newer than this emergent ({STM_LAYOUT_VERSION})",
                hint="upgrade emergent, or point EMERGENT_REDIS_URL at another database",
            )
        recorded = self._load_state()
        expected = recorded.get("token")
        if current is None and expected is None:  # the workspace's first use of this Redis: arm it
            self.client.set(self._marker, secrets.token_hex(12), nx=True)
            current = self._marker_value()  # a concurrent opener may have won: everyone adopts its token
        if current is not None and expected in (None, current):
            self._token, self._run_id = current, rid
            if recorded.get("token") != current or recorded.get("run_id") != rid:
                self._save_state(rid, recorded)
        else:
            self._token = expected
            self._detected(current, rid, recorded)

    def _marker_value(self) -> str | None:
        raw = self.client.get(self._marker)
        return raw.decode() if isinstance(raw, bytes) else raw

    def _check(self) -> None:
        """Before every call: arm lazily, and refuse while a detected reset is not acknowledged."""
        if self._token is None:
            self._open()
        if self._reset is not None and not self._acknowledged_elsewhere():
            raise self._reset_error()

    def _verify(self) -> None:
        """An answer came back empty: raise StoreResetError if that is because Redis lost the data."""
        if self._token is None:
            return
        current = self._marker_value()
        if current != self._token:
            from emergent.stores.redis import run_id

            self._detected(current, run_id(self.client), self._load_state())
            raise self._reset_error()

    def _detected(self, found: str | None, rid: str | None, recorded: dict[str, Any]) -> None:
        from emergent.stores.redis import describe

        self._reset = {
            "namespace": self.ns, "marker": self._marker, "expected": self._token, "found": found,
            "server": describe(self.client), "recorded_server": recorded.get("server"),
            "run_id_before": self._run_id or recorded.get("run_id"), "run_id_now": rid,
            "armed_at": recorded.get("armed_at"), "detected_at": time.time(),
        }

    def _reset_error(self) -> StoreResetError:
        r = self._reset or {}
        how = "is gone" if r.get("found") is None else "holds another token (someone re-armed it since)"
        before, now = r.get("run_id_before"), r.get("run_id_now")
        restarted = f"; the server restarted (run_id {before[:8]}… is now {now[:8]}…)" if before and now and before != now else ""
        moved = (f"; this workspace last used Redis at {r['recorded_server']}, now {r['server']} (if you moved it on "
                 "purpose, acknowledge)") if r.get("recorded_server") not in (None, r.get("server")) else ""
        return StoreResetError(
            f"Redis at {r.get('server')} lost this workspace's short-term memory: the marker key {r.get('marker')}, "
            f"written when the workspace first used this Redis, {how}{restarted}{moved}. Redis restarted without "
            "persistence, was flushed, or failed over to an empty replica: every short-term item not yet "
            "consolidated is lost (long-term memory is not affected)",
            hint="make Redis persistent (appendonly yes with appendfsync always, or everysec to lose at most about a "
                 "second; stm.health()['persistence'] shows the settings), then call acknowledge_reset() on the "
                 "workspace's short-term memory (ws.memory.stm.acknowledge_reset()) to start an empty one; until then "
                 "short-term reads and writes are refused. Nothing was written",
            namespace=r.get("namespace"), marker=r.get("marker"), server=r.get("server"),
            run_id_before=before, run_id_now=now,
        )

    def _acknowledged_elsewhere(self) -> bool:
        """Another process of the workspace acknowledged the reset: adopt the marker it armed."""
        if self.state_path is None or self._reset is None:
            return False
        token = self._load_state().get("token")
        if token and token != self._reset["expected"] and token == self._marker_value():
            self._token, self._reset = token, None
            return True
        return False

    def acknowledge_reset(self) -> dict[str, Any]:
        """Accept that Redis lost this workspace's short-term items and start an empty short-term memory.

        Arms a new marker (or adopts one another process armed) and records it in ``state_path``,
        where the workspace's other processes pick it up on their next call. Returns what had been
        detected ({} when Redis did not lose anything). Make Redis persistent first, or the next
        restart loses the short-term memory again (and is reported again).
        """
        from emergent.stores.redis import run_id

        if self._token is None:
            self._open()
        if self._reset is None:
            current = self._marker_value()
            if current is not None and current == self._token:
                return {}
            self._detected(current, run_id(self.client), self._load_state())
        lost = dict(self._reset or {})
        self.client.set(self._marker, secrets.token_hex(12), nx=True)
        rid = run_id(self.client)
        self._token, self._run_id, self._reset = self._marker_value(), rid, None
        self._save_state(rid, {}, last_reset=lost)
        return lost

    def _load_state(self) -> dict[str, Any]:
        if self.state_path is None:
            return {}
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._state_error = f"cannot read {self.state_path}: {type(exc).__name__}: {exc}"
            return {}
        return data if isinstance(data, dict) and data.get("namespace") == self.ns else {}

    def _save_state(self, rid: str | None, recorded: dict[str, Any], **extra: Any) -> None:
        if self.state_path is None:
            return
        from emergent.stores.redis import describe

        same = recorded.get("token") == self._token
        data = {**(recorded if same else {}), "namespace": self.ns, "token": self._token, "run_id": rid,
                "server": describe(self.client), "armed_at": recorded.get("armed_at") if same else time.time(), **extra}
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.state_path)
            self._state_error = None
        except OSError as exc:
            self._state_error = f"cannot write {self.state_path}: {type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------ contract
    def _prefix(self, agent: str) -> str:
        return f"{self.ns}:stm:{{{agent}}}:"

    def _keys(self, agent: str) -> tuple[str, str, str]:
        keys = self._prefixes.get(agent)
        if keys is None:
            p = self._prefix(agent)
            keys = self._prefixes[agent] = (p + "i:", p + "recent", p + "evicted")
        return keys

    def put(self, rec: MemoryRecord, ttl_s: float) -> int:
        self._check()
        item, recent, evicted = self._keys(rec.scope.agent)
        token = self._token or ""
        if self._cluster:  # the marker is in another slot than the agent's keys
            if token and self._marker_value() != token:
                self._verify()
            keys, token = [item + rec.id, recent, evicted], ""
        else:
            keys = [item + rec.id, recent, evicted, self._marker]
        args = [self._encode(rec), max(1, int(ttl_s * 1000)), self._now(), rec.id, self.max_items, item,
                self.max_evicted, token]
        try:  # EVALSHA directly: Script.__call__ adds list building and a type check per call
            n = int(self.client.evalsha(self._put.sha, len(keys), *keys, *args))
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            n = int(self._put(keys=keys, args=args))
        if n < 0:  # the marker check in the script failed: nothing was written
            self._verify()
            raise StoreUnavailableError(f"Redis STM put of {rec.id} was refused by its marker check",
                                        hint="retry; if it persists, run stm.health()", memory_id=rec.id)
        return n

    def get(self, agent: str, id: str) -> MemoryRecord | None:
        self._check()
        key = self._prefix(agent) + "i:" + id
        if self._cluster:  # the marker is in another slot: check it when the answer is empty
            raw = self.client.get(key)
            if raw is None:
                self._verify()
        else:  # the marker rides along in the same round trip (execute_command: mget() adds ~10 µs)
            raw, marker = self.client.execute_command("MGET", key, self._marker)
            self._same_marker(marker)
        return None if raw is None else self._decode(raw, agent, id)

    def _same_marker(self, marker: bytes | str | None) -> None:
        """Raise StoreResetError unless ``marker`` (read with the data) is the one this instance expects."""
        value = marker.decode() if isinstance(marker, bytes) else marker
        if self._token is not None and value != self._token:
            self._verify()

    def scan(self, agent: str, limit: int | None = None) -> list[MemoryRecord]:
        self._check()
        p = self._prefix(agent)
        ids = [i.decode() for i in self.client.zrevrange(p + "recent", 0, (limit or 0) - 1)]
        if not ids:
            drop_scan(self._decoded, agent)  # nothing left (expired, or erased by another process): its texts go now
            self._verify()
            return []
        keys = [p + "i:" + i for i in ids]
        if self._cluster:
            values = self.client.mget(keys)
        else:
            *values, marker = self.client.execute_command("MGET", *keys, self._marker)
            self._same_marker(marker)
        gone = [i for i, v in zip(ids, values, strict=True) if v is None]
        if gone:  # expired by TTL: drop them from the recency index too
            self.client.zrem(p + "recent", *gone)
        if limit:
            return [self._decode(v, agent, i) for i, v in zip(ids, values, strict=True) if v is not None]
        # Every recall scans the whole short-term memory: an item whose stored bytes are those this
        # instance decoded last time is that record (bytes compare at memcmp speed; a decode is
        # ~5 us an item, 10 ms for a full 2,000). Kept per agent: the items of the last full scan.
        known = self._decoded.get(agent, {})
        kept: dict[str, tuple[bytes, MemoryRecord]] = {}
        for i, v in zip(ids, values, strict=True):
            if v is not None:
                hit = known.get(i)
                kept[i] = hit if hit is not None and hit[0] == v else (v, self._decode(v, agent, i))
        keep_scan(self._decoded, agent, kept)
        return [rec for _v, rec in kept.values()]

    def delete(self, agent: str, ids: list[str]) -> int:
        self._check()
        if not ids:
            return 0
        p = self._prefix(agent)
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(*[p + "i:" + i for i in ids])
        pipe.zrem(p + "recent", *ids)
        deleted, _ = pipe.execute()
        drop_scan(self._decoded, agent)  # an erased text leaves this process's memory now
        if not deleted:
            self._verify()
        return int(deleted)

    def drain_evicted(self, agent: str) -> list[MemoryRecord]:
        self._check()
        key = self._prefix(agent) + "evicted"
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        values, _ = pipe.execute()
        if not values:
            self._verify()
        return [self._decode(v, agent) for v in values]

    @contextlib.contextmanager
    def promoting_evicted(self, agent: str, drop: Callable[[MemoryRecord], bool] | None = None
                          ) -> Iterator[list[MemoryRecord]]:
        self._check()
        key = self._prefix(agent) + "evicted"
        values = self.client.lrange(key, 0, -1)
        if not values:
            self._verify()
        pairs = [(v, self._decode(v, agent)) for v in values]
        if drop is not None:
            dropped = [v for v, r in pairs if drop(r)]
            if dropped:  # removed now, value by value (the script's explicit form)
                self._ack_evicted(keys=[key], args=[len(values), values[0], values[-1], *dropped])
                pairs = [(v, r) for v, r in pairs if not drop(r)]
        yield [r for _v, r in pairs]
        kept = [v for v, _r in pairs]
        if not kept:
            return
        if len(kept) < len(values):
            self._ack_evicted(keys=[key], args=[len(kept), kept[0], kept[-1], *kept])
        elif int(self._ack_evicted(keys=[key], args=[len(values), values[0], values[-1]])) < 0:
            self._ack_evicted(keys=[key], args=[len(values), values[0], values[-1], *values])

    def agents(self) -> list[str]:
        self._check()
        out = set()
        for key in self.client.scan_iter(match=f"{self.ns}:stm:*:recent", count=1000):
            k = key.decode() if isinstance(key, bytes) else key
            out.add(k[len(self.ns) + 6 : k.index("}:recent")])
        if not out:
            self._verify()
        return sorted(out)

    def health(self) -> dict[str, Any]:
        """Reachability, latency, whether Redis lost the workspace's data (``reset_detected``),
        whether it restarted since this instance opened, and what a restart would keep
        (``persistence``, with ``warnings`` for ``emergent doctor``)."""
        import redis

        from emergent.stores.redis import health, persistence, run_id

        h = health(self.client)
        out: dict[str, Any] = {"backend": self.name, "ok": h.ok, "latency_ms": round(h.latency_ms, 3), "detail": h.detail}
        if not h.ok:
            return out
        try:
            if self._token is None:
                self._open()
            self._acknowledged_elsewhere()
            rid = run_id(self.client)
            if self._reset is None and self._token is not None:
                current = self._marker_value()
                if current != self._token:
                    self._detected(current, rid, self._load_state())
            durability = persistence(self.client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return {**out, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        out.update(reset_detected=self._reset is not None, run_id=rid,
                   restarted_since_open=bool(self._run_id and rid and rid != self._run_id),
                   persistence=durability, warnings=list(durability["warnings"]))
        if self._reset is not None:
            out.update(ok=False, detail=str(self._reset_error()), reset=dict(self._reset))
        if self._state_error:
            out["warnings"].append(self._state_error)
        return out

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------------- fallback
OnSTMFailure = Literal["raise", "ltm"]
_R = TypeVar("_R")


def is_connection_error(exc: BaseException) -> bool:
    """The backend's server cannot be reached (Redis down, a socket timeout): not a bad request,
    not a damaged store (SQLite's failures are already :class:`StoreUnavailableError`)."""
    try:
        import redis
    except ImportError:  # pragma: no cover
        return isinstance(exc, (ConnectionError, TimeoutError))
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError))


class FallbackSTM(STM):
    """What an unreachable short-term memory means, decided once, around any backend.

    ``policy="raise"``: a lost connection is a :class:`StoreUnavailableError` that names the backend
    and says what to do; nothing was stored. ``policy="ltm"`` (declared by the user, e.g.
    ``EMERGENT_STM_FALLBACK=ltm``): a put is handed to ``ltm_writer``, a durable write to long-term
    memory (the record's tier becomes LTM), and reads answer as an empty short-term memory.
    Every other error, and everything else (``health``, ``acknowledge_reset``, ``path``...), is the
    wrapped backend's.
    """

    def __init__(self, inner: STM, policy: OnSTMFailure = "raise", *,
                 ltm_writer: Callable[[MemoryRecord], object] | None = None) -> None:
        if policy not in ("raise", "ltm"):
            raise ConfigError(f"unknown STM failure policy {policy!r}",
                              hint="use 'raise' (an error) or 'ltm' (write long-term memory instead)")
        if policy == "ltm" and ltm_writer is None:
            raise ConfigError("the 'ltm' STM failure policy needs an ltm_writer",
                              hint="pass ltm_writer=lambda rec: ltm.add([rec]), or use policy='raise'")
        self.inner = inner
        self.name = inner.name
        self.policy = policy
        self.ltm_writer = ltm_writer
        self._cooldown = Cooldown()  # a backend that timed out is not waited for again at once

    def __getattr__(self, attr: str) -> Any:  # only called for what this class does not define
        if attr == "inner":  # not set yet (during unpickling): never recurse
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def _unavailable(self, exc: BaseException, **fields: Any) -> StoreUnavailableError:
        return StoreUnavailableError(f"short-term memory ({self.name}) is unavailable: {exc}",
                                     hint="restart Redis, or set EMERGENT_STM_FALLBACK=ltm (on_stm_failure='ltm') to "
                                          "read long-term memory only while it is down", **fields)

    def _call(self, call: Callable[[], _R]) -> _R:
        late = self._cooldown.pending()
        if late is not None:
            raise late
        try:
            return call()
        except Exception as exc:
            if is_connection_error(exc):
                self._cooldown.saw(exc)
            raise

    def _read(self, call: Callable[[], _R], empty: _R) -> _R:
        try:
            return self._call(call)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if self.policy == "ltm":
                return empty
            raise self._unavailable(exc) from exc

    def put(self, rec: MemoryRecord, ttl_s: float) -> int:
        try:
            return self._call(lambda: self.inner.put(rec, ttl_s))
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if self.policy == "ltm" and self.ltm_writer is not None:  # the declared fallback: a durable write
                rec.tier = Tier.LTM
                self.ltm_writer(rec)
                return 0
            raise StoreUnavailableError(
                f"short-term memory ({self.name}) is unavailable: {exc}",
                hint="restart Redis, or open the workstation with on_stm_failure='ltm' (EMERGENT_STM_FALLBACK=ltm) "
                     "to write to long-term memory while it is down; this memory was not stored",
                memory_id=rec.id,
            ) from exc

    def get(self, agent: str, id: str) -> MemoryRecord | None:
        return self._read(lambda: self.inner.get(agent, id), None)

    def scan(self, agent: str, limit: int | None = None) -> list[MemoryRecord]:
        return self._read(lambda: self.inner.scan(agent, limit), [])

    def delete(self, agent: str, ids: list[str]) -> int:
        return self._read(lambda: self.inner.delete(agent, ids), 0)

    def drain_evicted(self, agent: str) -> list[MemoryRecord]:
        return self._read(lambda: self.inner.drain_evicted(agent), [])

    @contextlib.contextmanager
    def promoting_evicted(self, agent: str, drop: Callable[[MemoryRecord], bool] | None = None
                          ) -> Iterator[list[MemoryRecord]]:
        inner = self.inner.promoting_evicted(agent, drop)
        records = self._read(inner.__enter__, None)
        if records is None:  # unreachable, under the declared fallback: an empty short-term memory
            yield []
            return
        try:
            yield records
        except BaseException:
            if not inner.__exit__(*sys.exc_info()):
                raise
        else:
            self._read(lambda: inner.__exit__(None, None, None), None)

    def agents(self) -> list[str]:
        return self._read(self.inner.agents, [])

    def health(self) -> dict[str, Any]:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


# --------------------------------------------------------------------------------- registry
@dataclass(frozen=True, slots=True)
class STMContext:
    """What the composition root offers a backend factory; each takes what it needs."""

    workspace: Path  # the workspace directory (files of embedded backends live there)
    max_items: int
    clock: Callable[[], float]
    redis: Any = None  # a redis-py client when EMERGENT_REDIS_URL is set
    namespace: str = ""  # the workspace's key namespace on a shared server
    cipher: Any = None  # an emergent.memory._codec.Sealer: values sealed at rest (EMERGENT_SECURITY__ENCRYPT)


#: Short-term memory backends by id (``EMERGENT_STM_BACKEND``): ``factory(ctx: STMContext) -> STM``.
#: Third-party backends register under the ``emergent.stm`` entry-point group.
STM_BACKENDS: Registry[Callable[[STMContext], STM]] = Registry("STM backend", group="emergent.stm")


def _local(ctx: STMContext) -> STM:
    return LocalSTM(ctx.max_items, clock=ctx.clock)


def _sqlite(ctx: STMContext) -> STM:
    from emergent.memory.stm_sqlite import SQLiteSTM  # imports this module: resolved at call time

    return SQLiteSTM(ctx.workspace / "stm.db", ctx.max_items, clock=ctx.clock, cipher=ctx.cipher)


def _redis(ctx: STMContext) -> STM:
    if ctx.redis is None:
        raise ConfigError("the redis short-term memory needs a Redis", hint="set EMERGENT_REDIS_URL, or "
                          "EMERGENT_STM_BACKEND=sqlite for the embedded one")
    # a state file in the workspace lets a later process notice that Redis lost its data
    return RedisSTM(ctx.redis, ctx.namespace, ctx.max_items, clock=ctx.clock,
                    state_path=ctx.workspace / "redis-stm.json", cipher=ctx.cipher)


STM_BACKENDS.register("local", _local)
STM_BACKENDS.register("sqlite", _sqlite)
STM_BACKENDS.register("redis", _redis)
