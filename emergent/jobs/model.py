"""What a job is: a notebook, its parameters, a schedule, limits, retries, a chain and notifications.

Pydantic at the boundary (``JobSpec`` is what ``jobs add`` validates and what the SQL row stores as
JSON); dataclasses inside (``Run`` is a row of the run history).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from emergent.errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_INTERVAL_RE = re.compile(r"^(?:every\s+)?(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?$", re.IGNORECASE)
_UNIT_S = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"            # a cell raised: error_cell and error_name say which and what
    TIMEOUT = "timeout"          # ran past the job's timeout
    KERNEL_DIED = "kernel_died"  # the kernel process died (killed, out of memory)
    INVALID = "invalid"          # the job cannot run as defined (missing notebook, bad parameters)
    INTERRUPTED = "interrupted"  # the scheduler running it stopped mid-run (its lease expired)

    @property
    def final(self) -> bool:
        return self is not RunStatus.RUNNING


RETRYABLE = {RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.KERNEL_DIED, RunStatus.INTERRUPTED}


def parse_interval(text: str) -> float | None:
    """``"90"``, ``"90s"``, ``"every 5m"``, ``"2h"``, ``"1d"`` -> seconds; None if not an interval."""
    m = _INTERVAL_RE.match(text.strip())
    if not m:
        return None
    return float(m.group(1)) * _UNIT_S[m.group(2).lower() if m.group(2) else None]


def next_fire(schedule: str, after: float) -> float:
    """The first time strictly after ``after`` (epoch s, UTC) that ``schedule`` fires."""
    seconds = parse_interval(schedule)
    if seconds is not None:
        return after + seconds
    from croniter import croniter

    base = datetime.fromtimestamp(after, tz=UTC)
    return float(croniter(schedule, base).get_next(float))


def check_schedule(schedule: str) -> str:
    schedule = " ".join(schedule.split())
    seconds = parse_interval(schedule)
    if seconds is not None:
        if seconds < 1:
            raise ValidationError(f"interval {schedule!r} is shorter than one second",
                                  hint="use an interval of at least 1s, e.g. 'every 5m'")
        return schedule
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise ValidationError(
            f"invalid schedule {schedule!r}: neither a cron expression nor an interval",
            hint="use cron like '0 3 * * *' (03:00 UTC daily) or an interval like 'every 15m', '2h', '90s'",
            schedule=schedule,
        )
    return schedule


class JobSpec(BaseModel):
    """A scheduled notebook. Times are seconds; cron is evaluated in UTC."""

    name: str
    notebook: str = Field(description="path of the .ipynb (stored absolute)")
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedule: str | None = Field(None, description="cron expression or interval; None = run on demand")
    timeout_s: float = Field(3600.0, gt=0, description="limit for the whole run")
    retries: int = Field(0, ge=0, le=20, description="extra attempts after a failed run")
    retry_delay_s: float = Field(0.0, ge=0)
    kernel: str = "python3"
    chain: list[str] = Field(default_factory=list, description="jobs to run after a success, fed its outputs")
    notify: list[str] = Field(default_factory=list,
                              description="http(s) webhook URLs, slack:<channel>, email:<address>")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("a job name is 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        return check_schedule(v) if v else None

    @field_validator("notify")
    @classmethod
    def _notify(cls, v: list[str]) -> list[str]:
        for target in v:
            if not target.startswith(("http://", "https://", "slack:", "email:")):
                raise ValueError(f"notification target {target!r} must be an http(s) URL, slack:<channel> "
                                 "or email:<address>")
        return v

    @model_validator(mode="after")
    def _no_self_chain(self) -> JobSpec:
        if self.name in self.chain:
            raise ValueError(f"job {self.name!r} cannot chain to itself")
        return self

    @classmethod
    def build(cls, **data: Any) -> JobSpec:
        """Validate ``data``; a mistake raises emergent's ValidationError naming the field."""
        import pydantic

        try:
            spec = cls(**data)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "job"
            cause = first.get("ctx", {}).get("error")
            if isinstance(cause, ValidationError):
                raise ValidationError(f"invalid job {data.get('name')!r}: {cause.message}", hint=cause.hint,
                                      field=where) from None
            msg = str(cause) if cause is not None else first["msg"]
            raise ValidationError(f"invalid job {data.get('name')!r}: {where}: {msg}",
                                  hint="fix the field and add the job again", field=where) from None
        return spec.model_copy(update={"notebook": str(Path(spec.notebook).expanduser().resolve())})


@dataclass
class Run:
    """One attempt of one job (a row of ``job_runs``)."""

    id: int
    job: str
    slot: float
    attempt: int
    trigger: str
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    owner: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    output_path: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_cell: int | None = None
    error_name: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["duration_s"] = self.duration_s
        return d


@dataclass
class JobState:
    """A job as stored: its spec plus scheduling state."""

    spec: JobSpec
    paused: bool
    next_run_at: float | None
    lease_owner: str | None
    lease_until: float | None
    created_at: float

    @property
    def name(self) -> str:
        return self.spec.name

    def as_dict(self) -> dict[str, Any]:
        return {**self.spec.model_dump(), "paused": self.paused, "next_run_at": self.next_run_at,
                "running_on": self.lease_owner, "created_at": self.created_at}
