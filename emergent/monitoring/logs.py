"""Structured logs: one JSON object per line (python-json-logger), with the request's and run's ids.

Every line carries ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``request_id``
and ``run_id`` (null outside a request or run), the trace and span ids when a span is current, and
whatever the call site passes in ``extra=`` (the API's access line adds ``method``, ``path``,
``route``, ``status``, ``duration_ms`` and ``principal``).
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from emergent.monitoring import context

_MARK = "_emergent_monitoring"  # the handler this module installed (replaced, never stacked)


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``run_id`` and (when a span is current) ``trace_id``/``span_id`` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = context.request_id.get()
        if not hasattr(record, "run_id"):
            record.run_id = context.run_id.get()
        if "opentelemetry.trace" in sys.modules and not hasattr(record, "trace_id"):
            from opentelemetry import trace

            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid:
                record.trace_id = format(ctx.trace_id, "032x")
                record.span_id = format(ctx.span_id, "016x")
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("{levelname}{name}{message}{request_id}{run_id}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         defaults={"request_id": None, "run_id": None})


def configure(log_format: str, *, stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler | None:
    """For ``json``: one handler on the root logger writing JSON lines to ``stream`` (stderr), in
    place of the one a previous call installed. For ``text``: nothing (the host's logging stays)."""
    if log_format != "json":
        return None
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return handler


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call (keys that clash with LogRecord attributes are prefixed)."""
    reserved = logging.LogRecord("", 0, "", 0, "", None, None).__dict__
    return {(f"x_{k}" if k in reserved else k): v for k, v in values.items()}
