"""Tell someone a job finally failed: an HTTP webhook (JSON POST), or Slack / email through the
integration tools when they are installed in this workstation."""

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


def _integration(kind: str, address: str, body: dict[str, Any], tools: Any) -> Delivery:
    """``slack:<channel>`` / ``email:<address>`` through the workstation's tools when they exist."""
    target = f"{kind}:{address}"
    if tools is None:
        try:
            importlib.import_module(f"emergent.tools.integrations.{kind}")
        except ImportError:
            return Delivery(target, False, f"the {kind} integration is not installed in this workstation")
        return Delivery(target, False, f"no tools service to call the {kind} integration with")
    name, args = (("slack.post_message", {"channel": address, "text": body["text"]}) if kind == "slack" else
                  ("email.send", {"to": [address], "subject": f"emergent job {body['job']} {body['status']}",
                                  "body": body["text"]}))
    try:
        tools.call(name, args, actor="system:scheduler", wait=False)  # never block a scheduler on an approval
    except Exception as exc:  # any failure of a notification must not hide the job's own failure
        return Delivery(target, False, f"{type(exc).__name__}: {exc}")
    return Delivery(target, True, "sent")


class Notifier:
    """Deliver a failed run to each target; never raises (deliveries report their own errors)."""

    def __init__(self, tools: Callable[[], Any] | None = None) -> None:
        self._tools = tools

    def notify(self, targets: list[str], run: Run) -> list[Delivery]:
        body = payload(run)
        out: list[Delivery] = []
        for target in targets:
            if target.startswith(("http://", "https://")):
                out.append(_webhook(target, body))
            else:
                kind, _, address = target.partition(":")
                tools = self._tools() if self._tools is not None else None
                out.append(_integration(kind, address, body, tools))
        return out
