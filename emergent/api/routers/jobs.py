"""``/jobs``: scheduled notebook jobs: read them and their runs, run, pause and resume them.

Defining or removing a job changes what runs on this machine (a notebook, on a schedule), so it is
an admin's, and the notebook must be a file inside the workspace directory. Running, pausing and
resuming are an operator's. Each acts as the token's principal through
:class:`emergent.jobs.service.JobService`, which audits it; a run's notebook acts as that principal
too (an agent or service token's run gets ``EMERGENT_PRINCIPAL``; a person's runs as the server's
OS user, as ``emergent jobs run`` does).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from emergent.api.auth import Admin, Operator, Viewer
from emergent.api.pagination import Page
from emergent.api.routers._api2 import WS, Paged, no_nul, problems
from emergent.errors import NotFoundError, StateConflictError, ValidationError

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(no_nul)])

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
JobName = Annotated[str, Path(min_length=1, max_length=100, pattern=_NAME)]
#: how long POST /jobs/{name}/run waits for the run to take the job's lease before answering
CLAIM_WAIT_S = 10.0


class Job(BaseModel):
    name: str
    notebook: str
    parameters: dict[str, Any]
    schedule: str | None
    timeout_s: float
    retries: int
    retry_delay_s: float
    kernel: str
    chain: list[str]
    notify: list[str]
    paused: bool
    next_run_at: float | None
    running_on: str | None = Field(description="the process running it now, if any")
    created_at: float


class Run(BaseModel):
    id: int
    job: str
    slot: float
    attempt: int
    trigger: str
    status: str
    started_at: float
    finished_at: float | None
    owner: str
    parameters: dict[str, Any]
    output_path: str | None
    outputs: dict[str, Any]
    error: str | None
    error_cell: int | None
    error_name: str | None
    duration_s: float | None


class NewJob(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    notebook: str = Field(min_length=1, max_length=1000,
                          description="path of the .ipynb inside the workspace directory (relative to it, or absolute)")
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedule: str | None = Field(None, max_length=200, description="cron ('0 3 * * *', UTC) or interval ('every 15m')")
    timeout_s: float = Field(3600.0, gt=0, le=7 * 86400)
    retries: int = Field(0, ge=0, le=20)
    retry_delay_s: float = Field(0.0, ge=0, le=86400)
    kernel: str = Field("python3", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    chain: list[Annotated[str, Field(max_length=100, pattern=_NAME)]] = Field(default_factory=list, max_length=20)
    notify: list[Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x1f]+$")]] = Field(default_factory=list,
                                                                                           max_length=20)
    replace: bool = Field(False, description="redefine an existing job")


class RunRequest(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict, description="override the job's parameters")


def _notebook(ws: Any, given: str) -> str:
    """The notebook's absolute path, refused unless it is a file inside the workspace directory."""
    root = FilePath(ws.path).resolve()
    try:
        path = (FilePath(given) if FilePath(given).is_absolute() else root / given).resolve()
        inside = path.is_relative_to(root) and path.suffix == ".ipynb" and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long, a loop of links
        inside = False
    if not inside:
        raise ValidationError(f"notebook {given!r} is not a .ipynb file inside the workspace",
                              hint=f"put the notebook under {root} and name it relative to it", field="notebook")
    return str(path)


@router.get("", response_model=Page[Job], responses=problems(400))
def list_jobs(ws: WS, _: Viewer, page: Paged) -> Any:
    """Jobs by name, with their schedule, next run and whether one is running."""
    return page.slice([s.as_dict() for s in sorted(ws.jobs.list(), key=lambda s: s.name)])


@router.post("", status_code=201, response_model=Job, responses=problems(400, 409))
def define_job(body: NewJob, ws: WS, who: Admin) -> Any:
    """Define a job running a notebook of the workspace (audited); the notebook and parameters are checked now."""
    fields = body.model_dump(exclude={"name", "notebook", "replace"})
    try:
        ws.jobs.get(body.name)
        exists = True
    except NotFoundError:
        exists = False
    if exists and not body.replace:
        raise StateConflictError(f"job {body.name!r} exists", hint="pass replace=true to redefine it", job=body.name)
    return ws.jobs.add(body.name, _notebook(ws, body.notebook), principal=who.principal, replace=body.replace,
                       **fields).as_dict()


@router.get("/{name}", response_model=Job, responses=problems(400, 404))
def get_job(name: JobName, ws: WS, _: Viewer) -> Any:
    """The definition and state of one job."""
    return ws.jobs.get(name).as_dict()


@router.delete("/{name}", status_code=204, response_class=Response, responses=problems(400, 404))
def remove_job(name: JobName, ws: WS, who: Admin) -> Response:
    """Delete a job (its run history is kept; audited)."""
    ws.jobs.remove(name, principal=who.principal)
    return Response(status_code=204)


@router.get("/{name}/runs", response_model=list[Run], responses=problems(400, 404))
def job_runs(name: JobName, ws: WS, _: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> Any:
    """Recent runs of one job, newest first: status, duration, error, the executed notebook."""
    return [r.as_dict() for r in ws.jobs.history(name, limit)]


@router.post("/{name}/pause", response_model=Job, responses=problems(400, 404))
def pause_job(name: JobName, ws: WS, who: Operator) -> Any:
    """Stop scheduling the job (on-demand runs still work)."""
    return ws.jobs.pause(name, principal=who.principal).as_dict()


@router.post("/{name}/resume", response_model=Job, responses=problems(400, 404))
def resume_job(name: JobName, ws: WS, who: Operator) -> Any:
    """Schedule the job again from its next slot after now."""
    return ws.jobs.resume(name, principal=who.principal).as_dict()


@router.post("/{name}/run", status_code=202, response_model=Run, responses=problems(400, 404, 409))
def run_job(name: JobName, ws: WS, who: Operator, body: RunRequest | None = None) -> Any:
    """Start a run now (retries and chain included) and answer once it holds the job's lease: the run
    goes on in the background; follow it with GET /jobs/{name}/runs."""
    from emergent.jobs.service import new_owner

    state = ws.jobs.get(name)
    if state.lease_owner is not None and (state.lease_until or 0.0) > ws.clock.now():
        raise StateConflictError(f"job {name!r} is already running on {state.lease_owner}",
                                 hint=f"wait for it to finish (GET /jobs/{name}/runs) and run it again", job=name)
    owner, parameters = new_owner("api"), (body or RunRequest()).parameters
    done = threading.Event()
    failed: list[BaseException] = []

    def go() -> None:
        try:
            ws.jobs.run(name, parameters, principal=who.principal, owner=owner, trigger="api")
        except BaseException as exc:  # noqa: BLE001 - reported to the caller while it waits, else logged by run
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=go, name=f"api-job-{name}", daemon=True).start()
    deadline = time.monotonic() + CLAIM_WAIT_S
    while not done.wait(0.02):
        if ws.jobs.get(name).lease_owner == owner or time.monotonic() > deadline:
            break
    if failed:
        raise failed[0]
    run = next((r for r in ws.jobs.history(name, 10) if r.owner == owner), None)
    if run is None:
        raise StateConflictError(f"the run of job {name!r} did not start within {CLAIM_WAIT_S:g} s",
                                 hint=f"see GET /jobs/{name}/runs", job=name)
    return run.as_dict()
