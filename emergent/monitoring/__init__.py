"""Monitoring: Prometheus metrics per app, structured JSON logs, OpenTelemetry traces, alert rules.

Nothing here reads settings or the environment: the surface that owns a process (the REST API's
``emergent.api.monitoring.install``) builds these with its ``MonitoringConfig``. Services reach
the current request's tracer and ids through context variables (:mod:`emergent.monitoring.context`,
:func:`emergent.monitoring.tracing.traced`): outside a monitored request they cost one lookup.
"""

from pathlib import Path

from emergent.monitoring.context import bind_run, current_request_id, current_run_id
from emergent.monitoring.tracing import span, traced

#: the Prometheus alerting rules shipped with the package (``rule_files:`` in prometheus.yml)
ALERT_RULES = Path(__file__).with_name("alerts.yml")

__all__ = ["ALERT_RULES", "bind_run", "current_request_id", "current_run_id", "span", "traced"]
