"""Redis: one connection factory for every URL form, a health check, a key namespace, and what a
restart of the server would keep (``persistence``).

``redis://`` / ``rediss://`` / ``unix://`` go to a standalone client; ``redis+cluster://`` (or
``rediss+cluster://``) to :class:`redis.cluster.RedisCluster`. Keys of a workspace all start with
``emergent:<workspace-id>:``; callers that need multi-key atomicity put a hash tag (``{...}``) in
the key so the keys land in one cluster slot.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from emergent.errors import ConfigError, MissingExtraError, StoreUnavailableError

_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - exercised in a minimal install
        raise MissingExtraError("Redis short-term memory", "redis", "redis") from exc
    return redis


def connect(url: str, *, timeout_s: float = 2.0) -> Any:
    """A redis-py client for ``url``; raises :class:`ConfigError` for an unknown scheme."""
    if not url.startswith(_SCHEMES):
        raise ConfigError(
            f"unsupported Redis URL {url!r}",
            hint="use redis://host:port/db, rediss://..., unix:///path.sock or redis+cluster://host:port",
        )
    redis = _import_redis()
    common: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if "+cluster://" in url:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url.replace("+cluster", ""), **common)
    return redis.Redis.from_url(url, **common)


class Cooldown:
    """After a server *timed out* (it accepted the connection and then answered nothing: stopped,
    swapped out, a network partition), fail fast for ``seconds`` instead of waiting out the socket
    timeout again on every call. A refused connection fails fast by itself and does not trip it.

    The REST API answers reads on its event loop (``EMERGENT_API__INLINE_READS``): without this, a
    hung Redis held that loop, its health check included, for the 2 s timeout of each request in
    turn. The error raised meanwhile is the caller's own, built from the timeout it remembers."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self._until = 0.0
        self._last: BaseException | None = None
        self._lock = threading.Lock()

    def pending(self) -> TimeoutError | None:
        """A new error saying so while the last timeout cools down (call nothing then), or None."""
        with self._lock:
            last, left = self._last, self._until - time.monotonic()
        if last is None or left <= 0:
            return None
        return TimeoutError(f"{type(last).__name__}: {last} (not tried again for another {left:.1f} s)")

    def saw(self, exc: BaseException) -> None:
        """Note ``exc`` if it is a timeout."""
        if is_timeout(exc):
            with self._lock:
                self._last, self._until = exc, time.monotonic() + self.seconds


def is_timeout(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover - exercised in a minimal install
        return isinstance(exc, TimeoutError)
    return isinstance(exc, (redis.TimeoutError, TimeoutError))


@dataclass(frozen=True)
class Health:
    ok: bool
    latency_ms: float
    detail: str


def health(client: Any) -> Health:
    import time

    t0 = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:  # any redis error means "not healthy"; report, don't raise
        return Health(False, (time.perf_counter() - t0) * 1e3, f"{type(exc).__name__}: {exc}")
    return Health(True, (time.perf_counter() - t0) * 1e3, "PONG")


def describe(client: Any) -> str:
    """``host:port/db`` (or the socket path) of a client, for messages; never the password."""
    try:
        kw = client.connection_pool.connection_kwargs
    except AttributeError:  # a cluster client: name one startup node
        nodes = getattr(client, "startup_nodes", None) or []
        return f"cluster {nodes[0].host}:{nodes[0].port}" if nodes else "a Redis cluster"
    if kw.get("path"):
        return f"unix://{kw['path']}"
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def run_id(client: Any) -> str | None:
    """The server's ``run_id`` (INFO server): a new value after every restart; None for a cluster."""
    try:
        info = client.info("server")
    except Exception as exc:
        if _is_connection_error(exc):
            raise
        return None  # INFO refused (ACL) or a cluster answering per node
    value = info.get("run_id") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


def _is_connection_error(exc: Exception) -> bool:
    redis = _import_redis()
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))


