"""A private asyncio event loop in a daemon thread: how synchronous code (and a notebook cell whose own
loop is already running) drives Playwright's async API.

Playwright objects belong to the loop that created them, so every coroutine touching the browser runs on
this one loop; callers block on :meth:`LoopThread.run` (sync) or await ``asyncio.wrap_future`` of
:meth:`LoopThread.submit` (async code on another loop). Blocking in a thread whose own loop runs is fine:
the work happens on the private thread, never on the caller's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from emergent.errors import StateConflictError, TimeoutExceeded

T = TypeVar("T")
#: how often a blocked caller wakes to notice Ctrl-C (s)
SLICE_S = 0.1


class LoopThread:
    """One event loop, run forever in a daemon thread until :meth:`close`."""

    def __init__(self, name: str = "emergent-browser") -> None:
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def in_loop(self) -> bool:
        """True when called from the loop's own thread (where :meth:`run` would deadlock)."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; its concurrent Future."""
        if self._closed:
            coro.close()
            raise StateConflictError("the browser's event loop is closed",
                                     hint="the BrowserService was closed; open the workstation's browser again")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from any thread but the loop's own). A
        KeyboardInterrupt while waiting cancels the coroutine; ``timeout`` (s) cancels it too and raises
        TimeoutExceeded."""
        if self.in_loop():
            coro.close()
            raise StateConflictError("a blocking browser call was made from inside the browser's own loop",
                                     hint="inside session.run(fn) use the page's async API, not the session's "
                                          "blocking methods")
        if self._closed:
            coro.close()
            raise StateConflictError("the browser's event loop is closed",
                                     hint="the BrowserService was closed; open the workstation's browser again")
        stop = threading.Event()
        tasks: list[asyncio.Task[Any]] = []

        async def guarded() -> T:
            task = asyncio.current_task()
            if task is not None:
                tasks.append(task)
            if stop.is_set():  # Ctrl-C came before the coroutine started
                coro.close()
                raise asyncio.CancelledError
            return await coro

        fut: concurrent.futures.Future[T] | None = None
        end = None if timeout is None else time.monotonic() + timeout
        try:
            fut = self.submit(guarded())
            # waited in short slices: a blocked lock wait would not see Ctrl-C until the coroutine ended
            while not fut.done():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                concurrent.futures.wait([fut], timeout=SLICE_S if left is None else min(SLICE_S, left))
            return fut.result(0)
        except concurrent.futures.TimeoutError:
            if fut is not None and fut.done():  # the coroutine's own TimeoutError (e.g. TimeoutExceeded)
                raise
            self._cancel(stop, fut, tasks)
            raise TimeoutExceeded(f"the browser did not answer within {timeout} s",
                                  hint="raise the timeout, or check the page with session.screenshot()") from None
        except KeyboardInterrupt:  # also when it lands while the coroutine is being handed over
            self._cancel(stop, fut, tasks)
            raise
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            # not ours (Ctrl-C re-raises above): the loop is closing under this call
            raise StateConflictError("the browser service was closed while this call was running",
                                     hint="open the workstation's browser again and repeat the call") from None

    def _cancel(self, stop: threading.Event, fut: concurrent.futures.Future[Any] | None,
                tasks: list[asyncio.Task[Any]]) -> None:
        stop.set()
        if fut is not None:
            fut.cancel()
        for task in list(tasks):
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(task.cancel)

    def close(self) -> None:
        """Stop the loop (pending tasks cancelled) and join the thread; idempotent."""
        if self._closed:
            return
        self._closed = True

        async def _cancel_all() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._loop.is_running() and not self.in_loop():
            # closing: a task that will not cancel must not stop the rest
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_all(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
