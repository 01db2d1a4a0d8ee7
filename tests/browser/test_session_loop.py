"""The private event loop behind the blocking browser API: results and errors cross threads as they are,
Ctrl-C and timeouts cancel the coroutine, a blocking call from the loop's own thread is refused, and the
same thread can serve a caller whose own loop is running (a notebook cell)."""

from __future__ import annotations

import _thread
import asyncio
import threading

import pytest

from emergent.browser._loop import LoopThread
from emergent.errors import NotFoundError, StateConflictError, TimeoutExceeded


@pytest.fixture
def lt() -> LoopThread:
    t = LoopThread()
    yield t
    t.close()


def test_results_and_our_own_errors_come_back_unchanged(lt: LoopThread) -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert lt.run(where()) == "emergent-browser"

    async def fails() -> None:
        raise TimeoutExceeded("inner timeout", hint="x")  # a TimeoutError subclass: not the wait's own timeout

    with pytest.raises(TimeoutExceeded, match="inner timeout"):
        lt.run(fails())

    async def missing() -> None:
        raise NotFoundError("nothing", hint="y")

    with pytest.raises(NotFoundError):
        lt.run(missing())


def test_a_timeout_cancels_the_coroutine(lt: LoopThread) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutExceeded, match="did not answer within 0.2 s"):
        lt.run(slow(), timeout=0.2)
    assert cancelled.wait(5)


def test_ctrl_c_while_waiting_cancels_the_coroutine(lt: LoopThread) -> None:
    cancelled = threading.Event()
    started = threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt() -> None:
        started.wait(5)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        lt.run(slow())
    assert cancelled.wait(5)


def test_called_from_inside_a_running_loop_and_refused_from_its_own(lt: LoopThread) -> None:
    async def inner() -> int:
        return 7

    async def cell() -> tuple[int, int]:
        blocking = lt.run(inner())  # the caller's loop is running: fine, the work is on lt's thread
        awaited = await asyncio.wrap_future(lt.submit(inner()))
        return blocking, awaited

    assert asyncio.run(cell()) == (7, 7)

    async def reentrant() -> int:
        return lt.run(inner())

    with pytest.raises(StateConflictError, match="inside the browser's own loop"):
        lt.run(reentrant())


def test_close_is_idempotent_and_refuses_new_work() -> None:
    t = LoopThread()
    t.close()
    t.close()

    async def nothing() -> None:
        return None

    with pytest.raises(StateConflictError, match="closed"):
        t.run(nothing())


def test_closing_the_loop_under_a_running_call_raises_our_error() -> None:
    t = LoopThread()
    started = threading.Event()
    got: list[BaseException] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    def call() -> None:
        try:
            t.run(slow())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            got.append(exc)

    th = threading.Thread(target=call)
    th.start()
    assert started.wait(5)
    t.close()
    th.join(10)
    assert not th.is_alive() and len(got) == 1
    assert isinstance(got[0], StateConflictError) and "closed while" in str(got[0])
