"""``/workflows``: start workflow runs, follow them, pause, resume and cancel them; saved workflows.

A run acts as the token's principal in every step (the autonomy gate decides each tool, notebook
and assistant step for it), through :class:`emergent.workflows.service.Workflows`, which audits the
start, each step, pause, cancel and resume. Operators and agents start runs; an agent token sees,
pauses, resumes and cancels only its own runs (the service refuses an agent acting on another's).

What a request may name is narrower than what Python may: a workflow is a saved or template
workflow by name, or an inline spec without ``call`` steps. A ``call`` step names a Python function
the server would import and run in its own process, so it never comes from the network (not even
an admin's): such workflows are saved from Python on the host (``ws.workflows.register``) and then
started here by name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from emergent.api.auth import Admin, Caller, OperatorOrAgent, ViewerOrAgent
from emergent.api.pagination import Page
from emergent.api.routers._api2 import WS, Paged, no_nul, problems, upto
from emergent.errors import NotFoundError, PrincipalError, TimeoutExceeded, ValidationError

router = APIRouter(prefix="/workflows", tags=["workflows"], dependencies=[Depends(no_nul)])

RunId = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
#: how long resume waits for the run to stop before answering with its state (it goes on regardless)
RESUME_WAIT_S = 2.0


class StepState(BaseModel):
    key: str
    step_id: str
    kind: str
    status: str
    attempt: int
    output: Any = None
    error: str | None = None
    approval_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    needs: list[str] = []


class WorkflowRun(BaseModel):
    id: str
    workflow: str
    version: str
    status: str
    principal: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    error: str | None = None
    created_at: float
    updated_at: float
    steps: list[StepState]
    parent: str | None = None


class Template(BaseModel):
    name: str
    description: str
    inputs: dict[str, Any]


class StartRun(BaseModel):
    workflow: str | dict[str, Any] = Field(description="a saved or template workflow's name, or an inline spec "
                                                       "(its steps: tool, notebook, assistant, workflow; no call)")
    inputs: dict[str, Any] = Field(default_factory=dict)


class Register(BaseModel):
    workflow: dict[str, Any] = Field(description="the spec (name, version, inputs, steps; no call steps)")


class Registered(BaseModel):
    name: str
    version: str


def _run(run: Any) -> dict[str, Any]:
    d = run.to_dict()
    d.pop("stats", None)
    return d  # type: ignore[no-any-return]


def _deep(depth: int) -> None:
    from emergent.workflows.service import MAX_NESTING  # imported when first used, not with the app

    if depth > MAX_NESTING:
        raise ValidationError(f"inline sub-workflows nest deeper than {MAX_NESTING}", hint="flatten the workflow",
                              field="workflow")


def _calls(data: Any, path: str = "", depth: int = 0) -> str | None:
    """The first ``call`` step of an inline spec (or of an inline sub-workflow in it), or None."""
    _deep(depth)
    for s in (data.get("steps") or []) if isinstance(data, dict) else []:
        if not isinstance(s, dict):
            continue
        if s.get("kind") == "call" or "fn" in s:
            return f"{path}{s.get('id')}"
        if isinstance(s.get("workflow"), dict):
            found = _calls(s["workflow"], f"{path}{s.get('id')}/", depth + 1)
            if found:
                return found
    return None


#: what the run tables hold (workflow name, version, step id with room for a foreach instance suffix)
_LIMITS = (("name", 100), ("version", 40))
_STEP_ID = 80


def _sizes(data: Any, path: str = "", depth: int = 0) -> None:
    """Names, versions and step ids of an inline spec (and its inline sub-workflows) fit the run tables."""
    _deep(depth)
    if not isinstance(data, dict):
        return
    for key, most in _LIMITS:
        if len(str(data.get(key) or "")) > most:
            raise ValidationError(f"{path}{key} of the workflow is longer than {most} characters",
                                  hint="shorten it", field=key)
    for s in data.get("steps") or []:
        if isinstance(s, dict):
            if len(str(s.get("id") or "")) > _STEP_ID:
                raise ValidationError(f"{path}step id {str(s.get('id'))[:40]!r}... is longer than {_STEP_ID} characters",
                                      hint="shorten it", field="steps")
            _sizes(s.get("workflow"), f"{path}{s.get('id')}/", depth + 1)


def _spec(ws: Any, given: str | dict[str, Any]) -> Any:
    """The workflow a request names: saved or template by name, or an inline spec without call steps."""
    from emergent.workflows.spec import Workflow

    if isinstance(given, str):
        if not _NAME.match(given) or given.endswith((".yaml", ".yml")):
            raise ValidationError(f"workflow {given[:80]!r} is not a workflow name",
                                  hint="name a saved or template workflow (GET /workflows/templates), or send "
                                       "the spec inline", field="workflow")
        return ws.workflows.named(given)
    step = _calls(given)
    if step is not None:
        raise PrincipalError(f"step {step!r} is a call step: it would run a Python function in the server's process",
                             hint="call steps never come over the network: save the workflow from Python on the "
                                  "host (ws.workflows.register) and start it here by name", step=step)
    _sizes(given)
    return Workflow.parse(given)


def _mine(who: Caller, run: Any) -> Any:
    if who.is_agent and run.principal != who.principal.key:
        raise NotFoundError(f"no workflow run {run.id!r} of {who.principal.key}",
                            hint="an agent token sees its own runs")
    return run


@router.get("/templates", response_model=list[Template], responses=problems())
def templates(ws: WS, _: ViewerOrAgent) -> Any:
    """The workflow templates shipped with emergent (start one by its name)."""
    return [{"name": t.name, "description": t.description, "inputs": t.inputs} for t in ws.workflows.templates()]


@router.post("", status_code=201, response_model=Registered, responses=problems(400))
def register_workflow(body: Register, ws: WS, who: Admin) -> Any:
    """Save a workflow by its name (audited); sub-workflows and runs find it by that name."""
    wf = ws.workflows.register(_spec(ws, body.workflow), by=who.principal)
    return {"name": wf.name, "version": str(wf.version)}


@router.get("/runs", response_model=Page[WorkflowRun], responses=problems(400))
def list_runs(ws: WS, who: ViewerOrAgent, page: Paged,
              status: Literal["running", "paused", "waiting", "completed", "failed", "cancelled"] | None = None) -> Any:
    """Runs, newest first (an agent token: its own)."""
    n = upto(page)
    runs = ws.workflows.runs(limit=n if not who.is_agent else max(n, 500), status=status)
    if who.is_agent:
        runs = [r for r in runs if r.principal == who.principal.key]
    return page.slice([_run(r) for r in runs])


@router.post("/runs", status_code=201, response_model=WorkflowRun, responses=problems(400, 404))
def start_run(body: StartRun, ws: WS, who: OperatorOrAgent) -> Any:
    """Start a run in the background as the token's principal; follow it with GET /workflows/runs/{id}."""
    run_id = ws.workflows.start(_spec(ws, body.workflow), body.inputs, principal=who.principal)
    return _run(ws.workflows.get(run_id))


