"""Monitoring of the REST API: health, readiness, metrics, logs and traces.

``install(app, ws, config)`` (called by ``emergent.api.app.create_app``) adds:

- ``GET /healthz``: liveness (the process answers; touches no store);
- ``GET /readyz``: readiness (SQL, LanceDB and, when configured, Redis answer within 2 s; 503
  naming the store that does not);
- ``GET /metrics``: the app's Prometheus registry in the text exposition format;
- an ASGI middleware, outermost, that gives each request an id (``X-Request-ID`` from the client
  when well-formed, else a new one; echoed in the response), a server span (continuing a W3C
  ``traceparent``), its latency in the histograms and one access log line;
- JSON log lines when ``config.log_format == "json"``; an OTLP/HTTP exporter when
  ``config.otel_endpoint`` is set.

Everything lives on ``app.state.monitor`` (a :class:`Monitor`): two apps in one process share nothing.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from emergent.monitoring import context, logs, tracing
from emergent.monitoring.health import Readiness
from emergent.monitoring.metrics import UNMATCHED, AuditStatus, Metrics, Sources, StoreStatus

if TYPE_CHECKING:  # pragma: no cover
    from emergent.config import MonitoringConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("emergent.api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")  # a client's id is kept only when it is this tame
_WANTED = frozenset({b"x-request-id", b"traceparent", b"tracestate"})
READY_TIMEOUT_S = 2.0
AUDIT_VERIFY_INTERVAL_S = 600.0
#: the HTTP methods that get their own label; anything else is counted as OTHER
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AuditVerifier:
    """Verifies the audit chain in the background at most every ``interval_s`` (a scrape asks; it
    never waits for the walk). ``verify_now()`` runs one in the caller's thread."""

    def __init__(self, verify: Callable[[], Any], *, interval_s: float = AUDIT_VERIFY_INTERVAL_S) -> None:
        self._verify = verify
        self.interval_s = interval_s
        self._status = AuditStatus()
        self._lock = threading.Lock()
        self._running = False

    def status(self) -> AuditStatus:
        with self._lock:
            due = self.interval_s > 0 and not self._running and (
                self._status.last_run is None or time.time() - self._status.last_run >= self.interval_s)
            if due:
                self._running = True
                threading.Thread(target=self._background, name="audit-verify", daemon=True).start()
            return AuditStatus(self._status.ok, self._status.failures, self._status.last_run)

    def _background(self) -> None:
        try:
            self.verify_now()
        except Exception as exc:  # the verification could not run (a store down): that is not a broken chain
            logging.getLogger(__name__).warning("audit verification did not run: %s: %s", type(exc).__name__, exc)
        finally:
            with self._lock:
                self._running = False

    def verify_now(self) -> AuditStatus:
        report = self._verify()
        with self._lock:
            self._status = AuditStatus(bool(report.ok), self._status.failures + (0 if report.ok else 1), time.time())
            return AuditStatus(self._status.ok, self._status.failures, self._status.last_run)


