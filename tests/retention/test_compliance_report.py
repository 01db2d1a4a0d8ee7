"""The compliance report runs as a papermill job through ws.jobs and keeps its HTML, one section each."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from emergent.jobs.model import RunStatus
from emergent.security.retention import REPORT_JOB, job_notebook

SECTIONS = ("Retention in force", "Access by principal", "Audit chain verification", "Approvals and overrides",
            "Erasures")


def test_the_compliance_report_runs_as_a_job_and_keeps_its_html_with_every_section(ws, me, agent) -> None:
    ws.retention.set_policy("episodic", "assistant", 90, by=me, note="minimisation-note-7")
    rec = ws.memory.remember("alice's note", scope="assistant/alice", tier="ltm")
    erased = ws.retention.erase(by=me, reason="request-4711", ids=[rec.id])
    pending = ws.autonomy.approvals.request(principal=agent, tool="shell.run", args={"cmd": "ls"},
                                            reason="look around", digest="d" * 64)
    ws.autonomy.approvals.reject(pending.id, by=me, reason="not now-9931")
    ws.autonomy.override("agent:researcher", "files.read", "allow", by=me, reason="override-reason-5")

    ws.jobs.add(REPORT_JOB, job_notebook(REPORT_JOB), parameters={"embedder": "hashing"}, timeout_s=300,
                principal=me)
    run = ws.jobs.run(REPORT_JOB, principal=me)
    assert run.status is RunStatus.SUCCEEDED, run.error
    html_path = Path(run.outputs["html"])
    assert html_path == Path(run.output_path).with_suffix(".html") and html_path.is_file()
    html = html_path.read_text("utf-8")
    for section in SECTIONS:
        assert f">{section}<" in html or f">{section}</" in html or section in html, section
    for fact in ("minimisation-note-7", "request-4711", erased.erasure_id, "not now-9931", "files.read",
                 "audit chain intact", me.key, "agent:researcher"):
        assert fact in html, fact
    assert "alice's note" not in html  # the report tells of the erasure, never of the content
    assert run.outputs["audit_ok"] is True and run.outputs["erasures"] == 1 and run.outputs["policies"] == 1


def test_the_retention_cli_sets_lists_erases_and_purges(ws, me, home: Path, monkeypatch) -> None:
    from emergent.cli.retention import app

    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    runner = CliRunner()
    ok = runner.invoke(app, ["set", "semantic", "assistant/bob", "30", "--note", "cli", "--home", str(home)])
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["policies", "--json", "--home", str(home)])
    assert [(p["kind"], p["scope"]) for p in json.loads(listed.output)] == [("semantic", "assistant/bob")]

    rec = ws.memory.remember("bob's secret recipe", scope="assistant/bob", tier="ltm")
    dry = runner.invoke(app, ["erase", "--reason", "asked", "--user", "bob", "--dry-run", "--home", str(home)])
    assert dry.exit_code == 0 and json.loads(dry.output)["ids"] == [rec.id]
    assert ws.memory.locate(ids=[rec.id])
    refused = runner.invoke(app, ["erase", "--reason", "asked", "--scope", "assistant", "--yes", "--home", str(home)])
    assert refused.exit_code != 0 and ws.memory.locate(ids=[rec.id])
    done = runner.invoke(app, ["erase", "--reason", "asked", "--id", rec.id, "--yes", "--home", str(home)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["ids"] == [rec.id] and ws.memory.locate(ids=[rec.id]) == []

    purged = runner.invoke(app, ["purge", "--dry-run", "--home", str(home)])
    assert purged.exit_code == 0 and json.loads(purged.output)["erased"] == 0
    gone = runner.invoke(app, ["remove", "semantic", "assistant/bob", "--home", str(home)])
    assert gone.exit_code == 0 and ws.retention.policies() == []

    scheduled = runner.invoke(app, ["schedule", "--cron", "15 4 * * *", "--home", str(home)])
    assert scheduled.exit_code == 0, scheduled.output
    job = ws.jobs.get("retention_purge")
    assert job.spec.schedule == "15 4 * * *" and job.spec.parameters == {"history_days": 7.0}
    assert job.spec.notebook.endswith("notebooks/jobs/retention_purge.ipynb")
