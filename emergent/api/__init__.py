"""The REST API (FastAPI): ``create_app(ws)``; ``emergent serve`` runs it under uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(ws: Any, **kwargs: Any) -> FastAPI:
    """The FastAPI app over ``ws`` (see :func:`emergent.api.app.create_app`)."""
    from emergent.api.app import create_app as _create

    return _create(ws, **kwargs)


__all__ = ["create_app"]
