"""A recorded automation is a workflow: the designer's workflow run by ``ws.workflows.run`` on a real
Chromium and the DemoSite. As a person it signs in (replay, parameter from an input, secret from the
configuration) and then extracts the table; as an agent the replay (external) waits for a person's
approval, and after it the run resumes and completes as the agent; a failing replay fails the run."""

from __future__ import annotations

from typing import Any

import pytest
from _surfaces import login_script, table_template

from emergent.browser.designer import ExtractStep, ScriptStep, inp, to_workflow
from emergent.browser.model import Action, Script, Target
from emergent.errors import NotFoundError, ValidationError


@pytest.fixture(scope="module")
def saved(ws: Any, human: Any, site: Any) -> None:
    ws.browser.save_script(login_script(site), by=human)
    ws.browser.save_template(table_template(site), by=human)


def test_a_person_runs_login_then_extraction_as_one_workflow(ws: Any, human: Any, site: Any, saved: None) -> None:
    wf = to_workflow("signin-and-read", [ScriptStep("portal-login"), ExtractStep("assays", max_pages=2)],
                     service=ws.browser)
    assert wf.inputs == {"email": "ada@example.org"}  # the script's parameter, with its recorded default
    before = len(site.submissions)
    run = ws.workflows.run(wf, {"email": "wf@example.org"}, principal=human, timeout=120)
    assert run.status == "completed", run.error
    assert run.outputs is not None and run.outputs["portal-login"] == "completed"
    assert [r["compound"] for r in run.outputs["assays"]] == [f"CMP-{i:04d}" for i in range(1, 21)]
    assert site.submissions[before]["email"] == "wf@example.org"
    ws.audit.flush()
    replays = [e for e in ws.audit.entries(kind="browser.replay") if e.actor == human.key]
    assert replays, "the replay is audited under the person who started the run"


def test_an_agents_run_waits_for_approval_of_the_replay_then_completes(ws: Any, human: Any, agent: Any,
                                                                      site: Any, saved: None) -> None:
    wf = to_workflow("agent-signin", [ScriptStep("portal-login", params={"email": inp("who")})])
    run = ws.workflows.run(wf, {"who": "agent@example.org"}, principal=agent, timeout=60)
    assert run.status == "waiting_approval"
    step = run.step("portal-login")
    pending = ws.autonomy.approvals.get(step.approval_id)
    assert (pending.tool, pending.resource) == ("browser.replay@1.0.0", "portal-login")
    before = len(site.submissions)
    ws.autonomy.approvals.approve(pending.id, by=human)
    done = ws.workflows.resume(run.id, principal=agent, timeout=120)
    assert done.status == "completed", done.error
    assert site.submissions[before]["email"] == "agent@example.org"


def test_a_failing_replay_fails_the_workflow_run(ws: Any, human: Any, site: Any, saved: None) -> None:
    ws.browser.save_script(Script(name="gone", actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="click", target=Target.of("#no-such-button"), timeout_ms=300)]), by=human)
    wf = to_workflow("fails", [ScriptStep("gone", heal=False), ExtractStep("assays", max_pages=1)])
    run = ws.workflows.run(wf, principal=human, timeout=120)
    assert run.status == "failed"
    assert run.step("gone").status == "failed" and "replay of gone 1.0.0 failed" in (run.step("gone").error or "")
    assert run.step("assays").status != "completed"


def test_unknown_scripts_templates_and_parameters_are_refused_when_built_against_the_service(
        ws: Any, saved: None) -> None:
    with pytest.raises(NotFoundError):
        to_workflow("x", [ScriptStep("nope")], service=ws.browser)
    with pytest.raises(NotFoundError):
        to_workflow("x", [ExtractStep("nope")], service=ws.browser)
    with pytest.raises(ValidationError, match="has no parameter 'emial'"):
        to_workflow("x", [ScriptStep("portal-login", params={"emial": "a"})], service=ws.browser)
