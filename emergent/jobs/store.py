"""Jobs and runs in the SQL store of record.

Exactly-once per slot rests on two guards:

* **claim** is a compare-and-set ``UPDATE jobs ... WHERE next_run_at = :slot AND lease free`` that
  advances ``next_run_at`` and takes a lease in the same transaction as the run row is inserted;
  a second scheduler (or a restarted one) sees the slot already moved and claims nothing;
* ``job_runs`` has a unique ``(job, slot, attempt)``: a slot's attempt cannot be recorded twice.

A scheduler renews its leases while it runs; a lease that expires (the scheduler was killed) turns
the run into ``interrupted`` in the history instead of losing it.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from emergent.errors import NotFoundError, UsageError
from emergent.jobs.model import JobSpec, JobState, Run, RunStatus
from emergent.jobs.tables import job_runs, jobs
from emergent.registry import suggest


def _free(now: float) -> Any:
    return sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now)


def _state(row: Any) -> JobState:
    return JobState(JobSpec.model_validate_json(row.spec), bool(row.paused), row.next_run_at, row.lease_owner,
                    row.lease_until, row.created_at)


def _run(row: Any) -> Run:
    return Run(id=row.id, job=row.job, slot=row.slot, attempt=row.attempt, trigger=row.trigger,
               status=RunStatus(row.status), started_at=row.started_at, finished_at=row.finished_at,
               owner=row.owner, parameters=json.loads(row.parameters), output_path=row.output_path,
               outputs=json.loads(row.outputs) if row.outputs else {}, error=row.error,
               error_cell=row.error_cell, error_name=row.error_name)


class JobStore:
    def __init__(self, sql: Any) -> None:
        self.sql = sql

    # ------------------------------------------------------------------ definitions
    def put(self, spec: JobSpec, *, now: float, next_run_at: float | None, replace: bool) -> None:
        values = {"spec": spec.model_dump_json(), "next_run_at": next_run_at, "updated_at": now}
        with self.sql.begin() as conn:
            exists = conn.execute(sa.select(jobs.c.name).where(jobs.c.name == spec.name)).first()
            if exists and not replace:
                raise UsageError(f"job {spec.name!r} already exists",
                                 hint="pass --replace to redefine it, or choose another name")
            if exists:
                conn.execute(jobs.update().where(jobs.c.name == spec.name).values(**values))
            else:
                conn.execute(jobs.insert().values(name=spec.name, paused=False, created_at=now, **values))

    def get(self, name: str) -> JobState:
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.name == name)).first()
        if row is None:
            hint = suggest(name, self.names()) or "list them with: emergent jobs list"
            raise NotFoundError(f"no job named {name!r}", hint=hint, name=name)
        return _state(row)

    def names(self) -> list[str]:
        with self.sql.connect() as conn:
            return list(conn.execute(sa.select(jobs.c.name).order_by(jobs.c.name)).scalars())

    def all(self) -> list[JobState]:
        with self.sql.connect() as conn:
            return [_state(r) for r in conn.execute(sa.select(jobs).order_by(jobs.c.name))]

    def delete(self, name: str) -> None:
        self.get(name)
        with self.sql.begin() as conn:
            conn.execute(jobs.delete().where(jobs.c.name == name))

    def set_paused(self, name: str, paused: bool, *, now: float, next_run_at: float | None) -> None:
        self.get(name)
        with self.sql.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.name == name)
                         .values(paused=paused, next_run_at=next_run_at, updated_at=now))

    def set_next(self, name: str, next_run_at: float | None) -> None:
        with self.sql.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.name == name).values(next_run_at=next_run_at))

    # ------------------------------------------------------------------ scheduling
    def due(self, now: float, limit: int = 100) -> list[tuple[str, float]]:
        """(name, slot) of unpaused jobs whose slot has come and whose lease is free, oldest first."""
        q = (sa.select(jobs.c.name, jobs.c.next_run_at)
             .where(jobs.c.next_run_at <= now, jobs.c.paused.is_(False), _free(now))
             .order_by(jobs.c.next_run_at).limit(limit))
        with self.sql.connect() as conn:
            return [(r.name, r.next_run_at) for r in conn.execute(q)]

    def claim(self, name: str, *, owner: str, now: float, lease_s: float, slot: float | None,
              next_run_at: float | None, trigger: str, parameters: dict[str, Any]) -> Run | None:
        """Take the job's lease (and, for a scheduled slot, advance it) and record attempt 1 as running.

        ``slot=None`` is an on-demand run: it only needs the lease. Returns None when another
        process got there first.
        """
        cond = sa.and_(jobs.c.name == name, _free(now))
        values: dict[str, Any] = {"lease_owner": owner, "lease_until": now + lease_s}
        if slot is not None:
            cond = sa.and_(cond, jobs.c.next_run_at == slot, jobs.c.paused.is_(False))
            values["next_run_at"] = next_run_at
        with self.sql.begin() as conn:
            if conn.execute(jobs.update().where(cond).values(**values)).rowcount != 1:
                return None
            return self._insert_run(conn, name, owner=owner, slot=now if slot is None else slot, attempt=1,
                                    trigger=trigger, parameters=parameters, now=now, lease_s=lease_s)

    def start_attempt(self, prev: Run, *, now: float, lease_s: float) -> Run:
        with self.sql.begin() as conn:
            return self._insert_run(conn, prev.job, owner=prev.owner, slot=prev.slot, attempt=prev.attempt + 1,
                                    trigger=prev.trigger, parameters=prev.parameters, now=now, lease_s=lease_s)

    @staticmethod
    def _insert_run(conn: Any, name: str, *, owner: str, slot: float, attempt: int, trigger: str,
                    parameters: dict[str, Any], now: float, lease_s: float) -> Run:
        values = {"job": name, "slot": slot, "attempt": attempt, "trigger": trigger,
                  "status": RunStatus.RUNNING.value, "owner": owner, "lease_until": now + lease_s,
                  "started_at": now, "parameters": json.dumps(parameters, default=str)}
        run_id = conn.execute(job_runs.insert().values(**values)).inserted_primary_key[0]
        return Run(id=run_id, job=name, slot=slot, attempt=attempt, trigger=trigger, status=RunStatus.RUNNING,
                   started_at=now, owner=owner, parameters=parameters)

    def set_output_path(self, run_id: int, path: str) -> None:
        with self.sql.begin() as conn:
            conn.execute(job_runs.update().where(job_runs.c.id == run_id).values(output_path=path))

    def finish(self, run: Run, *, now: float) -> None:
        with self.sql.begin() as conn:
            conn.execute(job_runs.update().where(job_runs.c.id == run.id).values(
                status=run.status.value, finished_at=now, lease_until=None, output_path=run.output_path,
                outputs=json.dumps(run.outputs, default=str) if run.outputs else None, error=run.error,
                error_cell=run.error_cell, error_name=run.error_name))
        run.finished_at = now

    def release(self, name: str, owner: str) -> None:
        with self.sql.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.name == name, jobs.c.lease_owner == owner)
                         .values(lease_owner=None, lease_until=None))

    def renew(self, owner: str, *, now: float, lease_s: float) -> None:
        with self.sql.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.lease_owner == owner).values(lease_until=now + lease_s))
            conn.execute(job_runs.update()
                         .where(job_runs.c.owner == owner, job_runs.c.status == RunStatus.RUNNING.value)
                         .values(lease_until=now + lease_s))

    def abandon(self, name: str, slot: float, owner: str, *, now: float, error: str) -> None:
        """Record ``owner``'s running attempts of ``name``'s ``slot`` as interrupted (its executor crashed before
        it could record how the run ended) and free the job unless the owner runs it again meanwhile: the
        owner's heartbeat would otherwise keep both forever."""
        running = sa.and_(job_runs.c.job == name, job_runs.c.owner == owner,
                          job_runs.c.status == RunStatus.RUNNING.value)
        with self.sql.begin() as conn:
            conn.execute(job_runs.update().where(running, job_runs.c.slot == slot).values(
                status=RunStatus.INTERRUPTED.value, finished_at=now, lease_until=None, error=error,
                error_name="Interrupted"))
            conn.execute(jobs.update().where(jobs.c.name == name, jobs.c.lease_owner == owner,
                                             ~sa.exists(sa.select(job_runs.c.id).where(running)))
                         .values(lease_owner=None, lease_until=None))

    def recover(self, now: float) -> list[Run]:
        """Mark runs whose lease expired as interrupted (their scheduler died) and free their jobs."""
        with self.sql.begin() as conn:
            rows = conn.execute(sa.select(job_runs).where(job_runs.c.status == RunStatus.RUNNING.value,
                                                          job_runs.c.lease_until < now)).all()
            if not rows:
                return []
            for r in rows:
                conn.execute(job_runs.update().where(job_runs.c.id == r.id, job_runs.c.status == "running").values(
                    status=RunStatus.INTERRUPTED.value, finished_at=now, lease_until=None,
                    error=f"the scheduler {r.owner} stopped during the run (its lease expired); "
                          "the run did not finish", error_name="Interrupted"))
            conn.execute(jobs.update().where(jobs.c.lease_until < now).values(lease_owner=None, lease_until=None))
        return [self.run(r.id) for r in rows]

    # ------------------------------------------------------------------ history
    def runs(self, job: str | None = None, limit: int = 50) -> list[Run]:
        q = sa.select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
        if job is not None:
            q = q.where(job_runs.c.job == job)
        with self.sql.connect() as conn:
            return [_run(r) for r in conn.execute(q)]

    def run(self, run_id: int) -> Run:
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(job_runs).where(job_runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no run with id {run_id}", hint="list runs with: emergent jobs history")
        return _run(row)

    def run_totals(self, since: float) -> list[dict[str, Any]]:
        """Per job, the runs started at or after ``since``: ``job``, ``runs``, ``failed``; by job name."""
        q = (sa.select(job_runs.c.job, sa.func.count().label("runs"),
                       sa.func.sum(sa.case((job_runs.c.status == RunStatus.FAILED.value, 1), else_=0)).label("failed"))
             .where(job_runs.c.started_at >= since).group_by(job_runs.c.job).order_by(job_runs.c.job))
        with self.sql.connect() as conn:
            return [{"job": r.job, "runs": int(r.runs), "failed": int(r.failed or 0)} for r in conn.execute(q)]