@router.get("/runs/{run_id}", response_model=WorkflowRun, responses=problems(404))
def get_run(run_id: RunId, ws: WS, who: ViewerOrAgent) -> Any:
    """One run with the state of each step."""
    return _run(_mine(who, ws.workflows.get(run_id)))


@router.post("/runs/{run_id}/pause", response_model=WorkflowRun, responses=problems(400, 404))
def pause_run(run_id: RunId, ws: WS, who: OperatorOrAgent) -> Any:
    """No new step starts; the running ones finish; the run is paused until resumed."""
    _mine(who, ws.workflows.get(run_id))
    ws.workflows.pause(run_id, by=who.principal)
    return _run(ws.workflows.get(run_id))


@router.post("/runs/{run_id}/cancel", response_model=WorkflowRun, responses=problems(400, 404))
def cancel_run(run_id: RunId, ws: WS, who: OperatorOrAgent) -> Any:
    """Stop the run: no new step starts; running ones are abandoned."""
    _mine(who, ws.workflows.get(run_id))
    ws.workflows.cancel(run_id, by=who.principal)
    return _run(ws.workflows.get(run_id))


@router.post("/runs/{run_id}/resume", response_model=WorkflowRun, responses=problems(400, 404))
def resume_run(run_id: RunId, ws: WS, who: OperatorOrAgent) -> Any:
    """Continue a paused run, one waiting on a decided approval, or one whose process died; completed
    steps are not run again. Answers with the run once it stops, or after a moment with it running."""
    _mine(who, ws.workflows.get(run_id))
    try:
        return _run(ws.workflows.resume(run_id, principal=who.principal, timeout=RESUME_WAIT_S))
    except TimeoutExceeded:
        return _run(ws.workflows.get(run_id))
