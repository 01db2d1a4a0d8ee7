"""OpenTelemetry traces of the real API app: a server span per request, service and SQL spans under it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient


def by_name(exporter: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in exporter.get_finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


def ancestors(span: Any, spans: list[Any]) -> list[str]:
    """Names of ``span``'s parents, nearest first (within ``spans``)."""
    index = {s.context.span_id: s for s in spans}
    names = []
    while span.parent is not None and span.parent.span_id in index:
        span = index[span.parent.span_id]
        names.append(span.name)
    return names


def test_a_tool_call_is_traced_api_then_service_then_sql(client: TestClient, spans: Any, ws: Any, me: Any) -> None:
    secret = ws.tokens.create(me, "operator", by=me, ttl_s=3600)[1]
    r = client.post("/v1/tools/files.write/call", json={"args": {"path": "a.txt", "content": "x"}},
                    headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text
    named = by_name(spans)
    (server,) = named["POST /v1/tools/{name}/call"]
    assert server.kind.name == "SERVER"
    assert server.attributes["http.route"] == "/v1/tools/{name}/call"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["emergent.principal"] == me.key
    assert server.attributes["emergent.request_id"] == r.headers["x-request-id"]
    (call,) = named["tools.call"]
    assert ancestors(call, spans.get_finished_spans()) == ["POST /v1/tools/{name}/call"]
    sql = [s for name, group in named.items() if name.startswith("sql ") for s in group]
    assert sql, "no SQL span"
    assert {s.context.trace_id for s in sql} == {server.context.trace_id}
    under_call = [s for s in sql if "tools.call" in ancestors(s, spans.get_finished_spans())]
    assert under_call, "no SQL span under the service's span"
    assert all(s.attributes["db.system"] == "sqlite" and set(s.attributes) == {"db.system", "db.statement",
                                                                                 "db.executemany"} for s in sql)


def test_a_recall_is_traced_api_then_memory(client: TestClient, spans: Any, ws: Any, viewer: dict[str, str]) -> None:
    ws.memory.ingest(["the deploy runs on fridays"], scope="default")
    r = client.get("/v1/memory/recall", params={"query": "deploy"}, headers=viewer)
    assert r.status_code == 200, r.text
    named = by_name(spans)
    (server,) = named["GET /v1/memory/recall"]
    (recall,) = named["memory.recall"]
    assert ancestors(recall, spans.get_finished_spans()) == ["GET /v1/memory/recall"]
    assert recall.context.trace_id == server.context.trace_id


def test_a_caller_trace_is_continued_from_traceparent(client: TestClient, spans: Any) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    client.get("/healthz", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    (server,) = by_name(spans)["GET /healthz"]
    assert format(server.context.trace_id, "032x") == trace_id
    assert format(server.parent.span_id, "016x") == parent_id


def test_a_server_error_marks_the_span_and_records_the_exception(ws: Any) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from emergent.api import create_app

    app = create_app(ws)

    @app.get("/test/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug")

    exporter = InMemorySpanExporter()
    app.state.monitor.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/test/boom").status_code == 500
    (span,) = by_name(exporter)["GET /test/boom"]
    assert span.status.status_code.name == "ERROR"
    assert any(e.name == "exception" and e.attributes["exception.type"] == "RuntimeError" for e in span.events)


def test_service_calls_outside_a_request_make_no_span(client: TestClient, spans: Any, ws: Any, me: Any) -> None:
    from emergent.monitoring.tracing import current_tracer, span

    assert current_tracer() is None
    ws.tools.call("files.write", {"path": "b.txt", "content": "y"}, principal=me)  # a notebook's call
    with span("anything") as s:
        assert s is None
    assert spans.get_finished_spans() == ()


def test_two_apps_keep_their_traces_apart(ws: Any, tmp_path: Any) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from emergent import Workstation
    from emergent.api import create_app

    other = Workstation.open(tmp_path / "other", embedder="hashing")
    try:
        apps = create_app(ws), create_app(other)
        exporters = InMemorySpanExporter(), InMemorySpanExporter()
        for app, exporter in zip(apps, exporters, strict=True):
            app.state.monitor.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
            a.get("/healthz")
            b.get("/readyz")
        assert [s.name for s in exporters[0].get_finished_spans()] == ["GET /healthz"]
        assert "GET /readyz" in [s.name for s in exporters[1].get_finished_spans()]
        assert "GET /healthz" not in [s.name for s in exporters[1].get_finished_spans()]
    finally:
        other.close()


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps the bodies POSTed to /v1/traces."""

    bodies: list[bytes]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        if self.path == "/v1/traces":
            type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    handler = type("Collector", (_Collector,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.bodies
    server.shutdown()
    server.server_close()


def test_spans_are_exported_over_otlp_http_to_the_configured_endpoint(ws: Any, collector: Any) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from emergent.api import create_app
    from emergent.config import MonitoringConfig

    endpoint, bodies = collector
    app = create_app(ws, monitoring=MonitoringConfig(otel_endpoint=endpoint, service_name="emergent-test"))
    with TestClient(app) as client:
        client.get("/healthz")
        assert app.state.monitor.tracer_provider.force_flush(5000)
    names, services = [], set()
    for body in bodies:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
            names += [s.name for ss in rs.scope_spans for s in ss.spans]
    assert "GET /healthz" in names
    assert services == {"emergent-test"}
