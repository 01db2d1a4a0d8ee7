"""OpenTelemetry traces: a tracer provider per app, and spans services open without knowing it.

The API's monitoring (emergent.api.monitoring) builds a :class:`~opentelemetry.sdk.trace.TracerProvider`
for its app (never the process-global one: two apps in one process keep their traces apart) and
binds its tracer to each request's context. :func:`span` and :func:`traced` open a child span of
the current one with that tracer, and do nothing (one context-variable lookup) when no tracer is
bound: services decorate their public methods with them and stay free of settings.
:func:`instrument_sql` adds a span per SQL statement of an engine the same way.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

F = TypeVar("F", bound=Callable[..., Any])

_tracer: ContextVar[Tracer | None] = ContextVar("emergent_tracer", default=None)
_SQL_MAX = 500  # characters of a statement kept in a span (parameters are never recorded)


def make_provider(service_name: str, *, endpoint: str | None = None,
                  exporter: SpanExporter | None = None, instance: str | None = None) -> TracerProvider:
    """A tracer provider exporting to the OTLP/HTTP ``endpoint`` (batched, in the background) and to
    ``exporter`` (synchronously; tests pass an InMemorySpanExporter). Neither: spans are made
    (ids for the logs) and dropped."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attrs: dict[str, Any] = {"service.name": service_name}
    if instance:
        attrs["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attrs))
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url(endpoint))))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def otlp_traces_url(endpoint: str) -> str:
    """``http://collector:4318`` → ``http://collector:4318/v1/traces`` (a URL with a path is kept)."""
    from urllib.parse import urlsplit

    return endpoint.rstrip("/") + "/v1/traces" if urlsplit(endpoint).path in ("", "/") else endpoint


def bind_tracer(tracer: Tracer | None) -> Token[Tracer | None]:
    """Spans opened in this context (and the threads it is copied into) go to ``tracer``."""
    return _tracer.set(tracer)


def unbind_tracer(token: Token[Tracer | None]) -> None:
    _tracer.reset(token)


def current_tracer() -> Tracer | None:
    return _tracer.get()


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span | None]:
    """A child span of the current one named ``name`` (None and no cost when nothing is traced).
    An exception raised in the block is recorded on the span and marks it an error."""
    tracer = _tracer.get()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, attributes={k: _attr(v) for k, v in attributes.items()}) as s:
        yield s


def traced(name: str) -> Callable[[F], F]:
    """Decorate a method: each call is a span ``name`` when a tracer is bound (else a plain call)."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            tracer = _tracer.get()
            if tracer is None:
                return fn(*args, **kwargs)
            with tracer.start_as_current_span(name):
                return fn(*args, **kwargs)
        return cast(F, inner)
    return wrap


def _attr(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


# ---------------------------------------------------------------------- SQL
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument_sql(engine: Any) -> None:
    """A span per statement executed on ``engine`` while a tracer is bound (``sql SELECT`` with the
    dialect and the statement's text, never its parameters). Idempotent."""
    if engine in _instrumented:
        return
    from sqlalchemy import event

    dialect = engine.dialect.name

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        tracer = _tracer.get()
        if tracer is None or context is None:
            return
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        context._emergent_span = tracer.start_span(
            f"sql {verb}", attributes={"db.system": dialect, "db.statement": statement[:_SQL_MAX],
                                       "db.executemany": bool(executemany)})

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        s = getattr(context, "_emergent_span", None)
        if s is not None:
            context._emergent_span = None
            s.end()

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        s = getattr(context, "_emergent_span", None)
        if s is not None:
            from opentelemetry.trace import Status, StatusCode

            context._emergent_span = None
            exc = exception_context.original_exception
            s.record_exception(exc)
            s.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            s.end()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
    _instrumented.add(engine)