class Monitor:
    """The monitoring of one app: metrics registry, readiness, tracer provider, log handler."""

    def __init__(self, ws: Any, config: MonitoringConfig | None) -> None:
        from emergent.config import MonitoringConfig

        self.ws = ws
        self.config = config or MonitoringConfig()
        instance = _setting(ws, "api", "instance")
        self.tracer_provider = tracing.make_provider(self.config.service_name, endpoint=self.config.otel_endpoint,
                                                     instance=instance)
        self.tracer = self.tracer_provider.get_tracer("emergent.api")
        self.readiness = Readiness(_store_checks(ws) if ws is not None else {}, timeout_s=READY_TIMEOUT_S)
        self.audit = AuditVerifier(lambda: ws.audit.verify(), interval_s=self.config.audit_verify_interval_s) \
            if ws is not None else None
        self.metrics = Metrics(self._sources())
        self.log_handler = logs.configure(self.config.log_format)
        if ws is not None:
            # SQL and LanceDB open here, in the thread building the app: a probe's thread and a request's
            # must not both open one (a lazily built store is not guarded against two threads).
            tracing.instrument_sql(ws.sql.engine)
            _ = ws.lance  # likewise (a local directory: a mkdir; object storage: the connection)

    def warm_up(self) -> None:
        """Start the first readiness check in the background (importing LanceDB takes a second or two).
        Run at the app's startup, not when it is built: an app built and never served must leave no
        thread inside LanceDB's native code at interpreter exit (that aborts the process)."""
        if self.ws is not None:
            threading.Thread(target=self.readiness.check, name="readyz-warmup", daemon=True).start()

    def _sources(self) -> Sources:
        from emergent import __version__

        info = {"version": __version__, "service": self.config.service_name,
                "instance": str(_setting(self.ws, "api", "instance") or "")}
        ws = self.ws
        if ws is None:
            return Sources(info=info)

        def stm_items() -> int | None:
            items = ws.memory.stm.health().get("items")
            return None if items is None else int(items)

        def audit_entries() -> int:
            head = ws.audit.head()
            return head.seq if head else 0

        audit = self.audit
        assert audit is not None
        return Sources(
            now=ws.clock.now, info=info,
            tool_window=lambda since: ws.tools.telemetry.window(since),
            job_totals=lambda since: ws.jobs.run_totals(since),
            approvals_pending=lambda: [a.created_at for a in ws.autonomy.approvals.list("pending", limit=100_000)],
            ltm_rows=lambda: ws.memory.ltm.count(), stm_items=stm_items,
            stores=self.readiness.check, audit_entries=audit_entries, audit_status=audit.status)

    @property
    def exporting(self) -> bool:
        """Whether finished spans go anywhere (an OTLP endpoint, or a processor added since, such as a
        test's in-memory exporter). When none does, a request's own span still gives the log line its
        trace and span ids. Read from the SDK's private processor list; if that ever moves, spans
        are kept (the safe side)."""
        active = getattr(self.tracer_provider, "_active_span_processor", None)
        return bool(getattr(active, "_span_processors", True))

    def instrument(self) -> None:
        """SQL spans on the workspace's engine (again after a restore replaced it): cheap when done."""
        sql = getattr(self.ws, "__dict__", {}).get("sql")
        if sql is not None:
            tracing.instrument_sql(sql.engine)

    def close(self) -> None:
        self.tracer_provider.shutdown()
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)


def _setting(ws: Any, section: str, name: str) -> Any:
    return getattr(getattr(getattr(ws, "settings", None), section, None), name, None)


def _store_checks(ws: Any) -> dict[str, Callable[[], None]]:
    def sql() -> None:
        import sqlalchemy as sa

        with ws.sql.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def lancedb() -> None:
        ws.lance.table_names()

    checks: dict[str, Callable[[], None]] = {"sql": sql, "lancedb": lancedb}
    if ws.settings.redis_url:
        def redis() -> None:
            from emergent.stores.redis import health

            h = health(ws.redis)
            if not h.ok:
                raise ConnectionError(h.detail)

        checks["redis"] = redis
    return checks


