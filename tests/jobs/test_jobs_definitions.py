"""Defining jobs: schedules, names, parameters and notebooks are checked when the job is added."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from emergent.errors import NotFoundError, UsageError, ValidationError
from emergent.jobs.model import JobSpec, next_fire, parse_interval


def test_intervals_and_cron_give_the_next_fire_time_in_utc() -> None:
    assert parse_interval("every 15m") == 900
    assert parse_interval("90s") == 90 and parse_interval("2h") == 7200 and parse_interval("1d") == 86400
    assert parse_interval("0 3 * * *") is None
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    assert next_fire("every 5m", t0) == t0 + 300
    assert datetime.fromtimestamp(next_fire("0 3 * * *", t0), tz=UTC) == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["* * banana", "61 * * * *", "every 0s", "sometimes"])
def test_an_invalid_schedule_is_refused_with_examples(bad: str, jobs, me, make_nb) -> None:
    nb = make_nb("plain", "1 + 1")
    with pytest.raises(ValidationError) as err:
        jobs.add("j", nb, schedule=bad, principal=me)
    assert repr(bad) in str(err.value)
    assert "every 15m" in err.value.hint or "at least 1s" in err.value.hint
    assert jobs.list() == []


def test_bad_names_notify_targets_and_self_chains_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="job name"):
        JobSpec.build(name="../etc", notebook="x.ipynb")
    with pytest.raises(ValidationError, match="notification target"):
        JobSpec.build(name="a", notebook="x.ipynb", notify=["ftp://x"])
    with pytest.raises(ValidationError, match="chain to itself"):
        JobSpec.build(name="a", notebook="x.ipynb", chain=["a"])


def test_a_missing_notebook_is_refused_at_add_time(jobs, me, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        jobs.add("ghost", tmp_path / "nope.ipynb", principal=me)


def test_a_parameter_of_the_wrong_type_is_refused_naming_the_type(jobs, me, make_nb) -> None:
    nb = make_nb("typed", "n * 2", params="n = 3\nlabel = 'x'\nratio = 0.5")
    with pytest.raises(ValidationError, match=r"parameter 'n' must be int.*got str 'three'"):
        jobs.add("typed", nb, parameters={"n": "three"}, principal=me)
    with pytest.raises(ValidationError, match="must be int"):
        jobs.add("typed", nb, parameters={"n": True}, principal=me)
    jobs.add("typed", nb, parameters={"n": 4, "ratio": 1, "label": "y"}, principal=me)  # int is fine where a float is declared
    assert jobs.get("typed").spec.parameters == {"n": 4, "ratio": 1, "label": "y"}


def test_an_unknown_parameter_is_refused_with_a_suggestion(jobs, me, make_nb) -> None:
    nb = make_nb("typed", "n", params="count = 3")
    with pytest.raises(ValidationError, match="did you mean 'count'"):
        jobs.add("typed", nb, parameters={"cuont": 4}, principal=me)


def test_parameters_without_a_parameters_cell_are_refused(jobs, me, make_nb) -> None:
    nb = make_nb("untagged", "n = 3\nprint(n)")
    with pytest.raises(ValidationError, match="no cell tagged 'parameters'"):
        jobs.add("untagged", nb, parameters={"n": 4}, principal=me)
    jobs.add("untagged", nb, principal=me)  # without parameters it is a fine job


def test_jobs_are_listed_shown_paused_resumed_and_removed(jobs, me, make_nb, ws) -> None:
    nb = make_nb("plain", "1")
    state = jobs.add("nightly", nb, schedule="0 3 * * *", principal=me)
    assert state.next_run_at is not None and state.next_run_at > ws.clock.now()
    with pytest.raises(UsageError, match="already exists"):
        jobs.add("nightly", nb, principal=me)
    jobs.add("nightly", nb, schedule="every 1h", replace=True, principal=me)
    assert jobs.get("nightly").spec.schedule == "every 1h"
    assert jobs.pause("nightly", principal=me).paused
    assert jobs.due(now=ws.clock.now() + 10 * 3600) == []
    resumed = jobs.resume("nightly", principal=me)
    assert not resumed.paused and resumed.next_run_at > ws.clock.now()
    jobs.remove("nightly", principal=me)
    with pytest.raises(NotFoundError, match="no job named 'nightly'"):
        jobs.get("nightly")
    with pytest.raises(NotFoundError, match="did you mean"):
        jobs.get("nightlyy") if jobs.add("nightly", nb, principal=me) else None


def test_an_unknown_kernel_is_refused_naming_the_installed_ones(jobs, me, make_nb) -> None:
    with pytest.raises(ValidationError, match="no Jupyter kernel named 'nokernel'") as err:
        jobs.add("k", make_nb("plain", "1"), kernel="nokernel", principal=me)
    assert "python3" in err.value.hint and "emergent kernel install" in err.value.hint


def test_every_change_to_a_job_is_audited_with_who_made_it(jobs, me, make_nb, ws) -> None:
    nb = make_nb("plain", "1")
    jobs.add("nightly", nb, schedule="0 3 * * *", principal=me)
    jobs.pause("nightly", principal=me)
    jobs.resume("nightly", principal=me)
    jobs.remove("nightly", principal=me)
    entries = [(e.kind, e.actor, e.data["phase"]) for e in ws.audit.entries() if e.kind.startswith("job.")]
    assert entries == [(k, me.key, phase) for k in ("job.define", "job.pause", "job.resume", "job.remove")
                       for phase in ("intent", "done")]
    define = ws.audit.entries(kind="job.define")[0].data
    assert define["job"] == "nightly" and len(define["notebook_sha256"]) == 64


def test_a_job_change_needs_a_principal_of_this_workspace(jobs, make_nb) -> None:
    from emergent.errors import PrincipalError
    from emergent.principals import Principal

    with pytest.raises(PrincipalError, match="not a principal"):
        jobs.add("nightly", make_nb("plain", "1"), principal=None)
    with pytest.raises(PrincipalError, match="not issued by this workspace"):
        jobs.add("nightly", make_nb("plain", "1"), principal=Principal("service", "scheduler"))
    assert jobs.list() == []
