"""``/agents``: agent cards, tasks handed to agents, and the votes and conflicts a person settles.

Through :class:`emergent.agents.service.Agents`, as the token's principal, audited there:

* registering an agent (a card) is configuration, an admin's (the service still asks the gate for a
  token that is not a person's);
* submitting a task (contract net) or delegating it to a named agent is an operator's or an agent's:
  the policy rule ``agents.delegate`` decides for that principal (deny → 403 and the task is
  cancelled, ask → the task waits in ``input-required`` with its approval id, allow → it runs);
* cancelling and resuming a task: its submitter, its delegator or a person (the service checks);
* deciding an escalated vote or conflict is a person's (operator).

An agent token reads the cards and only its own tasks (submitted by it, delegated by it, or held by
it). With ``wait`` (the default) a task is worked in this process until it stops or ``timeout``
passes; without it, an ``emergent agents work`` worker picks it up.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from emergent.api.auth import Admin, Caller, Operator, OperatorOrAgent, Viewer, ViewerOrAgent
from emergent.api.pagination import Page
from emergent.api.routers._api2 import WS, Paged, no_nul, problems, upto
from emergent.errors import NotFoundError

router = APIRouter(prefix="/agents", tags=["agents"], dependencies=[Depends(no_nul)])

AgentName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
TaskId = Annotated[str, Path(min_length=16, max_length=16, pattern=r"^[0-9a-f]{16}$")]
ItemId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
State = Literal["submitted", "working", "input-required", "completed", "failed", "canceled"]
Skill = Annotated[str, Field(min_length=1, max_length=64)]


class Card(BaseModel):
    name: str
    description: str
    skills: list[str]
    tools: list[str] = Field(description="tools the policy lets the agent use (not denied)")
    principal: str
    created_by: str
    created_at: float


class Task(BaseModel):
    id: str
    text: str
    skills: list[str]
    state: str
    assignee: str | None = None
    submitted_by: str
    delegated_by: str | None = None
    bids: list[dict[str, Any]]
    award: str | None = None
    run_id: str | None = None
    approval_id: str | None = None
    answer: str | None = None
    error: str | None = None
    created_at: float
    updated_at: float


class Ballot(BaseModel):
    voter: str
    choice: str | None
    weight: float
    reason: str


class Vote(BaseModel):
    id: str
    question: str
    options: list[str]
    method: str
    status: str
    winner: str | None
    tally: dict[str, float]
    ballots: list[Ballot]
    explanation: str
    quorum: float | None = None
    approval_id: str | None = None
    called_by: str
    decided_by: str | None = None
    created_at: float
    updated_at: float
    dissent: list[Ballot]


class ConflictProposal(BaseModel):
    agent: str
    proposal: str
    priority: int
    confidence: float
    principal: str


class Resolution(BaseModel):
    id: str
    rule: str
    status: str
    proposals: list[ConflictProposal]
    winner: ConflictProposal | None
    explanation: str
    approval_id: str | None = None
    called_by: str
    decided_by: str | None = None
    created_at: float
    updated_at: float
    extra: dict[str, Any]


class Message(BaseModel):
    id: str
    stream: str
    sender: str = Field(description="the publisher's principal key (set by the bus)")
    body: dict[str, Any]
    redelivered: bool


class NewCard(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    skills: list[Skill] = Field(min_length=1, max_length=50)
    description: str = Field("", max_length=2000)


class NewTask(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, pattern=r"\S")
    skills: list[Skill] = Field(default_factory=list, max_length=50)
    to: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
                           description="hand it to this agent directly (no contract net)")
    wait: bool = Field(True, description="work it here until it stops (or timeout); else a worker picks it up")
    timeout: float = Field(30.0, gt=0, le=120)


class ResumeTask(BaseModel):
    wait: bool = True
    timeout: float = Field(30.0, gt=0, le=120)


class Choice(BaseModel):
    choice: str = Field(min_length=1, max_length=500)
    reason: str = Field("", max_length=2000)


class Pick(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    reason: str = Field("", max_length=2000)


def _card(c: Any) -> dict[str, Any]:
    return {"name": c.name, "description": c.description, "skills": list(c.skills), "tools": list(c.tools),
            "principal": c.principal, "created_by": c.created_by, "created_at": c.created_at}


def _task(t: Any) -> dict[str, Any]:
    d = t.to_dict()
    d.pop("lease_until", None)
    return d  # type: ignore[no-any-return]


def _sees(who: Caller, t: Any) -> bool:
    key = who.principal.key
    return not who.is_agent or key in (t.submitted_by, t.delegated_by) or t.assignee == who.principal.id


def _mine(who: Caller, t: Any) -> Any:
    if not _sees(who, t):
        raise NotFoundError(f"no agent task {t.id!r} of {who.principal.key}",
                            hint="an agent token sees the tasks it submitted, delegated or holds")
    return t


# ------------------------------------------------------------------ cards
@router.get("/cards", response_model=list[Card], responses=problems())
def list_cards(ws: WS, _: ViewerOrAgent) -> Any:
    """Every registered agent's card: skills and the tools the policy lets it use."""
    return [_card(c) for c in ws.agents.cards()]


