"""Injected time, so decay, TTLs and schedules are testable without sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to; shipped in the library for users' tests too."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float = 0.0, *, days: float = 0.0, hours: float = 0.0) -> float:
        self._t += seconds + days * 86400.0 + hours * 3600.0
        return self._t

    def set(self, t: float) -> None:
        self._t = float(t)


def to_epoch(value: float | int | datetime | str | None, default: float) -> float:
    """Accept an epoch, an aware/naive datetime (naive = UTC) or an ISO string."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    raise TypeError(f"expected a timestamp, datetime or ISO string, got {type(value).__name__}")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds")


DAY = timedelta(days=1).total_seconds()
