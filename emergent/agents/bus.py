"""The agents' message bus, chosen by string id: ``memory`` (in the process) or ``redis`` (Streams).

Both speak one small contract (:class:`Bus`): publish to a stream, consume as a member of a consumer
group, acknowledge, and claim what a dead consumer left unacknowledged. Delivery is *at least once*:
a message is handed out again until someone acknowledges it, so handlers are idempotent (the agents
service keys them by task id and state in SQL).

- **Who sent it** is set by the bus from the :class:`~emergent.principals.Principal` passed to
  :meth:`Bus.publish` (verified by the workspace's directory), never read from the payload.
- **Every message is audited before it is sent**: one buffered audit entry per publish call names
  the stream, the sender, the count and a digest binding each body (sha256 of them, in order), and
  is appended *before* the messages go out (a refused entry: nothing is published); the ids Redis
  assigned follow in a second entry. Acknowledgements and redeliveries are audited before they are sent too. The audit log
  chains buffered entries in batches, so a message costs a list append, not a database write; once
  a background write has failed, every append raises until the log is writable again.
- **A message is JSON** (str keys; no NaN, no objects, no bytes): anything else is refused with a
  ValidationError naming the message, never turned into a string or a null.
- **Redis** (``XADD``, ``XREADGROUP``, ``XACK``, ``XPENDING``+``XCLAIM``, ``XTRIM MINID``): batches go in one pipeline;
  calls retry through a restart of the server (tenacity) and recreate a consumer group a restart
  without persistence lost. Run Redis with ``appendonly yes`` and ``appendfsync always`` to lose
  nothing it acknowledged.
- **memory**: the same semantics on lists under a lock, for one process (lost when it exits).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from emergent.errors import AuditWriteError, PrincipalError, StoreUnavailableError, ValidationError
from emergent.principals import Principal
from emergent.registry import Registry

try:  # orjson ships with the redis extra; the stdlib is the fallback
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    loads: Callable[[bytes | str], Any] = orjson.loads
except ImportError:  # pragma: no cover - minimal install
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    loads = json.loads


def digest(bodies: Sequence[bytes]) -> str:
    """The audited digest of a publish: sha256 of the bodies joined by newlines, in order. A JSON
    text never holds a raw newline (orjson escapes it), so this binds each body; recomputing it from
    the stream checks them. One hex string per call keeps the entry small (a digest per body cost
    the bus ~3 % of its throughput)."""
    return hashlib.sha256(b"\n".join(bodies)).hexdigest()


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    if isinstance(v, list | tuple):
        return all(_finite(x) for x in v)
    return True


def _encode(message: Any, i: int) -> bytes:
    """A message as JSON, or a ValidationError naming what is not JSON (nothing is turned into a string
    or a null silently)."""
    if not isinstance(message, dict):
        raise ValidationError(f"field 'message' (#{i}): a message is a dict, got {type(message).__name__}",
                              hint="publish {'type': ..., ...}", field="message")
    try:
        out = dumps(message)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"field 'message' (#{i}): not JSON: {exc}",
                              hint="use str keys and JSON values (str, number, bool, None, list, dict)",
                              field="message") from None
    if b"null" in out and not _finite(message):  # orjson writes NaN and infinities as null: refuse them
        raise ValidationError(f"field 'message' (#{i}): NaN or an infinity is not JSON",
                              hint="send None, or the number as a string", field="message")
    return out


#: the longest a consume call blocks (below the Redis client's socket timeout)
MAX_BLOCK_MS = 1000


class Message(NamedTuple):
    """One message as delivered (a named tuple: thousands are built per second on the hot path)."""

    id: str
    stream: str
    sender: str  # the publisher's principal key, set by the bus
    body: dict[str, Any]
    redelivered: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "stream": self.stream, "sender": self.sender, "body": self.body,
                "redelivered": self.redelivered}


def _check_stream(stream: str) -> str:
    if not isinstance(stream, str) or not stream or len(stream) > 200 or any(c in stream for c in " *?[]"):
        raise ValidationError(f"field 'stream': {stream!r} is not a stream name",
                              hint="use a short name without spaces or glob characters, e.g. 'tasks'",
                              field="stream")
    return stream


def _id(mid: str) -> tuple[int, int]:
    ms, _, seq = mid.partition("-")
    return int(ms), int(seq or 0)


def _after(mid: str) -> str:
    ms, seq = _id(mid)
    return f"{ms}-{seq + 1}"


class Bus(ABC):
    """Publish, consume in a group, acknowledge, claim the abandoned. Subclasses implement the five
    ``_``-methods; this class checks input, stamps the sender and audits."""

    name = "bus"

    def __init__(self, *, audit: Any, principals: Any = None) -> None:
        if audit is None:
            raise ValidationError("an agents bus needs an audit log (every message is audited)",
                                  hint="pass audit=ws.audit", field="audit")
        self.audit = audit
        self.principals = principals

    # ------------------------------------------------------------------ the contract
    def publish(self, stream: str, message: dict[str, Any], *, principal: Principal) -> str:
        """Append ``message`` to ``stream`` as ``principal``; returns its id."""
        return self.publish_many(stream, [message], principal=principal)[0]

    def publish_many(self, stream: str, messages: Sequence[dict[str, Any]], *, principal: Principal) -> list[str]:
        """Append ``messages`` in one round trip; returns their ids in order.

        The audit entry (stream, sender, count, :func:`digest` of the bodies) is appended *before* the
        messages are sent: if the audit log refuses it, nothing is published and the call raises.
        The ids Redis assigned follow in a second entry."""
        who = self._who(principal)
        _check_stream(stream)
        try:  # the common case in one pass (C-level checks); anything odd is looked at message by message
            bodies = [dumps(m) for m in messages]
            odd = not all(map(isinstance, messages, itertools.repeat(dict))) or b"null" in b"".join(bodies)
        except (TypeError, ValueError):
            odd = True
        if odd:
            bodies = [_encode(m, i) for i, m in enumerate(messages)]
        if not bodies:
            return []
        self.audit.append("agents.message", who, {"bus": self.name, "stream": stream, "count": len(bodies),
                                                  "sha256": digest(bodies)})
        ids = self._publish(stream, who.key, bodies)
        # the intent above is the record; the ids complete it. The messages are out: a failing audit
        # log now must not report this publish as failed (the next call refuses before sending).
        with contextlib.suppress(AuditWriteError):
            self.audit.append("agents.message.ids", who, {"bus": self.name, "stream": stream, "ids": ids})
        return ids

    def consume(self, stream: str, group: str, consumer: str, count: int = 10, block_ms: int = 0) -> list[Message]:
        """Up to ``count`` messages no member of ``group`` was given yet (waits up to ``block_ms``)."""
        _check_stream(stream)
        if count < 1:
            raise ValidationError(f"field 'count': must be ≥ 1, got {count}", field="count")
        return self._consume(stream, group, consumer, count, max(0, min(int(block_ms), MAX_BLOCK_MS)))

    def ack(self, stream: str, group: str, ids: str | Iterable[str], *, by: Principal) -> int:
        """Acknowledge messages (handled: never delivered again); returns how many were pending.
        Audited before the acknowledgement is sent."""
        who = self._who(by)
        ids = [ids] if isinstance(ids, str) else list(ids)
        if not ids:
            return 0
        self.audit.append("agents.ack", who, {"bus": self.name, "stream": stream, "group": group, "ids": ids})
        return self._ack(stream, group, ids)

    def claim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int, by: Principal,
              count: int = 100) -> list[Message]:
        """Take over messages another member read but did not acknowledge for ``min_idle_ms``
        (a consumer that died): they are delivered again, to ``consumer``. The ids found idle are
        audited before they are claimed (a message acknowledged meanwhile is not claimed)."""
        who = self._who(by)
        idle = self._idle(stream, group, int(min_idle_ms), count)
        if not idle:
            return []
        self.audit.append("agents.redelivered", who, {"bus": self.name, "stream": stream, "group": group,
                                                      "consumer": consumer, "ids": idle})
        return self._claim(stream, group, consumer, int(min_idle_ms), idle)

    def trim(self, stream: str, *, older_than_s: float, by: Principal, groups: Sequence[str] = ()) -> int:
        """Remove the history of ``stream`` that is safe to drop: messages older than ``older_than_s``
        that every consumer group was given *and* acknowledged (below the oldest pending message and
        the last delivered one of each group). A pending or undelivered message is never removed.
        ``groups``: the groups that will read the stream, created first if no member read yet (so a
        message published before its first reader started is kept); a stream without any group is
        history, trimmed by age alone. Audited before the trim; returns how many messages were removed."""
        who = self._who(by)
        _check_stream(stream)
        if older_than_s < 0:
            raise ValidationError(f"field 'older_than_s': must be ≥ 0, got {older_than_s}", field="older_than_s")
        for g in groups:
            self._create_group(stream, g)
        below = self._trim_floor(stream, int(older_than_s * 1000))
        if below is None:
            return 0
        self.audit.append("agents.trim", who, {"bus": self.name, "stream": stream, "below": below,
                                               "older_than_s": older_than_s})
        return self._trim(stream, below)

    # ------------------------------------------------------------------ reading (monitor)
    @abstractmethod
    def history(self, stream: str, limit: int = 100) -> list[Message]:
        """The newest ``limit`` messages of ``stream``, oldest first."""

    @abstractmethod
    def streams(self) -> list[str]:
        """The streams that exist."""

    @abstractmethod
    def pending(self, stream: str, group: str) -> int:
        """Messages delivered to ``group`` and not acknowledged."""

    def close(self) -> None:
        return None

    # ------------------------------------------------------------------ implementations
    @abstractmethod
    def _publish(self, stream: str, sender: str, bodies: list[bytes]) -> list[str]: ...

    @abstractmethod
    def _consume(self, stream: str, group: str, consumer: str, count: int, block_ms: int) -> list[Message]: ...

    @abstractmethod
    def _ack(self, stream: str, group: str, ids: list[str]) -> int: ...

    @abstractmethod
    def _create_group(self, stream: str, group: str) -> None:
        """Make ``group`` exist (reading from the start of the stream) if it does not."""

    @abstractmethod
    def _trim_floor(self, stream: str, older_than_ms: int) -> str | None:
        """The id below which every message may go (None: nothing to remove); read only."""

    @abstractmethod
    def _trim(self, stream: str, below: str) -> int: ...

    @abstractmethod
    def _idle(self, stream: str, group: str, min_idle_ms: int, count: int) -> list[str]:
        """Ids of up to ``count`` pending messages idle for at least ``min_idle_ms`` (read only)."""

    @abstractmethod
    def _claim(self, stream: str, group: str, consumer: str, min_idle_ms: int, ids: list[str]) -> list[Message]:
        """Give ``ids`` (still idle that long) to ``consumer``; the messages."""

    def _who(self, principal: Any) -> Principal:
        if self.principals is not None:
            return self.principals.verify(principal)  # type: ignore[no-any-return]
        if not isinstance(principal, Principal):
            raise PrincipalError(f"{principal!r} is not a principal: every message needs its sender's",
                                 hint="pass principal=ws.principal or an agent's principal")
        return principal


# ---------------------------------------------------------------------------- in the process
@dataclass
class _Group:
    next: int = 0  # index of the first entry not delivered to the group yet
    pending: dict[str, list[Any]] = field(default_factory=dict)  # id -> [consumer, delivered_at, index]


class MemoryBus(Bus):
    """Streams as lists under one lock; the semantics of the Redis bus within one process."""

    name = "memory"

    def __init__(self, *, audit: Any, principals: Any = None, **_: Any) -> None:
        super().__init__(audit=audit, principals=principals)
        self._streams: dict[str, list[tuple[str, str, bytes]]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._base: dict[str, int] = {}  # absolute index of each stream's first entry (entries trimmed before it)
        self._cond = threading.Condition()
        self._last = (0, 0)

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    def _publish(self, stream: str, sender: str, bodies: list[bytes]) -> list[str]:
        with self._cond:
            entries = self._streams.setdefault(stream, [])
            ids = []
            for b in bodies:
                mid = self._next_id()
                entries.append((mid, sender, b))
                ids.append(mid)
            self._cond.notify_all()
        return ids

    def _group(self, stream: str, group: str) -> _Group:
        return self._groups.setdefault((stream, group), _Group())

    def _consume(self, stream: str, group: str, consumer: str, count: int, block_ms: int) -> list[Message]:
        deadline = time.monotonic() + block_ms / 1000
        with self._cond:
            g = self._group(stream, group)
            while True:
                entries, base = self._streams.get(stream, []), self._base.get(stream, 0)
                g.next = max(g.next, base)  # a group created after a trim starts at the first kept entry
                if g.next < base + len(entries):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            now = time.monotonic()
            out: list[Message] = []
            for i in range(g.next, min(g.next + count, base + len(entries))):
                mid, sender, body = entries[i - base]
                g.pending[mid] = [consumer, now, i]
                out.append(Message(mid, stream, sender, loads(body)))
            g.next += len(out)
            return out

    def _ack(self, stream: str, group: str, ids: list[str]) -> int:
        with self._cond:
            g = self._group(stream, group)
            return sum(1 for i in ids if g.pending.pop(i, None) is not None)

    def _idle(self, stream: str, group: str, min_idle_ms: int, count: int) -> list[str]:
        now = time.monotonic()
        with self._cond:
            g = self._group(stream, group)
            return [mid for mid, p in g.pending.items() if (now - p[1]) * 1000 >= min_idle_ms][:count]

    def _claim(self, stream: str, group: str, consumer: str, min_idle_ms: int, ids: list[str]) -> list[Message]:
        now = time.monotonic()
        with self._cond:
            g = self._group(stream, group)
            entries = self._streams.get(stream, [])
            out: list[Message] = []
            for mid in ids:
                p = g.pending.get(mid)
                if p is not None and (now - p[1]) * 1000 >= min_idle_ms:
                    p[0], p[1] = consumer, now
                    _, sender, body = entries[p[2] - self._base.get(stream, 0)]
                    out.append(Message(mid, stream, sender, loads(body), redelivered=True))
            return out

    def _create_group(self, stream: str, group: str) -> None:
        with self._cond:
            self._group(stream, group)

    def _keep_from(self, stream: str, older_than_ms: int) -> int:
        """Absolute index of the first entry to keep (caller holds the lock)."""
        entries, base = self._streams.get(stream, []), self._base.get(stream, 0)
        keep = base + len(entries)
        for (s, _), g in self._groups.items():
            if s == stream:
                keep = min([keep, max(g.next, base), *(p[2] for p in g.pending.values())])
        cutoff = int(time.time() * 1000) - older_than_ms
        i = base
        while i < keep and _id(entries[i - base][0])[0] <= cutoff:
            i += 1
        return i

    def _trim_floor(self, stream: str, older_than_ms: int) -> str | None:
        with self._cond:
            base = self._base.get(stream, 0)
            keep = self._keep_from(stream, older_than_ms)
            return None if keep == base else _after(self._streams[stream][keep - base - 1][0])

    def _trim(self, stream: str, below: str) -> int:
        with self._cond:
            entries, base = self._streams.get(stream, []), self._base.get(stream, 0)
            n = 0
            floor = _id(below)
            while n < len(entries) and _id(entries[n][0]) < floor:
                n += 1
            n = min(n, self._keep_from(stream, 0) - base)  # never past a pending or undelivered entry
            del entries[:n]
            self._base[stream] = base + n
            return n

    def history(self, stream: str, limit: int = 100) -> list[Message]:
        with self._cond:
            entries = list(self._streams.get(stream, [])[-limit:])
        return [Message(mid, stream, sender, loads(body)) for mid, sender, body in entries]

    def streams(self) -> list[str]:
        with self._cond:
            return sorted(self._streams)

    def pending(self, stream: str, group: str) -> int:
        with self._cond:
            return len(self._group(stream, group).pending)


# ---------------------------------------------------------------------------- Redis Streams
def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisBus(Bus):
    """Redis Streams: one stream key per stream, consumer groups, a pipeline per batch.

    Keys: ``<namespace>:agents:stream:<name>``; entry fields ``s`` (sender key) and ``b`` (JSON body).
    """

    name = "redis"

    def __init__(self, *, redis: Any, audit: Any, principals: Any = None, namespace: str = "emergent",
                 retry_s: float = 15.0, secret: bytes | None = None, **_: Any) -> None:
        super().__init__(audit=audit, principals=principals)
        # ``secret`` (the workspace's, shared by its processes): each entry carries a MAC of its sender
        # and body, so a program that can only write to Redis cannot send "as" someone; an entry
        # without a valid one is dropped like a malformed one. Keyed BLAKE2b: a MAC at ~0.3 µs.
        self._secret = secret
        if redis is None:
            raise ValidationError("the redis agents bus needs a Redis client",
                                  hint="set EMERGENT_REDIS_URL, or EMERGENT_AGENT_BUS=memory", field="redis")
        import redis as redis_lib

        self.r = redis
        self.prefix = f"{namespace}:agents:stream:"
        self.retry_s = retry_s
        self._groups: set[tuple[str, str]] = set()
        self._senders: dict[bytes, str] = {}  # decoded sender keys (a handful of principals send)
        self._conn_errors = (redis_lib.ConnectionError, redis_lib.TimeoutError)
        self._response_error = redis_lib.ResponseError

    def key(self, stream: str) -> str:
        return self.prefix + stream

    def _retry(self, fn: Callable[[], Any], what: str) -> Any:
        """``fn`` until it answers, through a restart of the server (up to ``retry_s``)."""
        try:
            return fn()  # the common case, without building a retry loop
        except self._conn_errors:
            pass
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        try:
            for attempt in Retrying(retry=retry_if_exception_type(self._conn_errors),
                                    stop=stop_after_delay(self.retry_s), wait=wait_exponential(0.02, max=0.5),
                                    reraise=True):
                with attempt:
                    return fn()
        except self._conn_errors as exc:
            raise StoreUnavailableError(f"the agents bus could not {what}: Redis did not answer for "
                                        f"{self.retry_s:.0f} s ({type(exc).__name__}: {exc})",
                                        hint="start Redis (or use EMERGENT_AGENT_BUS=memory); "
                                             "unacknowledged messages are delivered again") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _mac(self, stream: bytes, sender: bytes, body: bytes) -> bytes:
        # the stream is bound too: a sealed entry copied into another stream is not sealed there
        assert self._secret is not None
        return hashlib.blake2b(stream + b"\0" + sender + b"\0" + body, key=self._secret, digest_size=16).digest()

    def _sealed(self, stream: str, fields: dict[bytes, bytes]) -> bool:
        m = fields.get(b"m")
        return m is not None and hmac.compare_digest(m, self._mac(stream.encode(), fields[b"s"], fields[b"b"]))

    def _publish(self, stream: str, sender: str, bodies: list[bytes]) -> list[str]:
        key = self.key(stream)
        s, st = sender.encode(), stream.encode()
        mac = None if self._secret is None else self._mac

        def go() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for b in bodies:
                pipe.xadd(key, {"s": sender, "b": b} if mac is None else {"s": sender, "b": b, "m": mac(st, s, b)})
            return pipe.execute()  # type: ignore[no-any-return]

        return [_s(i) for i in self._retry(go, f"publish to {stream!r}")]

    def _ensure_group(self, stream: str, group: str, *, force: bool = False) -> None:
        if (stream, group) in self._groups and not force:
            return
        try:
            self.r.xgroup_create(self.key(stream), group, id="0", mkstream=True)
        except self._response_error as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((stream, group))

    def _with_group(self, stream: str, group: str, fn: Callable[[], Any], what: str) -> Any:
        def go() -> Any:
            self._ensure_group(stream, group)
            try:
                return fn()
            except self._response_error as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._ensure_group(stream, group, force=True)  # a restart without persistence lost it
                return fn()

        return self._retry(go, what)

    def _sender(self, raw: bytes) -> str:
        sender = self._senders.get(raw)
        if sender is None:
            sender = self._senders[raw] = raw.decode()
        return sender

    def _messages(self, stream: str, entries: Sequence[Any], redelivered: bool = False,
                  bad: list[tuple[str, str]] | None = None) -> list[Message]:
        senders, new = self._senders, tuple.__new__
        try:  # the hot path: every entry written by a bus (one pass, no per-entry try)
            if self._secret is not None:  # inlined: a call per entry costs as much as the MAC
                b2, k, eq, st = hashlib.blake2b, self._secret, hmac.compare_digest, stream.encode() + b"\0"
                if not all([eq(f.get(b"m", b""), b2(st + f[b"s"] + b"\0" + f[b"b"], key=k, digest_size=16).digest())
                            for _, f in entries if f]):
                    raise ValueError("an entry is not sealed")
            out = [new(Message, (mid.decode(), stream, senders.get(f[b"s"]) or self._sender(f[b"s"]), loads(f[b"b"]),
                                 redelivered)) for mid, f in entries if f]  # no fields: deleted while pending
            if all(type(m.body) is dict for m in out):
                return out
        except (KeyError, ValueError, UnicodeDecodeError):
            pass
        out = []
        for mid, fields in entries:  # one by one: keep the good, report the rest
            if not fields:
                continue
            try:
                if self._secret is not None and not self._sealed(stream, fields):
                    raise ValueError("no valid seal: not sent through a bus of this workspace")
                sender = self._sender(fields[b"s"])
                body = loads(fields[b"b"])
                if not isinstance(body, dict):
                    raise ValueError(f"the body is a {type(body).__name__}, not an object")
            except (KeyError, ValueError, UnicodeDecodeError) as exc:  # not written by a bus (another program)
                if bad is not None:
                    bad.append((_s(mid), f"{type(exc).__name__}: {exc}"[:200]))
                continue
            out.append(Message(mid.decode(), stream, sender, body, redelivered))
        return out

    def _drop(self, stream: str, group: str, bad: list[tuple[str, str]]) -> None:
        """Acknowledge entries no bus wrote (audited first, as the agents service), so they poison
        nobody: never delivered, never claimed again."""
        if not bad or self.principals is None:
            return
        self.audit.append("agents.message.dropped", self.principals.service("agents"),
                          {"bus": self.name, "stream": stream, "group": group,
                           "dropped": [{"id": i, "why": why} for i, why in bad]})
        self._ack(stream, group, [i for i, _ in bad])

    def _consume(self, stream: str, group: str, consumer: str, count: int, block_ms: int) -> list[Message]:
        key = self.key(stream)

        def go() -> Any:
            return self.r.xreadgroup(group, consumer, {key: ">"}, count=count, block=block_ms or None)

        got = self._with_group(stream, group, go, f"read {stream!r}")
        if not got:
            return []
        bad: list[tuple[str, str]] = []
        out = self._messages(stream, got[0][1], bad=bad)
        self._drop(stream, group, bad)
        return out

    def _ack(self, stream: str, group: str, ids: list[str]) -> int:
        return int(self._with_group(stream, group, lambda: self.r.xack(self.key(stream), group, *ids),
                                    f"acknowledge on {stream!r}"))

    def _create_group(self, stream: str, group: str) -> None:
        self._retry(lambda: self._ensure_group(stream, group, force=True), f"create group {group!r} on {stream!r}")

    def _trim_floor(self, stream: str, older_than_ms: int) -> str | None:
        key = self.key(stream)

        def go() -> str | None:
            oldest = self.r.xrange(key, count=1)
            if not oldest:
                return None
            secs, micros = self.r.time()  # the server's clock, which made the ids
            floor = (int(secs) * 1000 + int(micros) // 1000 - older_than_ms + 1, 0)  # up to that ms, inclusive
            for g in self.r.xinfo_groups(key):
                floor = min(floor, _id(_after(_s(g["last-delivered-id"]))))
                if int(g["pending"]):
                    floor = min(floor, _id(_s(self.r.xpending(key, g["name"])["min"])))
            return f"{floor[0]}-{floor[1]}" if _id(_s(oldest[0][0])) < floor else None

        return self._retry(go, f"read the groups of {stream!r}")  # type: ignore[no-any-return]

    def _trim(self, stream: str, below: str) -> int:
        # MINID: entries with a smaller id go; new ones are larger, and what a group reads next or
        # holds pending is at or above ``below`` (checked just before), so nothing unacknowledged goes
        return int(self._retry(lambda: self.r.xtrim(self.key(stream), minid=below, approximate=False),
                               f"trim {stream!r}"))

    def _idle(self, stream: str, group: str, min_idle_ms: int, count: int) -> list[str]:
        got = self._with_group(stream, group, lambda: self.r.xpending_range(
            self.key(stream), group, min="-", max="+", count=count, idle=min_idle_ms), f"read pending on {stream!r}")
        return [_s(p["message_id"]) for p in got]

    def _claim(self, stream: str, group: str, consumer: str, min_idle_ms: int, ids: list[str]) -> list[Message]:
        got = self._with_group(stream, group, lambda: self.r.xclaim(self.key(stream), group, consumer, min_idle_ms,
                                                                    ids), f"claim on {stream!r}")
        bad: list[tuple[str, str]] = []
        out = self._messages(stream, got, redelivered=True, bad=bad)
        self._drop(stream, group, bad)
        return out

    def history(self, stream: str, limit: int = 100) -> list[Message]:
        got = self._retry(lambda: self.r.xrevrange(self.key(stream), count=limit), f"read {stream!r}")
        return self._messages(stream, got[::-1])

    def streams(self) -> list[str]:
        keys = self._retry(lambda: list(self.r.scan_iter(match=self.prefix + "*", count=500)), "list streams")
        return sorted(_s(k)[len(self.prefix):] for k in keys)

    def pending(self, stream: str, group: str) -> int:
        got = self._with_group(stream, group, lambda: self.r.xpending(self.key(stream), group), "read pending")
        return int(got["pending"] if isinstance(got, dict) else got[0])


BUSES: Registry[Callable[..., Bus]] = Registry("agent bus", "emergent.agent_buses")
BUSES.register("memory", MemoryBus)
BUSES.register("redis", RedisBus)


def open_bus(name: str, *, audit: Any, redis: Any = None, namespace: str = "emergent",
             principals: Any = None, secret: bytes | None = None) -> Bus:
    """The bus registered as ``name`` (``memory`` or ``redis``; plugins by entry point); ``secret``:
    the workspace's key that seals each entry's sender on a shared bus (Redis)."""
    factory = BUSES.get(name)
    return factory(redis=redis, namespace=namespace, audit=audit, principals=principals, secret=secret)
