"""Signals → proposals → approval through the autonomy gate, with the faults the issue names."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from emergent.errors import StateConflictError, UsageError, ValidationError
from emergent.experiments.gate import StaticGate
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


def test_tool_failures_become_a_signal_with_its_query_and_a_deduplicated_proposal(ws):
    seed_tool_calls(ws)
    signals, skipped = ws.proposals.analyze()
    s = next(s for s in signals if s.kind == "tool_failure_rate")
    assert s.subject == "web.fetch" and s.value == pytest.approx(0.2)
    assert "FROM tool_calls" in s.evidence["query"] and s.evidence["numbers"]["calls"] == 40
    p = ws.proposals.generate([s])[0]
    assert p["status"] == "pending" and p["strategy"] == "template" and p["kind"] == "config"
    assert p["change"]["changes"]["retry"]["web.fetch"]["attempts"] == 2
    assert "+++ b/config/tools.json" in p["diff"] and '"attempts": 2' in p["diff"]
    assert p["impact"]["components"] == ["tools.runner:web.fetch"]
    assert p["impact"]["estimate"]["expected_failure_rate"] == pytest.approx(0.04)
    again = ws.proposals.generate([s])[0]
    assert again["id"] == p["id"] and again["deduplicated"]
    assert p["approval_id"] and ws.autonomy.approvals.get(p["approval_id"]).status == "pending"


def test_approval_goes_through_the_autonomy_queue_and_audit(ws):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s])[0]
    done = ws.proposals.approve(p["id"], by="user:ana", reason="good idea")
    assert done["status"] == "approved" and done["decided_by"] == "user:ana"
    assert ws.autonomy.approvals.get(p["approval_id"]).status == "approved"
    kinds = [e.kind for e in ws.autonomy.audit.entries()]
    assert "proposal.created" in kinds and "proposal.approved" in kinds
    assert [e["to_status"] for e in ws.proposals.events(p["id"])] == ["draft", "pending", "approved"]


def test_the_permission_matrix_can_auto_approve_proposals(ws):
    ws.autonomy.add_rule("agent:self-improvement", "proposals.config", "allow")
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s])[0]
    assert p["status"] == "approved" and p["decided_by"] == "gate"


def test_concurrent_approvals_of_the_same_proposal_one_wins(ws):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s])[0]
    results: list[str] = []

    def decide(who: str) -> None:
        try:
            ws.proposals.approve(p["id"], by=who)
            results.append("ok")
        except StateConflictError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=decide, args=(f"user:{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and len(results) == 4
    assert all("approved" in r or "meanwhile" in r for r in results if r != "ok")
    assert [e["to_status"] for e in ws.proposals.events(p["id"])].count("approved") == 1


def test_invalid_transitions_and_reasonless_rejections_are_refused(ws):
    seed_tool_calls(ws)
    s = next(s for s in ws.proposals.analyze()[0] if s.kind == "tool_failure_rate")
    p = ws.proposals.generate([s])[0]
    with pytest.raises(ValidationError, match="needs a reason"):
        ws.proposals.reject(p["id"], by="user:ana", reason=" ")
    ws.proposals.reject(p["id"], by="user:ana", reason="not now")
    with pytest.raises(StateConflictError, match="rejected; it cannot become approved"):
        ws.proposals.approve(p["id"], by="user:bob")
    assert ws.proposals.generate([s])[0]["id"] != p["id"]  # a closed proposal does not block a new one


def _signal():
    return Signal("low_recall_hit_rate", "memory", 0.3, 0.6, "only 30% of 50 recalls found anything",
                  {"query": "SELECT 1", "numbers": {"recall": 50}})


def test_llm_writes_the_text_and_the_strategy_is_recorded(ws, llm_server):
    llm_server.default = {"content": json.dumps({"title": "Recall misses: widen the pool",
                                                 "rationale": "30% hit rate over 50 recalls.", "risk": "low",
                                                 "confidence": 0.8})}
    llm = OpenAIChatModel("fake-model", base_url=llm_server.base_url, backoff=0.01)
    svc = Proposals(ws.sql, llm=llm, registry=ws.experiments.registry)
    p = svc.generate([_signal()], submit=False)[0]
    assert p["title"] == "Recall misses: widen the pool" and p["strategy"] == "llm:fake-model"
    assert p["change"] == {"namespace": "memory", "changes": {"candidates": 200, "w_text": 1.0}}
    sent = json.loads(llm_server.requests[0]["body"]["messages"][1]["content"])
    assert sent["signal"]["evidence"]["query"] == "SELECT 1"


@pytest.mark.parametrize("step, reason", [({"content": "no json here"}, "invalid_json"),
                                          ({"content": None, "refusal": "I won't"}, "refusal"),
                                          (("sleep", 1.0), "timeout")])
def test_llm_failures_fall_back_to_the_template_and_say_so(ws, llm_server, step, reason):
    llm_server.default = step
    llm = OpenAIChatModel("fake-model", base_url=llm_server.base_url, backoff=0.01, timeout=0.2, max_retries=0)
    svc = Proposals(ws.sql, llm=llm, registry=ws.experiments.registry)
    p = svc.generate([_signal()], submit=False)[0]
    assert p["strategy"] == f"template (llm failed: {reason})"
    assert p["title"].startswith("Widen the recall candidate pool")


TOOL = "def fetch(url):\n    return {'url': url, 'timeout': 10}\n"
TEST = "from tool import fetch\n\ndef test_fetch():\n    assert fetch('x')['timeout'] == 20\n"


def test_a_tool_patch_is_validated_in_the_sandbox_before_it_is_proposed(ws):
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
        ws.proposals.create(draft, diff="x", check=bad_tests)
    assert ws.proposals.create(draft, diff=good, check=check)["diff"] == good


def test_a_patch_that_does_not_apply_is_refused_and_nothing_is_proposed(ws):
    stale = codegen.unified_diff("tool.py", TOOL.replace("url", "link"), TOOL)
    check = codegen.apply_patch(stale, {"tool.py": TOOL})
    assert not check.applies and check.output
    from emergent.proposals.writer import Expected, ProposalDraft

    draft = ProposalDraft(title="t", rationale="r", kind="tool", target="fetch", change={"file": "tool.py"},
                          expected=Expected(metric="m", direction="decrease", how_measured="h"))
    with pytest.raises(ValidationError, match="patch .* is not valid"):
        ws.proposals.create(draft, diff=stale, check=check)
    assert ws.proposals.list() == []


def test_preferences_learn_past_decisions_rank_and_report_calibration(ws):
    svc = Proposals(ws.sql, gate=StaticGate(), registry=ws.experiments.registry)
    with pytest.raises(UsageError, match="at least 10 decided"):
        svc.preferences()
    for i in range(24):  # this user approves config changes and rejects policy changes
        kind = "tool_failure_rate" if i % 2 else "approval_friction"
        s = Signal(kind, f"agent:a{i}|tool{i}" if kind == "approval_friction" else f"tool{i}",
                   0.97 if kind == "approval_friction" else 0.1 + i / 100, 0.05, f"signal {i}", {"query": "q"})
        p = svc.generate([s])[0]
        if kind == "tool_failure_rate":
            svc.approve(p["id"], by="user:ana")
        else:
            svc.reject(p["id"], by="user:ana", reason="keep asking me")
    model = svc.preferences()
    assert model.n >= 20 and 0 <= model.report["brier"] < 0.1 and model.report["reliability"]
    scores = model.predict([{"kind": "config", "risk": "low", "confidence": 0.6},
                            {"kind": "policy", "risk": "medium", "confidence": 0.6}])
    assert scores[0] > 0.8 > 0.2 > scores[1]
    m = svc.metrics()
    assert m["approval_rate"] == pytest.approx(0.5) and m["proposals_per_week"][-1] == m["decided"]
