"""Steps that cross the gate — tool, notebook (the ``notebook.run`` tool), assistant, sub-workflow — run in
the engine's process as the run's principal (a principal never crosses a process boundary as a name)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from emergent.errors import ApprovalPending, NotFoundError, OperationalError, PermissionDenied, PrincipalError
from emergent.workflows._refs import text
from emergent.workflows.spec import Step
from emergent.workflows.store import WAITING, StepRow

DELEGATE = "agents.delegate"  # the policy rule on who may hand work to which agent (as emergent.agents uses it)


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


def run_gate_step(services: Any, step: Step, key: str, args: dict[str, Any], resume: StepRow | None, *,
                  principal: Any, run_id: str, wire: Callable[[Any], Any]) -> Any:
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
        prior = resume.output if waiting and resume is not None and isinstance(resume.output, dict) else {}
        if prior.get("run_id"):
            return _assistant_output(svc.assistant(step.assistant).resume(prior["run_id"]))
        prompt = text(wire(step.prompt))
        _may_hand_over(svc, who, step.assistant, prompt, f"{run_id}/{key}", prior.get("delegate"))
        return _assistant_output(svc.assistant(step.assistant).ask(prompt, user=who))
    raise StepFailed(f"step {key!r}: kind {step.kind!r} does not run here")


def _may_hand_over(svc: Any, who: Any, name: str | None, prompt: str, call: str, approval: str | None) -> None:
    """An agent (or a service) asking another agent to work for it is a delegation: the assistant must
    exist (only a person creates agents), and the policy rule ``agents.delegate`` on ``agent:NAME``
    decides — deny refuses, ask files an approval the step waits on (as ``Agents.delegate`` does)."""
    target = f"agent:{name}"
    autonomy = getattr(svc.tools, "autonomy", None)
    if autonomy is not None and target in autonomy.suspended():  # for anyone: a person suspended it
        raise PermissionDenied(f"{target} is suspended: it takes no work, from a workflow either",
                               hint=f"a person unsuspends it first (emergent policy unsuspend {target})")
    if who.is_human or who.key == target:
        return
    try:
        svc.principals.get(target)
    except NotFoundError:
        raise PrincipalError(f"{who.key} may not create {target}: only a person creates agents",
                             hint=f"a person creates it first (ws.assistant({name!r}) or ws.principals.agent)",
                             principal=who.key) from None
    if autonomy is None:
        raise PermissionDenied(f"{who.key} may not hand work to {target}: there is no policy to ask")
    digest = hashlib.sha256(f"{call}\n{target}\n{prompt}".encode()).hexdigest()
    if approval is not None:
        a = autonomy.approvals.get(approval)
        if a.status == "pending":
            raise WaitingForApproval(approval, {"delegate": approval})
        autonomy.approvals.consume(approval, principal=who, tool=DELEGATE, digest=digest, files={}, call_id=call)
        return
    d = autonomy.decide_for(who, DELEGATE, "write", resource=target)
    if d.effect == "deny":
        raise PermissionDenied(f"{who.key} may not hand work to {target}: {d.reason}",
                               hint=f"a person adds a rule allowing it (tool {DELEGATE}, resource {target})")
    if d.effect == "ask":
        req = autonomy.approvals.request(principal=who, tool=DELEGATE, args={"to": name, "text": prompt[:500],
                                                                             "workflow_step": call},
                                         reason=f"{who.key} asks {target} to work on a workflow step ({d.reason})",
                                         digest=digest, resource=target)
        raise WaitingForApproval(req.id, {"delegate": req.id})


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
