"""Steps that cross the gate — tool, notebook (the ``notebook.run`` tool), assistant, sub-workflow — run in
the engine's process as the run's principal (a principal never crosses a process boundary as a name)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from emergent.errors import ApprovalPending, OperationalError
from emergent.workflows._refs import text
from emergent.workflows.spec import Step
from emergent.workflows.store import WAITING, StepRow


class StepFailed(OperationalError):
    """A step failed (raised, timed out, returned the wrong type); the message names it."""


class WaitingForApproval(Exception):  # noqa: N818 - an outcome, not an error: a person decides first
    def __init__(self, approval: str | None, ref: dict[str, Any] | None = None) -> None:
        super().__init__(approval)
        self.approval = approval
        self.ref = ref or {}


def child_run_id(parent: str, key: str) -> str:
    """The run id of a sub-workflow step's run: the same on every attempt, so a resume finds it."""
    return "wf-" + hashlib.sha256(f"{parent}/{key}".encode()).hexdigest()[:16]


def run_gate_step(services: Any, run_child: Callable[..., Any], step: Step, key: str, args: dict[str, Any],
                  resume: StepRow | None, *, principal: Any, run_id: str, wire: Callable[[Any], Any]) -> Any:
    """One attempt of a gate-crossing step; ``resume`` is the row a previous attempt left (it may wait for an
    approval that was decided since). Raises ``WaitingForApproval`` when a person must decide."""
    svc, who = services, principal
    waiting = resume is not None and resume.status == WAITING
    if step.kind in ("tool", "notebook"):
        if waiting and resume is not None and resume.approval_id:
            try:
                return svc.tools.resume(resume.approval_id)
            except ApprovalPending as exc:
                raise WaitingForApproval(exc.fields.get("approval", resume.approval_id)) from None
        tool, targs = (step.tool, args) if step.kind == "tool" else (
            "notebook.run", {**args, "path": step.notebook, "parameters": wire(step.parameters)})
        try:
            return svc.tools.call(tool, targs, principal=who, wait=False)
        except ApprovalPending as exc:
            raise WaitingForApproval(exc.fields.get("approval")) from None
    if step.kind == "assistant":
        bot = svc.assistant(step.assistant)
        if waiting and resume is not None and isinstance(resume.output, dict) and resume.output.get("run_id"):
            result = bot.resume(resume.output["run_id"])
        else:
            result = bot.ask(text(wire(step.prompt)), user=who)
        return _assistant_output(result)
    return run_child(step, wire(step.inputs), principal=who, parent=run_id, run_id=child_run_id(run_id, key))


def _assistant_output(result: Any) -> dict[str, Any]:
    out = {"answer": result.answer, "status": result.status, "run_id": result.run_id, "mode": result.mode,
           "sources": [s.to_dict() if hasattr(s, "to_dict") else s for s in result.sources]}
    if result.status == "waiting_approval":
        raise WaitingForApproval(result.pending_approval, {"run_id": result.run_id})
    if result.status not in ("completed",):
        raise StepFailed(f"the assistant's run {result.run_id} ended {result.status}"
                         f"{': ' + result.stop_reason if result.stop_reason else ''}",
                         hint="see ws.assistant(name).get(run_id)")
    return out


__all__ = ["StepFailed", "WaitingForApproval", "child_run_id", "run_gate_step"]
