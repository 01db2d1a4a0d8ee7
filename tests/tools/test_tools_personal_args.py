"""Personal arguments (a memory's text): the audit trail keeps their length and sha256, an approval
keeps their text only until its call ran, and right-to-erasure reaches requests holding an erased text."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from emergent.errors import ApprovalPending, PermissionDenied
from emergent.security.retention import Retention

TEXT = "the user's passport is QX9-walrus-okapi-5521"


def _digest(text: str) -> dict[str, Any]:
    return {"personal": True, "chars": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _audit_text(ws: Any) -> str:
    ws.audit.flush()
    return json.dumps([e.to_dict() for e in ws.audit.entries()])


def _agent_asks(ws: Any, agent: Any, text: str) -> str:
    with pytest.raises(ApprovalPending) as info:
        ws.tools.call("memory.remember", {"text": text, "meta": {"note": text}}, principal=agent, wait=False)
    return str(info.value.fields["approval"])


def test_memory_tools_declare_their_text_personal(ws: Any) -> None:
    assert ws.tools.registry.resolve("memory.remember").personal_args == ("text", "meta")
    assert ws.tools.registry.resolve("memory.recall").personal_args == ("query",)


def test_an_approved_memory_write_keeps_only_the_digest_of_its_text_once_it_ran(ws: Any, me: Any,
                                                                                 agent: Any) -> None:
    aid = _agent_asks(ws, agent, TEXT)
    assert ws.autonomy.approvals.get(aid).args["text"] == TEXT  # kept until it runs: a human reads what they approve
    ws.autonomy.approvals.approve(aid, by=me, reason="ok")
    mid = ws.tools.resume(aid)
    assert ws.memory.get(mid, scope="researcher").text == TEXT
    after = ws.autonomy.approvals.get(aid)
    assert after.status == "consumed" and after.args["text"] == _digest(TEXT)
    assert after.args["meta"]["personal"] is True and after.args["scope"] == "researcher" and after.digest
    audit = _audit_text(ws)
    assert "walrus-okapi" not in audit and _digest(TEXT)["sha256"] in audit  # the fact, not the content
    assert '"approval.redacted"' in audit
    assert ws.audit.verify().ok


def test_a_recall_query_is_not_kept_in_the_audit_trail(ws: Any, me: Any) -> None:
    ws.tools.call("memory.remember", {"text": TEXT}, principal=me)
    hits = ws.tools.call("memory.recall", {"query": "walrus-okapi passport", "k": 3}, principal=me)
    assert hits and hits[0]["text"] == TEXT
    assert "walrus-okapi" not in _audit_text(ws)


def test_a_request_refused_while_its_call_waited_loses_its_text(ws: Any, me: Any, agent: Any) -> None:
    import threading

    done: list[BaseException] = []

    def ask() -> None:
        try:
            ws.tools.call("memory.remember", {"text": TEXT}, principal=agent, wait=10)
        except BaseException as exc:
            done.append(exc)

    t = threading.Thread(target=ask)
    t.start()
    for _ in range(200):
        pending = ws.autonomy.approvals.list()
        if pending:
            break
        threading.Event().wait(0.02)
    ws.autonomy.approvals.reject(pending[0].id, by=me, reason="no")
    t.join(10)
    assert isinstance(done[0], PermissionDenied)
    assert ws.autonomy.approvals.get(pending[0].id).args["text"] == _digest(TEXT)


def test_erasure_rejects_and_redacts_a_request_still_holding_the_erased_text(ws: Any, me: Any, agent: Any) -> None:
    pending = _agent_asks(ws, agent, TEXT)
    approved = _agent_asks(ws, agent, TEXT + " ")  # approved, not yet run
    ws.autonomy.approvals.approve(approved, by=me, reason="ok")
    other = _agent_asks(ws, agent, "an unrelated note")
    mid = ws.memory.remember(TEXT, scope="researcher", tier="ltm").id
    retention = Retention(ws.sql, memory=ws.memory, audit=ws.audit, clock=ws.clock, principals=ws.principals,
                          stores=ws._stores, approvals=ws.autonomy.approvals)
    retention.erase(by=me, reason="GDPR art. 17 #7", ids=[mid])
    for aid in (pending, approved):
        a = ws.autonomy.approvals.get(aid)
        assert a.status == "rejected" and "erased" in (a.decision_reason or "")
        assert a.args["text"]["personal"] is True and a.args["meta"]["personal"] is True
        with pytest.raises(PermissionDenied):
            ws.tools.resume(aid)
    assert ws.autonomy.approvals.get(other).args["text"] == "an unrelated note"
    assert ws.autonomy.approvals.get(other).status == "pending"
    assert "walrus-okapi" not in _audit_text(ws) + json.dumps([a.to_dict() for a in
                                                               ws.autonomy.approvals.list(status=None)])
    assert ws.audit.verify().ok
