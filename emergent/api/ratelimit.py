"""Rate limits per API token: the generic cell rate algorithm (GCRA), in Redis or in the process.

``EMERGENT_API__RATE_LIMIT`` is ``N/second``, ``N/minute`` or ``N/hour``: a token may send N requests
at once and then one every period/N. Each token keeps one number, its *theoretical arrival time*
(TAT). With Redis configured, the check-and-update is one Lua script (atomic, on Redis's clock), so
every instance behind a load balancer counts against the same limit; the key is the token's id
(random, so workspaces sharing a Redis never collide) and expires when the bucket is full again.
Without Redis the same arithmetic runs under a lock in the process. Over the limit:
:class:`RateLimited` (429) with ``retry_after`` seconds.
"""

from __future__ import annotations

import math
import re
import threading
import time
from typing import Any

from emergent.api.errors import RateLimited
from emergent.errors import ConfigError, StoreUnavailableError
from emergent.stores.redis import Cooldown

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
            "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")

#: KEYS[1] the token's key; ARGV[1] emission interval (µs), ARGV[2] burst window (µs).
#: Returns {allowed (0/1), retry_after_µs}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


def parse_rate(text: str) -> tuple[int, float]:
    """``"600/minute"`` → (600, 60.0); a ConfigError naming the setting otherwise."""
    m = _RATE.match(str(text).lower())
    if not m or m.group(2) not in _PERIODS or int(m.group(1)) < 1:
        raise ConfigError(f"rate limit {text!r} is not of the form N/second, N/minute or N/hour",
                          hint="set EMERGENT_API__RATE_LIMIT, e.g. 600/minute", setting="EMERGENT_API__RATE_LIMIT")
    return int(m.group(1)), _PERIODS[m.group(2)]


class RateLimiter:
    """``hit(token_id)`` counts one request; raises :class:`RateLimited` when over the limit."""

    def __init__(self, rate: str, *, redis: Any = None, prefix: str = "emergent:ratelimit:") -> None:
        self.limit, self.period = parse_rate(rate)
        self.interval = self.period / self.limit
        self.redis = redis
        self.prefix = prefix
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}
        self._script = redis.register_script(GCRA) if redis is not None else None
        self._cooldown = Cooldown()

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None else "process"

    def hit(self, token_id: str) -> None:
        wait = self._redis_hit(token_id) if self._script is not None else self._local_hit(token_id)
        if wait > 0:
            raise RateLimited(f"this token sent more than {self.limit} requests per {self.period:g} s",
                              hint=f"wait {math.ceil(wait)} s (Retry-After) and send fewer requests",
                              retry_after=math.ceil(wait), limit=self.limit, period_s=self.period)

    def _redis_hit(self, token_id: str) -> float:
        import redis

        assert self._script is not None
        late = self._cooldown.pending()
        if late is not None:  # timed out a moment ago: do not wait for it again (see Cooldown)
            raise StoreUnavailableError(f"the rate limiter's Redis did not answer ({late})",
                                        hint="check EMERGENT_REDIS_URL and that Redis runs")
        try:
            allowed, wait_us = self._script(keys=[self.prefix + token_id],
                                            args=[int(self.interval * 1e6), int(self.period * 1e6)])
        except redis.RedisError as exc:
            self._cooldown.saw(exc)
            raise StoreUnavailableError(f"the rate limiter's Redis did not answer ({type(exc).__name__}: {exc})",
                                        hint="check EMERGENT_REDIS_URL and that Redis runs") from exc
        return 0.0 if int(allowed) else int(wait_us) / 1e6

    def _local_hit(self, token_id: str) -> float:
        # integer nanoseconds: with floats, (now + T) - T can come out above now and refuse a first request
        now = time.monotonic_ns()
        interval, window = int(self.interval * 1e9), int(self.period * 1e9)
        with self._lock:
            tat = max(self._tat.get(token_id, now), now)
            new_tat = tat + interval
            allow_at = new_tat - window
            if now < allow_at:
                return (allow_at - now) / 1e9
            self._tat[token_id] = new_tat
            if len(self._tat) > 100_000:  # forget the tokens whose bucket is full again
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return 0.0