def _config(client: Any, name: str) -> str | None:
    """One CONFIG GET value, or None where CONFIG is refused (managed services often rename it)."""
    try:
        answer = client.config_get(name)
    except Exception as exc:
        if _is_connection_error(exc):
            raise
        return None
    value = answer.get(name) if isinstance(answer, dict) else None
    if isinstance(value, bytes):
        value = value.decode()
    return value if isinstance(value, str) else None


def persistence(client: Any) -> dict[str, Any]:
    """What a restart of this Redis would keep of what it acknowledged, with warnings to act on.

    Reads ``CONFIG GET appendonly / appendfsync / save / maxmemory-policy`` and ``INFO persistence``
    (the latter where CONFIG is refused). ``loss_on_restart`` is one of ``none`` (AOF with
    ``appendfsync always``), ``about 1 s`` (AOF with ``everysec``: a crash loses up to about a
    second of acknowledged writes), ``OS-dependent`` (AOF with ``no``), ``since the last snapshot``
    (RDB only), ``everything`` (neither) or ``unknown``.
    """
    info: dict[str, Any] = {}
    try:
        got = client.info("persistence")
        info = got if isinstance(got, dict) else {}
    except Exception as exc:
        if _is_connection_error(exc):
            raise
    aof_cfg = _config(client, "appendonly")
    aof: bool | None = aof_cfg == "yes" if aof_cfg is not None else (
        bool(int(info["aof_enabled"])) if "aof_enabled" in info else None)
    fsync = _config(client, "appendfsync")
    save = _config(client, "save")
    policy = _config(client, "maxmemory-policy")
    out: dict[str, Any] = {
        "aof": aof, "appendfsync": fsync, "rdb_save": save, "maxmemory_policy": policy,
        "aof_last_write_status": info.get("aof_last_write_status"),
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
    }
    warnings: list[str] = []
    if aof:
        loss = {"always": "none", "everysec": "about 1 s", "no": "OS-dependent"}.get(fsync or "", "unknown")
        if fsync == "everysec":
            warnings.append("appendfsync everysec: a Redis crash loses up to about a second of acknowledged "
                            "short-term writes; use appendfsync always to lose none")
        elif fsync == "no":
            warnings.append("appendfsync no: the OS decides when the AOF reaches the disk (typically 30 s)")
    elif aof is False:
        loss = "since the last snapshot" if save else "everything"
        warnings.append("Redis runs without AOF (appendonly no): a restart loses "
                        + ("every write since the last RDB snapshot" if save else "every short-term item")
                        + "; set appendonly yes (appendfsync always or everysec)")
    else:
        loss = "unknown"
        warnings.append("could not read Redis's persistence settings (CONFIG and INFO refused)")
    if policy is not None and policy != "noeviction":
        warnings.append(f"maxmemory-policy {policy}: under memory pressure Redis evicts keys, short-term "
                        "items included, without telling anyone; use noeviction")
    for key in ("aof_last_write_status", "rdb_last_bgsave_status"):
        if out[key] not in (None, "ok"):
            warnings.append(f"{key} is {out[key]}: Redis failed to write its persistence files")
    out.update(loss_on_restart=loss, warnings=warnings)
    return out


def namespace(workspace_id: str) -> str:
    """The key prefix of one workspace: short, stable, safe in any key."""
    digest = hashlib.blake2s(workspace_id.encode(), digest_size=6).hexdigest()
    return f"emergent:{digest}"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (an error message or a log line is no place for it)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # not a URL we can take apart: say nothing of it
        return "(the configured EMERGENT_REDIS_URL)"


def unavailable(url: str, exc: Exception) -> StoreUnavailableError:
    shown = redact_url(url)
    return StoreUnavailableError(
        f"Redis at {shown} did not answer ({type(exc).__name__}: {exc})",
        hint="start Redis or unset EMERGENT_REDIS_URL to use the embedded store; nothing was written",
        url=shown,
    )
