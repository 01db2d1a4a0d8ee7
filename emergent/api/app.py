"""The REST API application: ``create_app(ws)`` → a FastAPI app over the workstation's services.

The app holds the :class:`~emergent.workstation.Workstation` (``app.state.ws``): it is a surface, like
the CLI. Every route is under ``/v1``; each area is a router module in :mod:`emergent.api.routers`.
Requests carry an API token (:mod:`emergent.api.auth`); errors are problem details
(:mod:`emergent.api.errors`); lists are cursor-paginated (:mod:`emergent.api.pagination`).
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emergent.api import errors, monitoring, pools
from emergent.api.ratelimit import RateLimiter
from emergent.api.routers import ROUTERS

if TYPE_CHECKING:
    from emergent.config import ApiConfig, MonitoringConfig

PREFIX = "/v1"


class BodyLimit:
    """Refuses a request whose body is larger than ``max_bytes`` (413), declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.problem(413, "PayloadTooLarge", f"the request body is larger than {self.max_bytes} bytes",
                                  hint="send less, or raise EMERGENT_API__MAX_BODY_BYTES")
        await response(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """Raised by the counting receive(): FastAPI's body reader re-raises HTTP exceptions (anything else it
    turns into a 400), so a streamed body over the limit is a 413 whichever layer reads it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with every error response described as problem details."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    comps["Problem"] = errors.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    comps.pop("HTTPValidationError", None)
    comps.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            for status, resp in list(responses.items()):
                if str(status)[0] in "45" and _generic(resp):
                    resp["content"] = {errors.PROBLEM: {"schema": ref}}
                    resp.setdefault("description", "problem details")
                elif str(status) == "202" and errors.PROBLEM in resp.get("content", {}):
                    resp["content"] = {errors.PROBLEM: {"schema": ref}}
            statuses = [413, 500] if path in monitoring_paths(app) else [400, 401, 403, 404, 413, 422, 429, 500, 503]
            if path.startswith(PREFIX) and op.get("security") is None:
                statuses = [s for s in statuses if s not in (401, 403, 429)]
            for status in statuses:
                responses.setdefault(str(status), {"description": "problem details",
                                                   "content": {errors.PROBLEM: {"schema": ref}}})
    app.openapi_schema = schema
    return schema


def _generic(resp: dict[str, Any]) -> bool:
    """A response FastAPI filled in (its 422) or one declared as problem details: described as Problem."""
    content = resp.get("content")
    if not content:
        return True
    text = repr(content)
    return errors.PROBLEM in content or "HTTPValidationError" in text or "Problem" in text


def monitoring_paths(app: FastAPI) -> set[str]:
    return {getattr(r, "path", "") for r in app.routes if not getattr(r, "path", "").startswith(PREFIX)}


def create_app(ws: Any, *, config: ApiConfig | None = None, monitoring: MonitoringConfig | None = None) -> FastAPI:
    """The REST API over ``ws`` (a Workstation). ``config``: ``settings.api``; ``monitoring``:
    ``settings.monitoring`` (both default to the workstation's settings)."""
    from emergent import __version__

    settings = getattr(ws, "settings", None)
    config = config if config is not None else settings.api  # type: ignore[union-attr]
    mon = monitoring if monitoring is not None else getattr(settings, "monitoring", None)
    from fastapi import Depends

    from emergent.api.routers._api2 import no_nul

    # NUL in a path, query or JSON body is refused (400) everywhere: PostgreSQL text cannot hold it (a 500 there)
    app = FastAPI(title="Emergent", version=__version__, dependencies=[Depends(no_nul)],
                  description="The Emergent workstation's services over HTTP: memory, tools and calls, approvals, "
                              "policy, audit, the assistant and more. Every route needs an API token "
                              "(`Authorization: Bearer ...`, `emergent tokens create`); errors are problem details "
                              "(application/problem+json) carrying a hint.")
    app.state.ws = ws
    app.state.config = config
    # a deprecated tool's warning is the caller's news (its listing says so), not the server log's; one filter
    # for the process, since warnings.catch_warnings() around each call is not thread-safe
    warnings.filterwarnings("ignore", r"tool \S+ is deprecated", DeprecationWarning)
    app.state.limiter = RateLimiter(config.rate_limit, redis=ws.redis)
    errors.install(app)
    # the monitoring routes first: routes are matched in order, and probes come often
    _monitoring_install(app, ws, mon)
    for name in ROUTERS:
        module = importlib.import_module(f"emergent.api.routers.{name}")
        app.include_router(module.router, prefix=PREFIX)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    pools.install(app, config.quick_threads, config.inline_reads)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _build_routes(app)
    return app


def _build_routes(app: FastAPI) -> None:
    """Recent FastAPI builds each included route's validators on the first request that reaches it
    (~0.7 s for all of ours on a 2-core machine, paid by whoever calls first): build them here.
    ``effective_candidates`` is FastAPI's own (private) builder; without it there is nothing to do."""
    stack: list[Any] = list(app.router.routes)
    while stack:
        build = getattr(stack.pop(), "effective_candidates", None)
        if callable(build):
            stack.extend(build())


def _monitoring_install(app: FastAPI, ws: Any, config: Any) -> None:
    monitoring.install(app, ws, config)
