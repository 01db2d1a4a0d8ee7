"""/metrics of the real API app: request histograms by route template, workspace figures read at scrape time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .conftest import samples, value


def scrape(client: TestClient) -> str:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def test_request_latency_is_labelled_by_route_template_method_and_status(client: TestClient,
                                                                        viewer: dict[str, str]) -> None:
    for mid in ("a1", "b2", "c3"):  # three ids, one route: the label is the template, not the path
        client.get(f"/v1/memory/{mid}", headers=viewer)
    client.get("/v1/memory/zz")  # no token: 401 on the same route
    client.get("/no/such/path")
    text = scrape(client)
    count = "emergent_http_request_duration_seconds_count"
    assert value(text, count, method="GET", route="/v1/memory/{memory_id}", status="404") == 3
    assert value(text, count, method="GET", route="/v1/memory/{memory_id}", status="401") == 1
    assert value(text, count, method="GET", route="<unmatched>", status="404") == 1
    assert value(text, "emergent_http_requests_total", method="GET", route="/v1/memory/{memory_id}",
                 status="404") == 3
    assert not any(("route", "/v1/memory/a1") in k for k in samples(text, count))
    # the 200 ms target has a bucket edge of its own
    assert value(text, "emergent_http_request_duration_seconds_bucket", route="/v1/memory/{memory_id}",
                 status="404", le="0.2") is not None


def test_two_apps_in_one_process_keep_their_own_registries(ws: Any, tmp_path: Path) -> None:
    from emergent import Workstation
    from emergent.api import create_app

    other = Workstation.open(tmp_path / "other", embedder="hashing")
    try:
        with TestClient(create_app(ws)) as a, TestClient(create_app(other)) as b:
            a.get("/healthz")
            a.get("/healthz")
            b.get("/healthz")
            route = {"method": "GET", "route": "/healthz", "status": "200"}
            assert value(scrape(a), "emergent_http_requests_total", **route) == 2
            assert value(scrape(b), "emergent_http_requests_total", **route) == 1
    finally:
        other.close()


def test_tool_calls_are_counted_by_tool_and_outcome(client: TestClient, ws: Any, me: Any) -> None:
    from emergent.errors import EmergentError

    ws.tools.call("files.write", {"path": "a.txt", "content": "x"}, principal=me)
    ws.tools.call("files.read", {"path": "a.txt"}, principal=me)
    ws.tools.call("files.read", {"path": "a.txt"}, principal=me)
    with pytest.raises(EmergentError):
        ws.tools.call("files.read", {"path": "missing.txt"}, principal=me)
    text = scrape(client)
    assert value(text, "emergent_tool_calls_total", tool="files.read", outcome="ok") == 2
    assert value(text, "emergent_tool_calls_total", tool="files.read", outcome="failed") == 1
    assert value(text, "emergent_tool_calls_total", tool="files.write", outcome="ok") == 1
    ws.tools.call("files.read", {"path": "a.txt"}, principal=me)
    assert value(scrape(client), "emergent_tool_calls_total", tool="files.read", outcome="ok") == 3


def test_memory_sizes_read_the_short_and_long_term_tiers(client: TestClient, ws: Any) -> None:
    ws.memory.remember("the standup moved to ten", scope="user:me")
    ws.memory.ingest(["fact one", "fact two", "fact three"], scope="user:me")
    text = scrape(client)
    assert value(text, "emergent_memory_stm_items") == 1
    assert value(text, "emergent_memory_ltm_rows") == 3


def test_a_failed_job_run_is_counted(client: TestClient, ws: Any, me: Any, tmp_path: Path) -> None:
    import nbformat

    nb = tmp_path / "fails.ipynb"
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('boom')")])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(book, str(nb))
    ws.jobs.add("nightly", nb, principal=me)
    assert ws.jobs.run("nightly", principal=me).status.value == "failed"
    text = scrape(client)
    assert value(text, "emergent_job_runs_total", job="nightly") == 1
    assert value(text, "emergent_job_runs_failed_total", job="nightly") == 1


def test_approvals_pending_and_the_age_of_the_oldest(tmp_path: Path) -> None:
    from emergent import Workstation
    from emergent.api import create_app
    from emergent.clock import FakeClock

    clock = FakeClock()
    ws = Workstation.open(tmp_path / "w", embedder="hashing", clock=clock)
    try:
        with TestClient(create_app(ws)) as client:
            text = scrape(client)
            assert value(text, "emergent_approvals_pending") == 0
            assert value(text, "emergent_approvals_pending_oldest_age_seconds") == 0
            bot = ws.principals.agent("bot", created_by=ws.principal)
            ws.autonomy.approvals.request(principal=bot, tool="shell.run", args={}, reason="t", digest="d1",
                                          ttl=86_400)
            clock.advance(hours=2)
            ws.autonomy.approvals.request(principal=bot, tool="shell.run", args={}, reason="t", digest="d2",
                                          ttl=86_400)
            clock.advance(60)
            text = scrape(client)
            assert value(text, "emergent_approvals_pending") == 2
            assert value(text, "emergent_approvals_pending_oldest_age_seconds") == 2 * 3600 + 60
    finally:
        ws.close()


def test_rate_limited_requests_are_counted(ws: Any, viewer: dict[str, str]) -> None:
    from emergent.api import create_app
    from emergent.config import ApiConfig

    app = create_app(ws, config=ApiConfig(rate_limit="3/minute"))
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [client.get("/v1/memory/x", headers=viewer).status_code for _ in range(5)]
        assert codes.count(429) == 2
        text = scrape(client)
    assert value(text, "emergent_http_rate_limited_total", method="GET", route="/v1/memory/{memory_id}") == 2


def test_a_failing_source_is_left_out_and_counted_not_a_failed_scrape(client: TestClient, ws: Any) -> None:
    ws.memory.ltm.count = lambda where=None: (_ for _ in ()).throw(OSError("disk gone"))  # the store breaks
    text = scrape(client)
    assert value(text, "emergent_memory_ltm_rows") is None
    assert value(text, "emergent_metrics_source_errors_total", source="memory") == 1
    assert value(text, "emergent_approvals_pending") == 0  # the other sources are still there


def test_the_audit_chain_is_verified_and_a_broken_one_counted(client: TestClient, app: Any, ws: Any, me: Any) -> None:
    from emergent.audit import audit_log

    ws.audit.append("test.event", me, {"n": 1}, durable=True)
    ws.audit.append("test.event", me, {"n": 2}, durable=True)
    monitor = app.state.monitor
    assert monitor.audit.verify_now().ok
    text = scrape(client)
    assert value(text, "emergent_audit_verify_ok") == 1
    assert value(text, "emergent_audit_verify_failures_total") == 0
    assert value(text, "emergent_audit_entries") >= 2  # type: ignore[operator]
    with ws.sql.begin() as conn:  # someone edits an entry behind the chain's back
        conn.execute(audit_log.update().where(audit_log.c.seq == 1).values(data='{"n": 99}'))
    assert not monitor.audit.verify_now().ok
    text = scrape(client)
    assert value(text, "emergent_audit_verify_ok") == 0
    assert value(text, "emergent_audit_verify_failures_total") == 1


def test_scrapes_verify_the_audit_chain_in_the_background_unless_switched_off(ws: Any) -> None:
    import time

    from emergent.api import create_app
    from emergent.config import MonitoringConfig

    for interval, verified in ((600.0, True), (0.0, False)):
        with TestClient(create_app(ws, monitoring=MonitoringConfig(audit_verify_interval_s=interval))) as client:
            scrape(client)  # starts one in the background, never waits for it
            deadline = time.monotonic() + (10 if verified else 1)  # off: nothing shows up within a second
            while value(scrape(client), "emergent_audit_verify_ok") is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (value(scrape(client), "emergent_audit_verify_ok") == 1) is verified
