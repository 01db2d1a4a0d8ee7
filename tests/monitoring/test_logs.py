"""JSON logs of the real API app: one object per line, with the request's id, the run's, who and how long."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def json_app(ws: Any) -> Iterator[tuple[TestClient, io.StringIO]]:
    from emergent.api import create_app
    from emergent.config import MonitoringConfig
    from emergent.monitoring import bind_run

    app = create_app(ws, monitoring=MonitoringConfig(log_format="json"))

    @app.get("/test/run/{run}", include_in_schema=False)
    def in_a_run(run: str) -> dict[str, str]:  # what a surface running an assistant does
        logging.getLogger("emergent.test").info("before the run")
        with bind_run(run):
            logging.getLogger("emergent.test").warning("inside the run")
        return {"ok": run}

    out = io.StringIO()
    app.state.monitor.log_handler.setStream(out)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, out
    assert app.state.monitor.log_handler not in logging.getLogger().handlers  # removed at shutdown


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    """Our lines (the test client's httpx logs its requests too)."""
    parsed = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return [r for r in parsed if r["logger"].startswith("emergent")]


def access(out: io.StringIO) -> list[dict[str, Any]]:
    return [r for r in lines(out) if r["logger"] == "emergent.api.access"]


def test_every_line_is_one_json_object_with_time_level_logger_and_message(json_app: Any) -> None:
    client, out = json_app
    client.get("/healthz")
    logging.getLogger("emergent.elsewhere").error("outside any request")
    records = lines(out)
    assert len(records) == 2
    for r in records:
        assert {"time", "level", "logger", "message", "request_id", "run_id"} <= set(r)
        assert r["time"].endswith("+00:00")
    assert records[1] == {**records[1], "level": "ERROR", "logger": "emergent.elsewhere",
                          "message": "outside any request", "request_id": None, "run_id": None}


def test_the_access_line_has_route_status_duration_and_the_principal(json_app: Any, ws: Any, me: Any) -> None:
    client, out = json_app
    secret = ws.tokens.create(me, "viewer", by=me, ttl_s=3600)[1]
    r = client.get("/v1/memory/abc", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "req-7f3a"})
    assert r.headers["x-request-id"] == "req-7f3a"
    (line,) = access(out)
    assert line["request_id"] == "req-7f3a"
    assert line["route"] == "/v1/memory/{memory_id}" and line["path"] == "/v1/memory/abc"
    assert line["status"] == 404 and line["method"] == "GET"
    assert line["principal"] == me.key
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert len(line["trace_id"]) == 32


def test_a_request_without_an_id_gets_one_and_a_forged_one_is_replaced(json_app: Any) -> None:
    client, out = json_app
    generated = client.get("/healthz").headers["x-request-id"]
    forged = client.get("/healthz", headers={"X-Request-ID": 'x"}\n{"level": "INFO", "message": "fake'})
    replaced = forged.headers["x-request-id"]
    assert len(generated) == 32 and len(replaced) == 32 and generated != replaced
    assert [r["request_id"] for r in access(out)] == [generated, replaced]
    assert all(line.startswith("{") for line in out.getvalue().splitlines())  # the newline made no line of its own


def test_lines_inside_a_run_carry_the_run_id_and_the_request_id(json_app: Any) -> None:
    client, out = json_app
    rid = client.get("/test/run/run-42", headers={"X-Request-ID": "r1"}).headers["x-request-id"]
    before, inside = [r for r in lines(out) if r["logger"] == "emergent.test"]
    assert before["run_id"] is None and before["request_id"] == rid == "r1"
    assert inside["run_id"] == "run-42" and inside["request_id"] == "r1" and inside["level"] == "WARNING"
    assert access(out)[0]["run_id"] is None  # the run ended inside the request


def test_a_server_error_is_logged_at_error_level_with_status_500(ws: Any) -> None:
    from emergent.api import create_app
    from emergent.config import MonitoringConfig

    app = create_app(ws, monitoring=MonitoringConfig(log_format="json"))

    @app.get("/test/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug")

    out = io.StringIO()
    app.state.monitor.log_handler.setStream(out)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/test/boom").status_code == 500
        metrics = client.get("/metrics").text
    line = access(out)[0]
    assert line["status"] == 500 and line["level"] == "ERROR" and line["route"] == "/test/boom"
    assert 'emergent_http_requests_total{method="GET",route="/test/boom",status="500"} 1.0' in metrics


def test_text_format_leaves_the_process_logging_alone(ws: Any) -> None:
    from emergent.api import create_app

    before = list(logging.getLogger().handlers)
    app = create_app(ws)
    assert app.state.monitor.log_handler is None
    assert logging.getLogger().handlers == before
