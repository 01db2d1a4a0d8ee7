"""Scheduling state in SQL: a slot is claimed once, survives restarts, and a dead owner's run is
recorded as interrupted (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

from pathlib import Path

from emergent.audit import AuditLog
from emergent.clock import FakeClock
from emergent.jobs.model import RunStatus
from emergent.jobs.service import JobService
from emergent.principals import Principals
from emergent.stores.sql import SQLStore


def _service(sql_url: str, home: Path, clock: FakeClock) -> JobService:
    """A jobs service as one process has it: its own audit log and principal directory."""
    sql = SQLStore(sql_url)
    audit = AuditLog(sql, clock=clock, flush_interval=None)
    svc = JobService(sql, home, clock=clock, lease_s=30.0, audit=audit,
                     principals=Principals(sql, clock=clock, audit=audit))
    svc.me = svc.principals.os_user()  # type: ignore[attr-defined]
    return svc


def test_a_due_slot_is_claimed_by_exactly_one_of_two_services(sql_url: str, home: Path, make_nb) -> None:
    clock = FakeClock()
    a, b = _service(sql_url, home, clock), _service(sql_url, home, clock)
    a.add("hourly", make_nb("plain", "1"), schedule="every 1h", principal=a.me)
    clock.advance(hours=1)
    assert [n for n, _ in a.due()] == ["hourly"]
    got_a = a.claim_due("scheduler-a")
    got_b = b.claim_due("scheduler-b")
    assert len(got_a) == 1 and got_b == []
    assert a.due() == [] and b.due() == []
    assert [r.status for r in a.history("hourly")] == [RunStatus.RUNNING]


def test_a_restarted_service_finds_the_due_job_and_does_not_rerun_a_claimed_slot(sql_url, home, make_nb) -> None:
    clock = FakeClock()
    first = _service(sql_url, home, clock)
    first.add("daily", make_nb("plain", "1"), schedule="0 3 * * *", principal=first.me)
    first.store.sql.dispose()
    clock.advance(days=1)
    restarted = _service(sql_url, home, clock)  # nothing was running while the slot came: not lost
    (spec, run), = restarted.claim_due("s2")
    assert spec.name == "daily" and run.slot <= clock.now()
    restarted.store.finish(run, now=clock.now())
    again = _service(sql_url, home, clock)
    assert again.claim_due("s3") == []  # the slot moved on with the claim: no double run
    assert again.get("daily").next_run_at > clock.now()


def test_a_run_whose_owner_stopped_renewing_is_recorded_as_interrupted(sql_url, home, make_nb) -> None:
    clock = FakeClock()
    svc = _service(sql_url, home, clock)
    svc.add("job", make_nb("plain", "1"), schedule="every 10m", retries=1, principal=svc.me)
    clock.advance(seconds=600)
    (_, run), = svc.claim_due("dead-scheduler")
    clock.advance(seconds=10)
    svc.store.renew("dead-scheduler", now=clock.now(), lease_s=30)  # alive for a while
    clock.advance(seconds=25)
    assert svc.recover() == []
    clock.advance(seconds=60)  # then silent past its lease
    lost, = svc.recover()
    assert lost.id == run.id and lost.status is RunStatus.INTERRUPTED
    assert "dead-scheduler" in lost.error and "lease expired" in lost.error
    assert svc.get("job").lease_owner is None
    assert [n for n, _ in svc.due()] == ["job"]  # retries left: due again at once, as a new run
    assert [r.status for r in svc.history("job")] == [RunStatus.INTERRUPTED]


def test_the_due_check_reads_only_due_unpaused_unleased_jobs(sql_url, home, make_nb) -> None:
    clock = FakeClock()
    svc = _service(sql_url, home, clock)
    nb = make_nb("plain", "1")
    for i in range(30):
        svc.add(f"j{i:02d}", nb, schedule=f"every {i + 1}m", principal=svc.me)
    svc.pause("j00", principal=svc.me)
    clock.advance(seconds=5 * 60)
    due = [n for n, _ in svc.due()]
    assert due == ["j01", "j02", "j03", "j04"]  # oldest slot first, j00 paused
    svc.claim_due("s", limit=2)
    assert [n for n, _ in svc.due()] == ["j03", "j04"]
