"""A buffered writer: appends are list operations; rows reach the store in batches.

Written by hand because it is ten lines of threading that no library we use provides in this
shape: flush every ``flush_every`` items, every ``flush_interval`` seconds from a daemon thread
(started on first use), on demand, and on close. Subclasses implement :meth:`_write`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any


class BatchWriter(ABC):
    thread_name = "batch-flush"

    def __init__(self, *, flush_every: int, flush_interval: float | None) -> None:
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self._buf: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _add(self, item: Any, *, now: bool = False) -> None:
        with self._lock:
            self._buf.append(item)
            n = len(self._buf)
        if now or n >= self.flush_every:
            self.flush()
        elif self._thread is None and self.flush_interval:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        assert self.flush_interval
        while not self._stop.wait(self.flush_interval):
            if self._buf:
                self.flush()

    def _take(self) -> list[Any]:
        with self._lock:
            batch, self._buf = self._buf, []
        return batch

    def _put_back(self, batch: list[Any]) -> None:
        with self._lock:
            self._buf[:0] = batch

    def flush(self) -> int:
        batch = self._take()
        if batch:
            self._write(batch)
        return len(batch)

    @abstractmethod
    def _write(self, batch: list[Any]) -> None:
        """Store one batch (one transaction)."""

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()
