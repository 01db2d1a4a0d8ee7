"""Monitoring of the REST API: health, readiness, metrics, logs and traces.

``install(app, ws, config)`` is called by ``emergent.api.app.create_app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emergent.config import MonitoringConfig


def install(app: Any, ws: Any, config: MonitoringConfig | None) -> None:
    """Add the monitoring routes and middleware to ``app``."""

    @app.get("/healthz", tags=["monitoring"], include_in_schema=True)
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}
