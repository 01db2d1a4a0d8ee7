"""The REST API's routers: one module per area, each exposing ``router`` (a FastAPI ``APIRouter``
whose paths are relative to ``/v1``). ``create_app`` includes them in this order."""

from __future__ import annotations

ROUTERS: tuple[str, ...] = (
    "memory",
    "tools",
    "calls",
    "approvals",
    "policy",
    "audit",
    "assistant",
    "tokens",
    "proposals",
    "experiments",
    "graph",
    "jobs",
    "workflows",
    "agents",
)
