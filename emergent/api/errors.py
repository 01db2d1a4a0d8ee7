"""Errors of the REST API as problem details (RFC 9457, ``application/problem+json``).

Every :class:`~emergent.errors.EmergentError` becomes ``{type, title, status, detail, hint, ...fields}``
with the status of :func:`status_of`; a request that fails validation is a 422 listing what is wrong;
anything else is a 500 that says only that it failed (the traceback goes to the log, never the body).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from emergent import errors as E

log = logging.getLogger("emergent.api")

PROBLEM = "application/problem+json"
TYPE_BASE = "urn:emergent:problem:"


class AuthenticationError(E.PrincipalError):
    """The request carries no token, or one that is unknown, expired or revoked (401)."""


class RateLimited(E.OperationalError):
    """This token sent more requests than its rate limit allows (429; ``retry_after`` seconds)."""


class Problem(BaseModel):
    """A problem detail (RFC 9457) carrying the error's hint and fields."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:emergent:problem:<error-class>")
    title: str
    status: int
    detail: str
    hint: str = ""


#: checked in order: the first class the error is an instance of decides its status
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (RateLimited, 429),
    (E.ApprovalPending, 202),
    (E.NotFoundError, 404),
    (E.ScopeError, 403),
    (E.PrincipalError, 403),
    (E.PermissionDenied, 403),
    (E.StateConflictError, 409),
    (E.UsageError, 400),
    (E.StoreUnavailableError, 503),
)


def status_of(exc: BaseException) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of an error field (strings for what JSON cannot hold)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 4 and isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in list(value.items())[:200]}
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in list(value)[:200]]
    return str(value)[:1000]


def problem(status: int, title: str, detail: str, *, hint: str = "", type_: str | None = None,
            headers: dict[str, str] | None = None, fields: dict[str, Any] | None = None) -> JSONResponse:
    """A problem+json response; ``fields`` (the error's) are added, but never over the standard members
    (an error's own ``status`` field, such as an approval's, is kept as ``state``)."""
    body: dict[str, Any] = {}
    for k, v in (fields or {}).items():
        key = {"status": "state", "type": "kind"}.get(k, k)
        if key not in {"title", "detail", "hint"}:
            body[key] = _jsonable(v)
    body |= {"type": type_ or TYPE_BASE + _kebab(title.replace(" ", "")), "title": title, "status": status,
             "detail": detail, "hint": hint}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def from_error(exc: E.EmergentError) -> JSONResponse:
    status = status_of(exc)
    name = type(exc).__name__
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 429:
        wait = exc.fields.get("retry_after", 1) if isinstance(exc.fields, dict) else 1
        headers["Retry-After"] = str(max(1, math.ceil(float(wait))))
    if status == 500:  # an operational failure we raised ourselves: its message is meant for people
        log.error("request failed: %s: %s", name, exc)
    fields = exc.fields if isinstance(exc.fields, dict) else {"fields": exc.fields}  # a kwarg named ``fields``
    return problem(status, name, str(exc.message), hint=str(exc.hint or ""), type_=TYPE_BASE + _kebab(name),
                   headers=headers or None, fields=fields)


async def _emergent(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, E.EmergentError)
    return from_error(exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()][:50]
    where = ".".join(errs[0]["loc"]) if errs else ""
    msg = str(errs[0]["msg"]) if errs else "invalid request"
    return problem(422, "ValidationError", f"{where}: {msg}" if where else msg,
                   hint="fix the request to match the OpenAPI description (/openapi.json)",
                   type_=TYPE_BASE + "request-validation-error", fields={"errors": errs})


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    hints = {404: "see /openapi.json for the routes", 405: "see /openapi.json for the methods of this route",
             413: "send less, or raise EMERGENT_API__MAX_BODY_BYTES"}
    title = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(exc.status_code, "HTTPError")
    return problem(exc.status_code, title, str(exc.detail), hint=hints.get(exc.status_code, ""),
                   headers=dict(exc.headers) if exc.headers else None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return problem(500, "InternalError", "the server failed to answer this request",
                   hint="the server's log has the details; retry, or report it with the request id")


def install(app: FastAPI) -> None:
    app.add_exception_handler(E.EmergentError, _emergent)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


#: the responses every operation may give (added to the OpenAPI description)
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": Problem, "description": "problem details", "content": {PROBLEM: {}}} for s in statuses}
