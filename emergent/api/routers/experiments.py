"""``/experiments``: config versions and A/B experiments over them.

Reads are a viewer's; starting, deciding and approving an experiment are an operator's; creating a
config version or rolling the current one back changes configuration, an admin's. Each acts as the
token's principal through :class:`emergent.experiments.service.Experiments` (or its
:class:`~emergent.experiments.registry.ConfigRegistry`), which audits it: an adoption still goes
through the autonomy gate for that principal, and only a person approves one or switches a config.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from emergent.api.auth import Admin, Operator, Viewer
from emergent.api.pagination import Page
from emergent.api.routers._api2 import WS, Paged, no_nul, problems, upto
from emergent.errors import ExperimentError, StateConflictError

router = APIRouter(prefix="/experiments", tags=["experiments"], dependencies=[Depends(no_nul)])

Status = Literal["running", "pending_approval", "adopted", "rolled_back", "inconclusive", "rejected", "invalid",
                 "failed"]
ExperimentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Namespace = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$")]


class Experiment(BaseModel):
    id: str
    name: str
    namespace: str
    control_version: str
    candidate_version: str
    mode: str
    metric: str
    status: str
    decision: str | None = None
    design: dict[str, Any]
    result: dict[str, Any] | None = None
    proposal_id: str | None = None
    approval_id: str | None = None
    created_at: float
    updated_at: float


class StartExperiment(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    candidate: str = Field(min_length=1, max_length=160, description="the candidate config version id (NS@N)")
    metric: str = Field(min_length=1, max_length=120)
    control: str | None = Field(None, max_length=160, description="default: the namespace's current version")
    mode: Literal["online", "offline"] = "online"
    higher_is_better: bool = True
    split: float = Field(0.5, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    min_units: int = Field(30, ge=2, le=1_000_000)


class Outcome(BaseModel):
    """What a decision did: ``status`` is the experiment's new status."""

    decision: str
    status: str
    reason: str
    approval_id: str | None = None
    current: str | None = None


class Approve(BaseModel):
    reason: str = Field("approved", max_length=2000)


class Reject(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class ConfigVersion(BaseModel):
    id: str
    namespace: str
    version: int
    values: dict[str, Any]
    fingerprint: str
    parent_id: str | None
    created_at: float
    created_by: str
    note: str | None
    current: bool


class ConfigVersions(BaseModel):
    namespace: str
    current: str
    versions: list[ConfigVersion]


class NewVersion(BaseModel):
    changes: dict[str, Any] = Field(description="keys of the namespace's config to change over the current version")
    note: str | None = Field(None, max_length=2000)
    make_current: bool = Field(False, description="make it current at once (a person only)")


class Rollback(BaseModel):
    to: str | None = Field(None, max_length=160, description="a version id; default: the previous current one")
    reason: str | None = Field(None, max_length=2000)


def _version(v: Any, current: str) -> dict[str, Any]:
    return {**v.public(), "current": v.id == current}


# ------------------------------------------------------------------ config versions
@router.get("/config/{namespace}", response_model=ConfigVersions, responses=problems(401, 403, 404))
def config_versions(namespace: Namespace, ws: WS, _: Viewer) -> Any:
    """The versions of a config namespace (``memory``, ``tools``) and which one is current."""
    reg = ws.experiments.registry
    cur = reg.current(namespace).id
    return {"namespace": namespace, "current": cur, "versions": [_version(v, cur) for v in reg.versions(namespace)]}


@router.post("/config/{namespace}/versions", status_code=201, response_model=ConfigVersion,
             responses=problems(400, 401, 403, 404, 409, 422))
def create_config_version(namespace: Namespace, body: NewVersion, ws: WS,
                          who: Admin) -> Any:
    """A new version with ``changes`` over the current one (audited); ``make_current`` switches to it."""
    reg = ws.experiments.registry
    v = reg.create(namespace, changes=body.changes, principal=who.principal, note=body.note)
    if body.make_current:
        reg.make_current(v.id, by=who.principal, reason=body.note)
    return _version(v, reg.current(namespace).id)


@router.post("/config/{namespace}/rollback", response_model=ConfigVersion, responses=problems(400, 401, 403, 404, 409))
def rollback_config(namespace: Namespace, ws: WS, who: Admin, body: Rollback | None = None) -> Any:
    """Make the previous current version (or ``to``) current again (a person only; audited)."""
    body = body or Rollback()
    v = ws.experiments.registry.rollback(namespace, body.to, by=who.principal, reason=body.reason)
    return _version(v, v.id)


# ------------------------------------------------------------------ experiments
@router.get("", response_model=Page[Experiment], responses=problems(401, 403))
def list_experiments(ws: WS, _: Viewer, page: Paged, status: Status | None = None) -> Any:
    """Experiments, newest first."""
    return page.slice(ws.experiments.list(status, limit=upto(page)))


@router.post("", status_code=201, response_model=Experiment, responses=problems(400, 401, 403, 404, 422))
def start_experiment(body: StartExperiment, ws: WS, who: Operator) -> Any:
    """Start an experiment of a candidate config version against the current one (audited)."""
    design = body.model_dump(exclude={"name", "candidate", "metric", "control", "mode"})
    return ws.experiments.start(body.name, body.candidate, metric=body.metric, control=body.control, mode=body.mode,
                                principal=who.principal, **design)


class Synced(BaseModel):
    applied: int = Field(description="how many decisions were applied")


@router.post("/sync", response_model=Synced, responses=problems(409))
def sync_experiments(ws: WS, _: Operator) -> Any:
    """Carry out adoptions whose approval was decided in the approvals queue (approved: the candidate
    becomes current, as the person who approved it; rejected or expired: the experiment is rejected)."""
    return {"applied": ws.experiments.sync_approvals()}


@router.get("/{experiment_id}", response_model=Experiment, responses=problems(401, 403, 404))
def get_experiment(experiment_id: ExperimentId, ws: WS, _: Viewer) -> Any:
    """One experiment with its design and last analysis."""
    return ws.experiments.get(experiment_id)


def _conflict(exc: ExperimentError) -> StateConflictError:
    """An experiment that cannot decide yet (too few units) or is invalid: a conflict with its state."""
    return StateConflictError(exc.message, hint=exc.hint or None, **exc.fields)


@router.post("/{experiment_id}/decide", response_model=Outcome, responses=problems(401, 403, 404, 409))
def decide_experiment(experiment_id: ExperimentId, ws: WS,
                      who: Operator) -> Any:
    """Analyse a running experiment and act on it: adopt (through the gate), roll back, or inconclusive."""
    try:
        return ws.experiments.decide(experiment_id, by=who.principal)
    except ExperimentError as exc:
        raise _conflict(exc) from None


@router.post("/{experiment_id}/approve", response_model=Outcome, responses=problems(401, 403, 404, 409))
def approve_experiment(experiment_id: ExperimentId, ws: WS, who: Operator, body: Approve | None = None) -> Any:
    """A person approves an adoption waiting for approval; it is carried out at once."""
    return ws.experiments.approve(experiment_id, by=who.principal, reason=(body or Approve()).reason)


@router.post("/{experiment_id}/reject", response_model=Outcome, responses=problems(401, 403, 404, 409))
def reject_experiment(experiment_id: ExperimentId, body: Reject, ws: WS,
                      who: Operator) -> Any:
    """A person refuses an adoption waiting for approval; the current config stays."""
    return ws.experiments.reject(experiment_id, by=who.principal, reason=body.reason)
