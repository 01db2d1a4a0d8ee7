"""What the proposals, experiments, graph, jobs, workflows and agents routers share.

* ``WS``: the workstation of the app (``request.app.state.ws``);
* ``Paged`` and :func:`upto`: cursor pages over the services' newest-first lists;
* :func:`problems`: the problem+json answers an operation declares;
* :func:`no_nul`: a router dependency refusing a NUL character anywhere in the path, the query or a
  JSON body (keys included). PostgreSQL text cannot hold one (``DataError``: a 500), and no name,
  label or text of these services means one; refused with a 400 before the service is called.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from emergent.api.errors import error_responses
from emergent.api.pagination import PageParams, int_position, page_params
from emergent.errors import ValidationError


def _ws(request: Request) -> Any:
    return request.app.state.ws


WS = Annotated[Any, Depends(_ws)]
Paged = Annotated[PageParams, Depends(page_params)]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem+json answers of an operation: these, and what any authenticated call may answer."""
    return error_responses(*sorted({400, 401, 403, 422, 429, 503, *statuses}))


def upto(p: PageParams) -> int:
    """How many rows to read for page ``p`` (one more than it shows: is there a next page?)."""
    return int_position(p.position, "offset") + p.limit + 1


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 64:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def _refuse(where: str) -> ValidationError:
    return ValidationError(f"the request's {where} contains a NUL character", hint="send text without NUL (\\u0000)",
                           field=where)


async def no_nul(request: Request) -> None:
    """Refuse a NUL character in the path, the query or the JSON body (400)."""
    if "\x00" in request.scope.get("path", ""):
        raise _refuse("path")
    if any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
        raise _refuse("query")
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()  # read once by FastAPI already: this is its cached copy
        if b"\x00" in body:
            raise _refuse("body")
        if b"\\u0000" in body:  # an escaped NUL, or an escaped backslash before "u0000": parse to tell
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError):
                return  # not JSON: the body's own validation answers
            if _has_nul(parsed):
                raise _refuse("body")
