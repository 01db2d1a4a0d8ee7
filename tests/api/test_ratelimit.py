"""Rate limits per token: 429 with Retry-After, counted atomically in the real Redis (shared by every
instance) or in the process without Redis."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from fastapi.testclient import TestClient

from emergent import Workstation
from emergent.api import create_app
from emergent.api.errors import RateLimited
from emergent.api.ratelimit import RateLimiter, parse_rate
from emergent.errors import ConfigError


def test_rates_parse_and_bad_ones_name_the_setting() -> None:
    assert parse_rate("600/minute") == (600, 60.0) and parse_rate("5 / s") == (5, 1.0)
    assert parse_rate("2/hour") == (2, 3600.0)
    for bad in ("", "0/minute", "ten/minute", "5/fortnight", "-1/s"):
        with pytest.raises(ConfigError, match="EMERGENT_API__RATE_LIMIT|rate limit"):
            parse_rate(bad)


def _limited_app(ws: Any, rate: str) -> Any:
    return create_app(ws, config=ws.settings.api.model_copy(update={"rate_limit": rate}))


def test_token_over_its_limit_gets_429_with_retry_after_on_redis(tmp_path: Path, redis_url: str) -> None:
    """Two instances (two apps, two workstations on one database and one Redis): the limit is the token's,
    whichever instance answers."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    a = Workstation.open(tmp_path / "a", embedder="hashing", redis_url=redis_url, database_url=db, create=True)
    b = Workstation.open(tmp_path / "b", embedder="hashing", redis_url=redis_url, database_url=db, create=True)
    try:
        me = a.principal
        _, secret = a.tokens.create(me, "viewer", by=me, ttl_s=600)
        _, other = a.tokens.create(me, "viewer", by=me, ttl_s=600)
        h = {"Authorization": f"Bearer {secret}"}
        ca, cb = TestClient(_limited_app(a, "3/minute")), TestClient(_limited_app(b, "3/minute"))
        assert ca.app.state.limiter.backend == "redis"
        codes = [c.get("/v1/audit/verify", headers=h).status_code for c in (ca, cb, ca)]
        assert codes == [200, 200, 200]
        over = cb.get("/v1/audit/verify", headers=h)
        assert over.status_code == 429 and over.headers["content-type"] == "application/problem+json"
        assert 1 <= int(over.headers["retry-after"]) <= 20 and over.json()["hint"]
        assert ca.get("/v1/audit/verify", headers=h).status_code == 429
        # another token has its own budget
        assert ca.get("/v1/audit/verify", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    finally:
        a.close()
        b.close()


def test_redis_counts_concurrent_requests_atomically(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)
    limiter = RateLimiter("10/minute", redis=client, prefix=f"t{uuid.uuid4().hex[:8]}:")
    allowed, refused = [], []
    start = threading.Barrier(20)

    def hit() -> None:
        start.wait()
        try:
            limiter.hit("tok")
            allowed.append(1)
        except RateLimited as exc:
            refused.append(exc.retry_after)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 10 and len(refused) == 10 and all(1 <= r <= 7 for r in refused)
    assert client.pttl(limiter.prefix + "tok") > 0  # the key expires once the bucket is full again
    client.close()


def test_in_process_limit_without_redis(ws: Any, me: Any) -> None:
    _, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=600)
    app = _limited_app(ws, "2/hour")
    assert app.state.limiter.backend == "process"
    c = TestClient(app)
    h = {"Authorization": f"Bearer {secret}"}
    assert [c.get("/v1/audit/verify", headers=h).status_code for _ in range(3)] == [200, 200, 429]
    assert 1700 <= int(c.get("/v1/audit/verify", headers=h).headers["retry-after"]) <= 1800


def test_unauthenticated_requests_do_not_spend_a_tokens_budget(ws: Any, me: Any) -> None:
    _, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=600)
    c = TestClient(_limited_app(ws, "1/hour"))
    for _ in range(3):
        assert c.get("/v1/audit/verify", headers={"Authorization": "Bearer emk_forged"}).status_code == 401
    assert c.get("/v1/audit/verify", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