@router.post("/cards", status_code=201, response_model=Card, responses=problems(400))
def register_agent(body: NewCard, ws: WS, who: Admin) -> Any:
    """Give an agent a card (creating its principal the first time); audited."""
    return _card(ws.agents.register(body.name, skills=body.skills, description=body.description, by=who.principal))


@router.get("/cards/{name}", response_model=Card, responses=problems(404))
def get_card(name: AgentName, ws: WS, _: ViewerOrAgent) -> Any:
    """One agent's card."""
    return _card(ws.agents.card(name))


# ------------------------------------------------------------------ tasks
@router.get("/tasks", response_model=Page[Task], responses=problems(400))
def list_tasks(ws: WS, who: ViewerOrAgent, page: Paged, state: State | None = None,
               assignee: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Tasks, newest first (an agent token: its own)."""
    n = upto(page)
    tasks = ws.agents.tasks(state=state, assignee=assignee, limit=max(n, 500) if who.is_agent else n)
    return page.slice([_task(t) for t in tasks if _sees(who, t)])


@router.post("/tasks", status_code=201, response_model=Task, responses=problems(400, 404))
def submit_task(body: NewTask, ws: WS, who: OperatorOrAgent) -> Any:
    """Hand a task to the agents: by contract net (the best bid by skills, load and confidence wins), or
    to agent ``to``; the ``agents.delegate`` policy decides for the token's principal."""
    if body.to is not None:
        t = ws.agents.delegate(body.text, body.to, by=who.principal, wait=body.wait, timeout=body.timeout)
    else:
        t = ws.agents.submit(body.text, skills=body.skills, by=who.principal, wait=body.wait, timeout=body.timeout)
    return _task(t)


@router.get("/tasks/{task_id}", response_model=Task, responses=problems(404))
def get_task(task_id: TaskId, ws: WS, who: ViewerOrAgent) -> Any:
    """One task: its state, bids, award, answer or error."""
    return _task(_mine(who, ws.agents.task(task_id)))


@router.post("/tasks/{task_id}/cancel", response_model=Task, responses=problems(404))
def cancel_task(task_id: TaskId, ws: WS, who: OperatorOrAgent) -> Any:
    """Cancel a task nobody works on yet (submitted, or waiting for an approval)."""
    _mine(who, ws.agents.task(task_id))
    return _task(ws.agents.cancel(task_id, by=who.principal))


@router.post("/tasks/{task_id}/resume", response_model=Task, responses=problems(404))
def resume_task(task_id: TaskId, ws: WS, who: OperatorOrAgent, body: ResumeTask | None = None) -> Any:
    """Continue a task in ``input-required`` once its approval was decided (unchanged while it is pending)."""
    _mine(who, ws.agents.task(task_id))
    body = body or ResumeTask()
    return _task(ws.agents.resume(task_id, by=who.principal, wait=body.wait, timeout=body.timeout))


# ------------------------------------------------------------------ the bus
@router.get("/messages", response_model=list[Message], responses=problems())
def list_messages(ws: WS, _: Viewer, stream: Literal["tasks", "contract-net", "votes", "proposals"] | None = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
    """The newest messages on the agents' bus (of one stream, or of all), oldest first."""
    return [m.to_dict() for m in ws.agents.messages(stream, limit)]


# ------------------------------------------------------------------ votes and conflicts
@router.get("/votes", response_model=list[Vote], responses=problems())
def list_votes(ws: WS, _: Viewer, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
    """Votes, newest first, with their tally and dissent."""
    return [v.to_dict() for v in ws.agents.votes(limit)]


@router.get("/votes/{vote_id}", response_model=Vote, responses=problems(404))
def get_vote(vote_id: ItemId, ws: WS, _: Viewer) -> Any:
    return ws.agents.vote_result(vote_id).to_dict()


@router.post("/votes/{vote_id}/decide", response_model=Vote, responses=problems(400, 404, 409))
def decide_vote(vote_id: ItemId, body: Choice, ws: WS, who: Operator) -> Any:
    """A person settles an escalated vote: approves its approval and records the choice."""
    return ws.agents.decide_vote(vote_id, body.choice, by=who.principal, reason=body.reason).to_dict()


@router.get("/conflicts", response_model=list[Resolution], responses=problems())
def list_conflicts(ws: WS, _: Viewer, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
    """Conflict resolutions, newest first, each with its rule and explanation."""
    return [r.to_dict() for r in ws.agents.resolutions(limit)]


@router.post("/conflicts/{resolution_id}/decide", response_model=Resolution, responses=problems(400, 404, 409))
def decide_conflict(resolution_id: ItemId, body: Pick, ws: WS, who: Operator) -> Any:
    """A person settles an escalated conflict by choosing one agent's proposal."""
    return ws.agents.decide_conflict(resolution_id, body.agent, by=who.principal, reason=body.reason).to_dict()
