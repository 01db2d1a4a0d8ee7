"""The JobsPanel widget acting through ws.jobs, and the daily maintenance job on a real workspace."""

from __future__ import annotations

from pathlib import Path

from emergent.jobs.model import RunStatus

ROOT = Path(__file__).resolve().parents[2]
DAILY = ROOT / "notebooks" / "jobs" / "daily_maintenance.ipynb"


def test_the_jobs_panel_pauses_resumes_and_runs_a_job_with_a_link_to_its_notebook(jobs, me, make_nb) -> None:
    from emergent.ui.jobs_panel import JobsPanel

    jobs.add("hello", make_nb("hello", "print('hi')"), schedule="every 1h", principal=me)
    panel = JobsPanel(jobs, principal=me)
    assert "hello" in panel.rows.children[0].children[0].value and "no runs yet" in panel.runs_html.value
    panel.buttons[("hello", "toggle")].click()
    assert jobs.get("hello").paused and panel.buttons[("hello", "toggle")].description == "Resume"
    panel.buttons[("hello", "toggle")].click()
    assert not jobs.get("hello").paused and panel.buttons[("hello", "toggle")].description == "Pause"
    panel.run_now("hello", wait=True)
    (run,) = jobs.history("hello")
    assert run.status is RunStatus.SUCCEEDED
    assert "succeeded" in panel.runs_html.value and Path(run.output_path).name in panel.runs_html.value
    assert "<a href=" in panel.runs_html.value and "hello</code>: succeeded" in panel.message.value


def test_daily_maintenance_consolidates_backs_up_and_reports(ws, me, jobs) -> None:
    from emergent import Workstation
    from emergent.clock import FakeClock

    year_ago = ws.clock.now() - 365 * 86400  # a long-term memory learned a year ago and never touched since
    with Workstation.open(ws.path, embedder="hashing", clock=FakeClock(year_ago)) as past:
        past.memory.remember("the old office wifi password was hunter2", importance=0.0, tier="ltm")
    ws.memory.remember("the team meets on Mondays", importance=0.9, tier="ltm")
    jobs.add("daily_maintenance", DAILY, schedule="0 3 * * *", parameters={"embedder": "hashing"}, timeout_s=300, principal=me)
    run = jobs.run("daily_maintenance", principal=me)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.outputs["archived"] == 1, run.outputs

    with Workstation.open(ws.path, embedder="hashing") as fresh:  # what the job left in the workspace
        assert [h.text for h in fresh.memory.recall("team meets wifi", k=5)] == ["the team meets on Mondays"]
    if run.outputs["backup_id"] is not None:  # the backup module is part of this installation
        assert any(run.outputs["backup_id"] in p.name for p in (ws.path / "backups").iterdir())
    executed = Path(run.output_path).read_text()
    assert "memories" in executed.lower()


def test_the_jobs_panel_shows_a_long_error_whole(jobs, me, make_nb) -> None:
    from emergent.ui.jobs_panel import JobsPanel

    long_reason = "the lake sensor feed answered 503 " * 12 + "END-OF-MESSAGE"
    jobs.add("fails", make_nb("fails", f"raise RuntimeError({long_reason!r})"), principal=me)
    jobs.run("fails", principal=me)
    panel = JobsPanel(jobs, principal=me)
    assert "END-OF-MESSAGE" in panel.runs_html.value and "<details>" in panel.runs_html.value
