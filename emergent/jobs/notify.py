"""Tell someone a job finally failed: an HTTP webhook (JSON POST), or Slack / email through the
integration tools when they are installed in this workstation.

The notifier never sees the workstation or its tool service: the composition root gives it one
narrow callable, ``call_tool(principal, tool, args)``, that calls a tool as the principal whose
run failed (the scheduler's, for a scheduled run) without waiting for an approval."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emergent.jobs.model import Run


@dataclass
class Delivery:
    target: str
    ok: bool
    detail: str = ""


def payload(run: Run) -> dict[str, Any]:
    return {
        "event": "job.failed", "job": run.job, "run_id": run.id, "status": run.status.value,
        "attempt": run.attempt, "error": run.error, "error_cell": run.error_cell, "error_name": run.error_name,
        "output_path": run.output_path, "started_at": run.started_at, "finished_at": run.finished_at,
        "text": f"emergent job {run.job!r} {run.status.value} (run {run.id}, attempt {run.attempt}): {run.error}",
    }


def _webhook(url: str, body: dict[str, Any]) -> Delivery:
    import httpx

    try:
        resp = httpx.post(url, json=body, timeout=10.0)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        return Delivery(url, False, f"{type(exc).__name__}: {exc}")
    return Delivery(url, True, str(resp.status_code))


ToolCaller = Callable[[Any, str, dict[str, Any]], Any]


def _integration(kind: str, address: str, body: dict[str, Any], call_tool: ToolCaller | None,
                 principal: Any) -> Delivery:
    """``slack:<channel>`` / ``email:<address>`` through the workstation's tools when they exist."""
    target = f"{kind}:{address}"
    if call_tool is None:
        try:
            importlib.import_module(f"emergent.tools.integrations.{kind}")
        except ImportError:
            return Delivery(target, False, f"the {kind} integration is not installed in this workstation")
        return Delivery(target, False, f"no tools service to call the {kind} integration with")
    name, args = (("slack.post_message", {"channel": address, "text": body["text"]}) if kind == "slack" else
                  ("email.send", {"to": [address], "subject": f"emergent job {body['job']} {body['status']}",
                                  "body": body["text"]}))
    try:
        call_tool(principal, name, args)  # never blocks on an approval (the caller passes wait=False)
    except Exception as exc:  # any failure of a notification must not hide the job's own failure
        return Delivery(target, False, f"{type(exc).__name__}: {exc}")
    return Delivery(target, True, "sent")


class Notifier:
    """Deliver a failed run to each target; never raises (deliveries report their own errors)."""

    def __init__(self, call_tool: ToolCaller | None = None) -> None:
        self._call_tool = call_tool

    def notify(self, targets: list[str], run: Run, principal: Any = None) -> list[Delivery]:
        """Deliver ``run``'s failure; integration tools are called as ``principal``."""
        body = payload(run)
        out: list[Delivery] = []
        for target in targets:
            if target.startswith(("http://", "https://")):
                out.append(_webhook(target, body))
            else:
                kind, _, address = target.partition(":")
                out.append(_integration(kind, address, body, self._call_tool, principal))
        return out
