"""The inbox and the dashboard act through the services; the CLI edges give friendly errors."""

from __future__ import annotations

import json

import numpy as np

from emergent.proposals.signals import Signal


def _pending(ws, n=2):
    sigs = [Signal("tool_failure_rate", f"tool{i}", 0.2, 0.05, f"tool{i} fails 20% of 40 calls",
                   {"query": "SELECT ...", "numbers": {"calls": 40, "failures": 8}}) for i in range(n)]
    return ws.proposals.generate(sigs, principal=ws.self_improvement_agent())


def test_inbox_shows_evidence_and_diff_and_decides_with_a_reason(ws, me):
    from emergent.ui.proposals_inbox import ProposalsInbox

    made = _pending(ws)
    inbox = ProposalsInbox(ws.proposals, by=me)
    assert len(inbox.picker.options) == 2 and "SELECT ..." in inbox.detail.value
    assert "+++ b/config/tools.json" in inbox.detail.value
    inbox.reject_btn.click()  # no reason: refused, shown in the panel
    assert "needs a reason" in inbox.message.value and len(inbox.picker.options) == 2
    first = inbox.picker.value
    inbox.approve_btn.click()
    assert ws.proposals.get(first)["status"] == "approved" and len(inbox.picker.options) == 1
    inbox.reason.value = "not this one"
    inbox.reject_btn.click()
    assert {ws.proposals.get(p["id"])["status"] for p in made} == {"approved", "rejected"}
    assert {ws.proposals.get(p["id"])["decided_by"] for p in made} == {me.key}
    assert "nothing to decide" in inbox.detail.value


def test_an_inbox_without_a_human_cannot_decide(ws):
    from emergent.ui.proposals_inbox import ProposalsInbox

    made = _pending(ws, 1)
    inbox = ProposalsInbox(ws.proposals, by=ws.self_improvement_agent())
    inbox.approve_btn.click()
    assert "may not approve" in inbox.message.value and ws.proposals.get(made[0]["id"])["status"] == "pending"


def test_dashboard_shows_effect_ci_boundary_and_guardrails(ws, me):
    from emergent.experiments.service import Guardrail
    from emergent.ui.experiment_dashboard import ExperimentDashboard

    v = ws.experiments.registry.create("memory", changes={"w_text": 4.0}, principal=me)
    exp = ws.experiments.start("dash", v.id, metric="m", guardrails=[Guardrail("latency_ms", limit=100.0)],
                               principal=me)
    rng = np.random.default_rng(0)
    for i in range(200):
        ws.experiments.record(exp["id"], f"u{i}", rng.normal(0.5, 0.1), guardrails={"latency_ms": 20.0})
    dash = ExperimentDashboard(ws.experiments)
    dash.analyse_btn.click()
    html = dash.view.value
    assert "<svg" in html and "polyline" in html and "95% CI" in html and "latency_ms" in html
    assert "analysed:" in dash.message.value


def _cli(*args: str) -> int:
    from emergent.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_sets_rolls_back_and_reports_clear_errors(home, capsys):
    assert _cli("experiments", "set", "memory", '{"w_text": 0.25}', "--current", "--home", str(home)) == 0
    assert capsys.readouterr().out.strip() == "memory@2"
    assert _cli("experiments", "rollback", "memory", "--home", str(home)) == 0
    assert capsys.readouterr().out.strip() == "memory@1"
    assert _cli("experiments", "rollback", "memory", "--to", "memory@7", "--home", str(home)) == 2
    assert "memory@7' does not exist" in capsys.readouterr().err
    assert _cli("improve", "run", "--home", str(home)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycle"] is None and "no workload" in out["cycle_skipped"]
    assert out["principal"] == "agent:self-improvement"  # the cycle acts as its agent, not as the user
