"""Redis: one connection factory for every URL form, a health check and a key namespace.

``redis://`` / ``rediss://`` / ``unix://`` go to a standalone client; ``redis+cluster://`` (or
``rediss+cluster://``) to :class:`redis.cluster.RedisCluster`. Keys of a workspace all start with
``emergent:<workspace-id>:``; callers that need multi-key atomicity put a hash tag (``{...}``) in
the key so the keys land in one cluster slot.
"""

from __future__ import annotations

import hashlib
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


def namespace(workspace_id: str) -> str:
    """The key prefix of one workspace: short, stable, safe in any key."""
    digest = hashlib.blake2s(workspace_id.encode(), digest_size=6).hexdigest()
    return f"emergent:{digest}"


def unavailable(url: str, exc: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"Redis at {url} did not answer ({type(exc).__name__}: {exc})",
        hint="start Redis or unset EMERGENT_REDIS_URL to use the embedded store; nothing was written",
        url=url,
    )
