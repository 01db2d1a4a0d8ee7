"""The shipped templates: each validates, is listed with its inputs, and runs offline through
``ws.workflows`` on a real workspace (tools through the gate, the assistant offline, notebooks with
papermill, python in the sandbox)."""

from __future__ import annotations

from typing import Any

import pytest

from emergent.errors import ValidationError
from emergent.workflows import Workflow, templates

NAMES = ["incident_triage", "literature_digest", "notebook_report_chain", "proposal_experiment_loop"]


def _states(run: Any) -> dict[str, str]:
    return {s.key: s.status for s in run.steps}


def test_every_template_is_listed_with_its_inputs_and_validates(wws: Any) -> None:
    assert templates.names() == NAMES
    infos = {t.name: t for t in wws.workflows.templates()}
    assert sorted(infos) == NAMES
    for name in NAMES:
        wf = Workflow.from_yaml(templates.text(name)).validate()
        assert wf.name == name and wf.description and infos[name].inputs == wf.inputs
        assert {s.kind for s in wf.steps} <= {"tool", "notebook", "assistant", "workflow"}  # no Python in YAML
    assert infos["incident_triage"].inputs["incident"] is None  # required
    with pytest.raises(ValidationError, match="needs input 'incident'"):
        wws.workflows.run("incident_triage", principal=wws.principal)


def test_an_unknown_template_name_suggests_the_close_one() -> None:
    with pytest.raises(Exception, match="did you mean 'incident_triage'"):
        templates.text("incident_triag")


def test_the_literature_digest_reads_each_paper_remembers_it_and_writes_the_digest(wws: Any,
                                                                                  papers: dict[str, str]) -> None:
    run = wws.workflows.run("literature_digest", {"topic": "oxygen sensor drift"}, principal=wws.principal,
                            timeout=120)
    assert run.status == "completed", run.error
    states = _states(run)
    assert states["read[0]"] == states["read[1]"] == "completed"  # one instance per paper (fan-out)
    assert states["remember[0]"] == states["remember[1]"] == "completed"
    assert run.outputs["papers"] == sorted(papers)
    summary = run.step("summary").output
    assert summary["mode"] == "offline" and "2 percent per month" in summary["answer"]
    digest = (wws.path / "files" / "digests" / "latest.md").read_text()
    assert digest.startswith("# Digest: oxygen sensor drift") and "2 percent per month" in digest


def test_incident_triage_escalates_a_high_incident_and_files_a_low_one(wws: Any) -> None:
    files = wws.path / "files" / "incidents"
    high = wws.workflows.run("incident_triage", {"incident": "North Buoy oxygen sensor reads zero"},
                             principal=wws.principal, timeout=120)
    assert high.status == "completed", high.error
    assert _states(high)["escalate"] == "completed" and _states(high)["file"] == "skipped"
    assert _states(high)["known"] == "completed"  # the runbook was recalled
    assert "power-cycle the sonde" in (files / "escalations.md").read_text()  # the assistant's assessment
    assert not (files / "log.md").exists()

    low = wws.workflows.run("incident_triage", {"incident": "South Pier logger clock is 3 minutes late",
                                                "severity": "low"}, principal=wws.principal, timeout=120)
    assert _states(low)["escalate"] == "skipped" and _states(low)["file"] == "completed"
    assert "South Pier logger clock" in (files / "log.md").read_text()
    recalled = wws.memory.recall("North Buoy oxygen sensor reads zero", k=5, scope="assistant")
    assert any("Incident (high)" in h.text for h in recalled)  # remembered for the next triage


def test_the_experiment_loop_adopts_a_better_candidate_and_rejects_when_none_beats_the_baseline(wws: Any) -> None:
    files = wws.path / "files" / "experiments"
    adopted = wws.workflows.run("proposal_experiment_loop", principal=wws.principal, timeout=120)
    assert adopted.status == "completed", adopted.error
    states = _states(adopted)
    assert [states[f"trial[{i}]"] for i in range(3)] == ["completed"] * 3 and states["reject"] == "skipped"
    assert '"best": 2.0' in (files / "decision.md").read_text()

    rejected = wws.workflows.run("proposal_experiment_loop", {"baseline": 0.1}, principal=wws.principal,
                                 timeout=120)
    assert _states(rejected)["adopt"] == "skipped" and _states(rejected)["reject"] == "completed"
    assert '"adopt": false' in (files / "rejected.md").read_text()


def test_an_adoption_is_undone_when_remembering_it_fails(wws: Any) -> None:
    me = wws.principal
    wws.autonomy.add_rule(me.key, "memory.remember", "deny", by=me)  # the last step will be refused
    run = wws.workflows.run("proposal_experiment_loop", principal=me, timeout=120)
    assert run.status == "failed" and "remember" in (run.error or "")
    assert run.step("adopt").status == "compensated"
    assert not (wws.path / "files" / "experiments" / "decision.md").exists()  # files.delete ran


def test_the_report_chain_writes_its_notebooks_once_and_renders_the_refreshed_data(wws: Any) -> None:
    run = wws.workflows.run("notebook_report_chain", {"days": 3, "title": "Buoys"}, principal=wws.principal,
                            timeout=180)
    assert run.status == "completed", run.error
    assert run.outputs["stations"] == [["North Buoy", 3, 7.526, 7.886], ["South Pier", 3, 6.872, 7.235]]
    assert run.outputs["report"].startswith("# Buoys\n") and "| North Buoy | 3 | 7.526 | 7.886 |" in run.outputs["report"]
    executed = run.step("refresh").output["output"]
    assert (wws.path / "files" / executed).is_file()  # the executed notebook is kept (runs/...)
    mine = wws.path / "files" / "reports" / "report.ipynb"
    mine.write_text(mine.read_text().replace("Renders the summary", "My edited report"))
    wws.workflows.template("notebook_report_chain")
    assert "My edited report" in mine.read_text()  # a notebook already there is the user's: left alone
