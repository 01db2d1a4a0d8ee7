"""The performance dashboard widget, on the app's registry and on a running uvicorn server's /metrics."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


def test_quantiles_follow_histogram_quantile() -> None:
    from emergent.ui.perf import quantile

    buckets = {0.1: 50.0, 0.2: 90.0, 0.5: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.95, buckets) == pytest.approx(0.2 + 0.3 * 0.5)
    assert quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == 0.1  # in +Inf: the largest finite bound
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_the_dashboard_reads_latency_requests_and_errors_by_endpoint(client: TestClient, app: Any, ws: Any,
                                                                      viewer: dict[str, str]) -> None:
    from emergent.ui.perf import PerfDashboard

    @app.get("/test/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug")

    ws.memory.remember("a thing to keep", scope="user:me")
    dash = PerfDashboard.from_app(app)
    for _ in range(4):
        client.get("/v1/memory/nope", headers=viewer)
    client.get("/test/boom")
    rows = {(r.method, r.route): r for r in dash.snapshot()}
    memory = rows[("GET", "/v1/memory/{memory_id}")]
    assert memory.requests == 4 and memory.rejected == 4 and memory.errors == 0
    assert memory.per_s is None  # one snapshot: totals, no rate yet
    assert memory.p95_s is not None and memory.p50_s is not None and memory.p50_s <= memory.p95_s
    assert rows[("GET", "/test/boom")].errors == 1
    assert dash.current is not None and dash.current.gauges["emergent_memory_stm_items"] == 1
    client.get("/v1/memory/nope", headers=viewer)
    time.sleep(0.05)
    rows = {(r.method, r.route): r for r in dash.snapshot()}
    again = rows[("GET", "/v1/memory/{memory_id}")]
    assert again.requests == 1 and again.per_s is not None and again.per_s > 0  # since the last snapshot
    page = dash.html()
    assert "/v1/memory/{memory_id}" in page and "short-term items: 1" in page
    assert dash.png().startswith(b"\x89PNG")
    box = dash.widget()
    button, table, image = box.children
    client.get("/healthz")
    button.click()
    assert "GET /healthz" in table.value and bytes(image.value).startswith(b"\x89PNG")


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    """The app under a real uvicorn server on a free port, in a thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


def test_the_dashboard_scrapes_a_running_server(server: str) -> None:
    import httpx

    from emergent.ui.perf import PerfDashboard

    for _ in range(3):
        assert httpx.get(f"{server}/healthz").status_code == 200
    dash = PerfDashboard.from_url(server)
    rows = {(r.method, r.route): r for r in dash.snapshot()}
    assert rows[("GET", "/healthz")].requests == 3
    assert dash.error is None and dash.source == f"{server}/metrics"


def test_an_unreachable_server_is_shown_not_raised() -> None:
    from emergent.ui.perf import PerfDashboard

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    dash = PerfDashboard.from_url(f"http://127.0.0.1:{port}", timeout_s=1.0)
    assert dash.snapshot() == []
    assert dash.error and "Connect" in dash.error
    assert "Connect" in dash.html()
