"""What the current request or run is, as context variables (copied into the threads a request uses).

The API's monitoring middleware binds the request id (and the route); a surface that runs an
assistant or a workflow binds its run id with :func:`bind_run`, and every log line written
meanwhile carries them (emergent.monitoring.logs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("emergent_request_id", default=None)
run_id: ContextVar[str | None] = ContextVar("emergent_run_id", default=None)
route: ContextVar[str | None] = ContextVar("emergent_route", default=None)


def current_request_id() -> str | None:
    return request_id.get()


def current_run_id() -> str | None:
    return run_id.get()


@contextlib.contextmanager
def bind_run(run: str | None) -> Iterator[None]:
    """Within the block, logs and spans name run ``run`` (an assistant or workflow run id)."""
    token = run_id.set(run)
    try:
        yield
    finally:
        run_id.reset(token)

