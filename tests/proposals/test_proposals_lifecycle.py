"""Signals → proposals → approval through the autonomy gate, with the faults the issue names."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from emergent.errors import PermissionDenied, PrincipalError, StateConflictError, UsageError, ValidationError
from emergent.proposals import codegen
from emergent.proposals.service import Proposals
from emergent.proposals.signals import Signal
from emergent.providers.llm import OpenAIChatModel


def seed_tool_calls(ws, tool="web.fetch", n=40, failures=8, at=None):
    at = at or ws.clock.now()
    rows = [{"at": at - i, "call_id": f"c{tool}{i}", "tool": tool, "version": "1.0.0", "actor": "agent:scout",
             "latency_ms": 30.0 + i, "outcome": "error" if i < failures else "ok", "attempts": 1,
             "error_class": "TransientError" if i < failures else None, "error": None} for i in range(n)]
    with ws.sql.begin() as conn:
        conn.execute(sa.text("INSERT INTO tool_calls (at, call_id, tool, version, actor, latency_ms, outcome, "
                             "attempts, error_class, error) VALUES (:at, :call_id, :tool, :version, :actor, "
                             ":latency_ms, :outcome, :attempts, :error_class, :error)"), rows)


@pytest.fixture
def bot(ws, me):
    """The self-improvement agent: what it proposes waits for a human unless a rule allows it."""
    return ws.self_improvement_agent()


def test_tool_failures_become_a_signal_with_its_query_and_a_deduplicated_proposal(ws, bot):
    seed_tool_calls(ws)
    signals, skipped = ws.proposals.analyze()
    s = next(s for s in signals if s.kind == "tool_failure_rate")
    assert s.subject == "web.fetch" and s.value == pytest.approx(0.2)
    assert s.evidence["query"].startswith("ws.tools.telemetry.window(since=") and s.evidence["numbers"]["calls"] == 40
    p = ws.proposals.generate([s], principal=bot)[0]
    assert p["status"] == "pending" and p["strategy"] == "template" and p["kind"] == "config"
    assert p["change"]["changes"]["retry"]["web.fetch"]["attempts"] == 2
    assert "+++ b/config/tools.json" in p["diff"] and '"attempts": 2' in p["diff"]
    assert p["impact"]["components"] == ["tools.runner:web.fetch"]
    assert p["impact"]["estimate"]["expected_failure_rate"] == pytest.approx(0.04)
    again = ws.proposals.generate([s], principal=bot)[0]
    assert again["id"] == p["id"] and again["deduplicated"]
    a = ws.autonomy.approvals.get(p["approval_id"])
    assert a.status == "pending" and a.actor == bot.key and a.digest


def test_approval_goes_through_the_autonomy_queue_and_audit(ws, me, bot):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s], principal=bot)[0]
    done = ws.proposals.approve(p["id"], by=me, reason="good idea")
    assert done["status"] == "approved" and done["decided_by"] == me.key
    approval = ws.autonomy.approvals.get(p["approval_id"])
    assert approval.status == "consumed" and approval.decided_by == me.key  # approved, then used once
    kinds = [(e.kind, e.data.get("phase")) for e in ws.audit.entries()]
    assert ("proposal.create", "done") in kinds and ("proposal.approved", "done") in kinds
    assert ("approval.approved", None) in kinds and ("approval.consumed", None) in kinds
    assert [e["to_status"] for e in ws.proposals.events(p["id"])] == ["draft", "pending", "approved"]
    assert ws.audit.verify().ok


def test_only_a_human_decides_and_never_on_a_proposal_of_their_own(ws, me, bot):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s], principal=bot)[0]
    with pytest.raises(PrincipalError, match="agent:self-improvement may not approve"):
        ws.proposals.approve(p["id"], by=bot)
    with pytest.raises(PrincipalError, match="may not reject"):
        ws.proposals.reject(p["id"], by=ws.principals.service("scheduler"), reason="no")
    ws.autonomy.add_rule(me.key, "proposals.*", "ask", by=me)  # a human's own proposals wait too now
    mine = ws.proposals.generate([Signal("tool_failure_rate", "tool9", 0.3, 0.05, "tool9 fails", {"query": "q"})],
                                 principal=me)[0]
    assert mine["status"] == "pending" and ws.autonomy.approvals.get(mine["approval_id"]).actor == me.key
    with pytest.raises(PrincipalError, match="may not approve it too"):
        ws.proposals.approve(mine["id"], by=me)
    assert ws.proposals.get(mine["id"])["status"] == "pending" and ws.proposals.get(p["id"])["status"] == "pending"


def test_a_decision_made_in_the_approvals_queue_is_synced_once(ws, me, bot):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s], principal=bot)[0]
    ws.autonomy.approvals.approve(p["approval_id"], by=me, reason="from the CLI")
    assert ws.proposals.sync_approvals() == 1 and ws.proposals.sync_approvals() == 0
    done = ws.proposals.get(p["id"])
    assert done["status"] == "approved" and done["decided_by"] == me.key
    assert ws.autonomy.approvals.get(p["approval_id"]).status == "consumed"
    with pytest.raises(PermissionDenied, match="already used"):
        ws.tools.resume(p["approval_id"])


def test_the_permission_matrix_can_auto_approve_proposals(ws, me, bot):
    ws.autonomy.add_rule("agent:self-improvement", "proposals.config", "allow", by=me)
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s], principal=bot)[0]
    assert p["status"] == "approved" and p["decided_by"] == "system:gate"


def test_concurrent_approvals_of_the_same_proposal_one_wins(ws, me, bot):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s], principal=bot)[0]
    results: list[str] = []

    def decide(who: object) -> None:
        try:
            ws.proposals.approve(p["id"], by=who)
            results.append("ok")
        except StateConflictError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=decide, args=(me,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and len(results) == 4
    assert all("approved" in r or "meanwhile" in r for r in results if r != "ok")
    assert [e["to_status"] for e in ws.proposals.events(p["id"])].count("approved") == 1


def test_invalid_transitions_and_reasonless_rejections_are_refused(ws, me, bot):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s], principal=bot)[0]
    with pytest.raises(ValidationError, match="needs a reason"):
        ws.proposals.reject(p["id"], by=me, reason=" ")
    ws.proposals.reject(p["id"], by=me, reason="not now")
    assert ws.autonomy.approvals.get(p["approval_id"]).status == "rejected"
    with pytest.raises(StateConflictError, match="rejected; it cannot become approved"):
        ws.proposals.approve(p["id"], by=me)
    assert ws.proposals.generate([s], principal=bot)[0]["id"] != p["id"]  # a closed proposal does not block


def _signal():
    return Signal("low_recall_hit_rate", "memory", 0.3, 0.6, "only 30% of 50 recalls found anything",
                  {"query": "SELECT 1", "numbers": {"recall": 50}})


def test_llm_writes_the_text_and_the_strategy_is_recorded(ws, me, llm_server):
    llm_server.default = {"content": json.dumps({"title": "Recall misses: widen the pool",
                                                 "rationale": "30% hit rate over 50 recalls.", "risk": "low",
                                                 "confidence": 0.8})}
    llm = OpenAIChatModel("fake-model", base_url=llm_server.base_url, backoff=0.01)
    svc = Proposals(ws.sql, gate=ws.experiments.gate, llm=llm, registry=ws.experiments.registry)
    p = svc.generate([_signal()], submit=False, principal=me)[0]
    assert p["title"] == "Recall misses: widen the pool" and p["strategy"] == "llm:fake-model"
    assert p["change"] == {"namespace": "memory", "changes": {"candidates": 200,
                                                              "w_text": ws.experiments.registry.values("memory").w_text}}
    sent = json.loads(llm_server.requests[0]["body"]["messages"][1]["content"])
    assert sent["signal"]["evidence"]["query"] == "SELECT 1"


@pytest.mark.parametrize("step, reason", [({"content": "no json here"}, "invalid_json"),
                                          ({"content": None, "refusal": "I won't"}, "refusal"),
                                          (("sleep", 1.0), "timeout")])
def test_llm_failures_fall_back_to_the_template_and_say_so(ws, me, llm_server, step, reason):
    llm_server.default = step
    llm = OpenAIChatModel("fake-model", base_url=llm_server.base_url, backoff=0.01, timeout=0.2, max_retries=0)
    svc = Proposals(ws.sql, gate=ws.experiments.gate, llm=llm, registry=ws.experiments.registry)
    p = svc.generate([_signal()], submit=False, principal=me)[0]
    assert p["strategy"] == f"template (llm failed: {reason})"
    assert p["title"].startswith("Widen the recall candidate pool")


TOOL = "def fetch(url):\n    return {'url': url, 'timeout': 10}\n"
TEST = "from tool import fetch\n\ndef test_fetch():\n    assert fetch('x')['timeout'] == 20\n"


def test_a_tool_patch_is_validated_in_the_sandbox_before_it_is_proposed(ws, me):
    good = codegen.unified_diff("tool.py", TOOL, TOOL.replace("10", "20"))
    check = codegen.validate_tool_patch(good, {"tool.py": TOOL}, {"test_tool.py": TEST})
    assert check.applies and check.tests_passed and check.isolation and "PASS" in check.test_output
    bad_tests = codegen.validate_tool_patch(codegen.unified_diff("tool.py", TOOL, TOOL.replace("10", "30")),
                                            {"tool.py": TOOL}, {"test_tool.py": TEST})
    assert bad_tests.applies and bad_tests.tests_passed is False
    from emergent.proposals.writer import Expected, ProposalDraft

    draft = ProposalDraft(title="Longer fetch timeout", rationale="r", kind="tool", target="fetch",
                          change={"file": "tool.py"}, expected=Expected(metric="m", direction="decrease",
                                                                        how_measured="h"))
    with pytest.raises(ValidationError, match="tests fail"):
        ws.proposals.create(draft, diff="x", check=bad_tests, principal=me)
    assert ws.proposals.create(draft, diff=good, check=check, principal=me)["diff"] == good


def test_a_patch_that_does_not_apply_is_refused_and_nothing_is_proposed(ws, me):
    stale = codegen.unified_diff("tool.py", TOOL.replace("url", "link"), TOOL)
    check = codegen.apply_patch(stale, {"tool.py": TOOL})
    assert not check.applies and check.output
    from emergent.proposals.writer import Expected, ProposalDraft

    draft = ProposalDraft(title="t", rationale="r", kind="tool", target="fetch", change={"file": "tool.py"},
                          expected=Expected(metric="m", direction="decrease", how_measured="h"))
    with pytest.raises(ValidationError, match="patch .* is not valid"):
        ws.proposals.create(draft, diff=stale, check=check, principal=me)
    assert ws.proposals.list() == []


def test_preferences_learn_past_decisions_rank_and_report_calibration(ws, me, bot):
    svc = ws.proposals
    with pytest.raises(UsageError, match="at least 10 decided"):
        svc.preferences()
    for i in range(24):  # this user approves config changes and rejects policy changes
        kind = "tool_failure_rate" if i % 2 else "approval_friction"
        s = Signal(kind, f"agent:a{i}|tool{i}" if kind == "approval_friction" else f"tool{i}",
                   0.97 if kind == "approval_friction" else 0.1 + i / 100, 0.05, f"signal {i}", {"query": "q"})
        p = svc.generate([s], principal=bot)[0]
        if kind == "tool_failure_rate":
            svc.approve(p["id"], by=me)
        else:
            svc.reject(p["id"], by=me, reason="keep asking me")
    model = svc.preferences()
    assert model.n >= 20 and 0 <= model.report["brier"] < 0.1 and model.report["reliability"]
    scores = model.predict([{"kind": "config", "risk": "low", "confidence": 0.6},
                            {"kind": "policy", "risk": "medium", "confidence": 0.6}])
    assert scores[0] > 0.8 > 0.2 > scores[1]
    m = svc.metrics()
    assert m["approval_rate"] == pytest.approx(0.5) and m["proposals_per_week"][-1] == m["decided"]