class MonitoringMiddleware:
    """Request id, server span, latency histograms and the access log line of every HTTP request."""

    def __init__(self, app: ASGIApp, monitor: Monitor) -> None:
        self.app = app
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        mon = self.monitor
        mon.instrument()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
                   if k in _WANTED}  # ASGI header names are lower-case
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        # a made-up method would mint a time series per name for anyone (no token needed): label it OTHER
        method = scope.get("method", "GET")
        method = method if method in _METHODS else "OTHER"
        parent = _propagator().extract(headers) if "traceparent" in headers else None
        span = mon.tracer.start_span(method, context=parent, kind=SpanKind.SERVER,
                                     attributes={"http.request.method": method, "url.path": scope.get("path", ""),
                                                 "emergent.request_id": rid})
        # child spans (services, SQL statements: ~5 a request, ~0.5 ms) only when something takes them
        tokens = (context.request_id.set(rid), tracing.bind_tracer(mon.tracer if mon.exporting else None))
        status: list[int] = []
        t0 = time.perf_counter()
        first: list[float] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                first.append(time.perf_counter())
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        mon.metrics.http.in_progress.inc()
        failure: BaseException | None = None
        try:
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            mon.metrics.http.in_progress.dec()
            end = time.perf_counter()
            code = status[0] if status else 500
            route = route_template(scope)
            mon.metrics.http.observe(method, route, code, (first[0] if first else end) - t0)
            state = scope.get("state") or {}
            who = getattr(getattr(state.get("caller"), "principal", None), "key", None)
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", code)
            if who:
                span.set_attribute("emergent.principal", who)
            if failure is not None:
                span.record_exception(failure)
            if code >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {code}"))
            span.end()
            level = logging.ERROR if code >= 500 else logging.INFO
            if access_log.isEnabledFor(level):
                access_log.log(level, "%s %s %d", method, scope.get("path", ""), code,
                               extra=logs.fields(method=method, path=scope.get("path", ""), route=route, status=code,
                                                 duration_ms=round((end - t0) * 1000.0, 3), principal=who,
                                                 trace_id=format(span.get_span_context().trace_id, "032x"),
                                                 span_id=format(span.get_span_context().span_id, "016x")))
            tracing.unbind_tracer(tokens[1])
            context.request_id.reset(tokens[0])


@functools.cache
def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def route_template(scope: Scope) -> str:
    """The matched route's path template with every router prefix (``/v1/memory/{memory_id}``), or
    ``<unmatched>``: a label of bounded cardinality. FastAPI ≥ 0.16x keeps included routers nested
    and records the full path in ``scope["fastapi"]["effective_route_context"]``; older versions and
    plain Starlette routes put a route carrying its full path in ``scope["route"]``."""
    fa = scope.get("fastapi")
    effective = fa.get("effective_route_context") if isinstance(fa, dict) else None
    path = getattr(effective, "path", None)
    if isinstance(path, str) and path:
        return path
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _readiness_body(stores: dict[str, StoreStatus]) -> dict[str, Any]:
    down = sorted(name for name, st in stores.items() if not st.ok)
    return {"status": "not ready" if down else "ready", "down": down,
            "stores": {name: {"ok": st.ok, "detail": st.detail, "duration_ms": round(st.seconds * 1000.0, 3)}
                       for name, st in sorted(stores.items())}}


def install(app: Any, ws: Any, config: MonitoringConfig | None) -> None:
    """Add the monitoring routes and middleware to ``app`` (``app.state.monitor`` holds the rest)."""
    from fastapi.responses import JSONResponse, PlainTextResponse
    from pydantic import BaseModel

    class StoreState(BaseModel):
        ok: bool
        detail: str
        duration_ms: float

    class ReadinessReport(BaseModel):
        status: str
        down: list[str]
        stores: dict[str, StoreState]

    class Liveness(BaseModel):
        status: str

    monitor = Monitor(ws, config)
    app.state.monitor = monitor
    app.add_middleware(MonitoringMiddleware, monitor=monitor)
    app.router.on_startup.append(monitor.warm_up)
    app.router.on_shutdown.append(monitor.close)

    @app.get("/healthz", tags=["monitoring"], response_model=Liveness, summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:  # on the event loop: it answers while the loop does
        return {"status": "ok"}

    @app.get("/readyz", tags=["monitoring"], response_model=ReadinessReport,
             summary="Readiness: every store answers in time",
             responses={503: {"model": ReadinessReport, "description": "a store did not answer; `down` names it"}})
    def readyz() -> Any:
        body = _readiness_body(monitor.readiness.check())
        return JSONResponse(body, status_code=503 if body["down"] else 200)

    @app.get("/metrics", tags=["monitoring"], response_class=PlainTextResponse,
             summary="Prometheus metrics (text exposition format)",
             response_model=None, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics() -> Any:  # not the response class: FastAPI resolves annotations at module level
        from prometheus_client import CONTENT_TYPE_LATEST

        return PlainTextResponse(monitor.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
