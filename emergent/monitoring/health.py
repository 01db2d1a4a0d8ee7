"""Readiness: each store answers a cheap check within a short timeout, or the instance is not ready.

Each check runs on its own daemon thread: a store that hangs (a blackholed PostgreSQL, a stalled
object store) costs the probe ``timeout_s``, never a stuck probe, and is not checked again while its
previous check is still waiting. Results are reused for ``cache_s`` so frequent probes and scrapes
cost one round of checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from emergent.monitoring.metrics import StoreStatus


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: StoreStatus | None = None
        self.started = time.perf_counter()


class Readiness:
    """``checks``: store name → a callable that returns when the store answers and raises otherwise."""

    def __init__(self, checks: Mapping[str, Callable[[], None]], *, timeout_s: float = 2.0,
                 cache_s: float = 1.0) -> None:
        self.checks = dict(checks)
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._running: dict[str, _Pending] = {}
        self._last: tuple[float, dict[str, StoreStatus]] | None = None

    def check(self) -> dict[str, StoreStatus]:
        """The status of every store (reused when younger than ``cache_s``)."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.cache_s:
                return dict(self._last[1])
            pending = {name: self._start(name, fn) for name, fn in self.checks.items()}
        deadline = time.perf_counter() + self.timeout_s
        out: dict[str, StoreStatus] = {}
        for name, p in pending.items():
            p.done.wait(max(0.0, deadline - time.perf_counter()))
            if p.result is not None:
                out[name] = p.result
            else:
                out[name] = StoreStatus(False, f"did not answer within {self.timeout_s:g} s",
                                        time.perf_counter() - p.started)
        with self._lock:
            self._last = (time.monotonic(), out)
        return dict(out)

    def _start(self, name: str, fn: Callable[[], None]) -> _Pending:
        running = self._running.get(name)
        if running is not None and not running.done.is_set():
            return running  # still waiting on the previous check: do not pile up threads on a hung store
        p = _Pending()
        self._running[name] = p

        def run() -> None:
            try:
                fn()
                p.result = StoreStatus(True, "ok", time.perf_counter() - p.started)
            except Exception as exc:
                p.result = StoreStatus(False, f"{type(exc).__name__}: {_first_line(exc)}",
                                       time.perf_counter() - p.started)
            finally:
                p.done.set()

        threading.Thread(target=run, name=f"readyz-{name}", daemon=True).start()
        return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
