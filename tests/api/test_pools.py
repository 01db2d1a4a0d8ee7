"""Quick requests run on a small pool; requests that may wait for seconds keep the large one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from emergent.api.routers.tools import in_process
from emergent.tools.spec import tool


class Gauge:
    """How many calls run at once (at most)."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: Any) -> None:
        with self.lock:
            self.now -= 1


def _recalls_at_once(ws: Any, app: Any, headers: Any, monkeypatch: Any) -> tuple[int, set[int]]:
    """Eight recalls sent together: how many ran at once (at most), and on which threads."""
    gauge, threads = Gauge(), set()
    real = ws.memory.recall

    def slow_recall(*args: Any, **kwargs: Any) -> Any:
        with gauge:
            threads.add(threading.get_ident())
            time.sleep(0.15)
            return real(*args, **kwargs)

    monkeypatch.setattr(ws.memory, "recall", slow_recall)
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: client.get("/v1/memory/recall", params={"query": f"q{i}"},
                                                   headers=headers["viewer"]).status_code, range(8)))
    assert codes == [200] * 8
    return gauge.most, threads


def test_recalls_run_on_the_event_loop_one_at_a_time_by_default(ws: Any, app: Any, headers: Any,
                                                                monkeypatch: Any) -> None:
    """Reads answer on the loop (no hop to a thread and back): one thread, one recall at a time."""
    assert app.state.config.inline_reads
    most, threads = _recalls_at_once(ws, app, headers, monkeypatch)
    assert most == 1 and len(threads) == 1


def test_with_reads_on_threads_recalls_run_at_most_quick_threads_at_a_time(ws: Any, headers: Any,
                                                                            monkeypatch: Any) -> None:
    from emergent.api import create_app

    app = create_app(ws, config=ws.settings.api.model_copy(update={"inline_reads": False}))
    assert app.state.config.quick_threads == 2
    most, threads = _recalls_at_once(ws, app, headers, monkeypatch)
    assert most == 2 and len(threads) == 2


def test_slow_tool_calls_do_not_hold_up_recalls(ws: Any, app: Any, headers: Any, me: Any) -> None:
    release = threading.Event()

    @tool(name="wait_for_release", version="1.0.0")
    def wait_for_release() -> str:
        """Waits until the test releases it (a program, a remote service: something slow)."""
        release.wait(20)
        return "released"

    ws.tools.add(wait_for_release)
    assert not in_process(ws.tools.resolve("wait_for_release"))
    assert in_process(ws.tools.resolve("memory.recall"))
    with TestClient(app) as client, ThreadPoolExecutor(6) as pool:
        slow = [pool.submit(client.post, "/v1/tools/wait_for_release/call", json={"args": {}},
                            headers=headers["operator"]) for _ in range(4)]
        time.sleep(0.3)  # four slow calls in flight: more than the quick pool's two threads
        t0 = time.perf_counter()
        fast = client.post("/v1/tools/memory.recall/call", json={"args": {"query": "harbour"}},
                           headers=headers["operator"])
        recalled = client.get("/v1/memory/recall", params={"query": "harbour"}, headers=headers["viewer"])
        waited = time.perf_counter() - t0
        assert not any(f.done() for f in slow)
        release.set()
        answers = [f.result(30) for f in slow]
    assert fast.status_code == 200 and recalled.status_code == 200 and waited < 5
    assert all(a.status_code == 200 and a.json()["result"] == "released" for a in answers), [a.text for a in answers]


def test_a_tool_that_declares_itself_quick_but_blocks_does_not_take_the_quick_pool(
        ws: Any, app: Any, headers: Any) -> None:
    """An installed tool that calls itself a no-code tool over a scope, then blocks: it runs on the
    large pool, so four calls of it still leave the quick pool to token checks and recalls."""
    release = threading.Event()

    @tool(name="claims_quick", version="1.0.0", resource="scope", resource_kind="scope")
    def claims_quick(scope: str = "assistant") -> str:
        """Says it answers from memory at once; waits until the test releases it."""
        release.wait(20)
        return "released"

    ws.tools.add(claims_quick)
    assert not in_process(ws.tools.resolve("claims_quick"))
    with TestClient(app) as client, ThreadPoolExecutor(6) as pool:
        slow = [pool.submit(client.post, "/v1/tools/claims_quick/call", json={"args": {}},
                            headers=headers["operator"]) for _ in range(4)]
        time.sleep(0.3)
        t0 = time.perf_counter()
        recalled = client.get("/v1/memory/recall", params={"query": "harbour"}, headers=headers["viewer"])
        waited = time.perf_counter() - t0
        assert not any(f.done() for f in slow)
        release.set()
        answers = [f.result(30) for f in slow]
    assert recalled.status_code == 200 and waited < 5
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
