"""Where a request's blocking work runs: a small pool for quick requests, the usual one for the rest.

FastAPI runs every ``def`` endpoint and dependency on anyio's default thread pool (40 threads).
Under load that is the wrong size for requests that only compute in this process: with the GIL,
40 threads of Python work take turns instead of running together, and the turns cost. On the API
bench's mix (token check, recall, remember, the recall tool) at 200 req/s on 2 cores, a server
process spent 9.4 ms of CPU a request with 40 threads and 7.1 ms with 2, and kept up (p95 180 ms
against 7 s with the backlog growing). So the quick work, token checks, memory recall and
remember and in-process tools, runs on a pool of ``EMERGENT_API__QUICK_THREADS`` (2) threads a
process, and everything that may wait for seconds (a sandboxed program, a notebook, the network,
a language model, a workflow) keeps the pool of 40, where waiting threads do not crowd the quick
ones.

**Reads on the event loop** (``EMERGENT_API__INLINE_READS``, on by default). Token checks, memory
recall and get, and calls of the ``memory.recall`` tool run on the event loop itself, not on a
thread: under load every hop to a thread and back was paid in GIL hand-overs between the loop and
the pool (at 200 req/s of the bench's mix on 2 cores, recall p95 19.7 ms with the hops, 10.6 ms
without; one at a time 4.0 against 2.9 ms, the in-process call 3.1 ms). A worker process then
answers one read at a time, as a synchronous worker does; the trade-off is that a read that waits
(a Redis that stopped answering: once, see ``emergent.stores.redis.Cooldown``; the first recall
of a scope, which loads its hot index) holds that worker's loop, health checks included, for as
long. Writes (remember, the ``memory.remember`` tool) stay on the quick pool: they wait on
the disk and the audit's durable appends.

The quick pool's limiter lives in an anyio ``RunVar`` (one per event loop: a limiter belongs to
the loop it was made in), set at the app's startup; before that (an app used without its
lifespan) quick work runs on the default pool, and reads on the loop only once the app has started.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

T = TypeVar("T")

_QUICK: RunVar[anyio.CapacityLimiter] = RunVar("emergent_api_quick_pool")
_INLINE: RunVar[bool] = RunVar("emergent_api_inline_reads", default=False)


def install(app: Any, threads: int, inline_reads: bool = True) -> None:
    """Make the quick pool (``threads`` threads) when ``app`` starts, in its event loop, and say
    whether reads run on the loop itself."""
    async def start() -> None:
        _QUICK.set(anyio.CapacityLimiter(threads))
        _INLINE.set(inline_reads)

    app.router.on_startup.append(start)


def reads_inline() -> bool:
    """Whether the running loop answers reads itself (see the module's docstring)."""
    return _INLINE.get()


def quick_limiter() -> anyio.CapacityLimiter | None:
    """The running loop's quick pool (None: not started; the default pool then)."""
    try:
        return _QUICK.get()
    except LookupError:
        return None


async def run_quick(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the quick pool."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=quick_limiter())


async def run_read(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a read that answers from this process in milliseconds: on the event loop when
    reads run inline, else on the quick pool."""
    if _INLINE.get():
        return fn(*args)
    return await run_quick(fn, *args)


def read(endpoint: Callable[..., T]) -> Callable[..., Any]:
    """A ``def`` endpoint run by :func:`run_read` (FastAPI reads the parameters of ``endpoint``)."""
    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> T:
        return await run_read(functools.partial(endpoint, **kwargs))

    return run


def quick(endpoint: Callable[..., T]) -> Callable[..., Any]:
    """A ``def`` endpoint run on the quick pool. FastAPI reads the parameters of ``endpoint``
    (``functools.wraps`` keeps them) and awaits the wrapper, which hands the call to the pool."""
    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(endpoint, **kwargs), limiter=quick_limiter())

    return run
