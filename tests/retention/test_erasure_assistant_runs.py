"""Right-to-erasure reaches the assistant runs that wrote or quoted an erased memory (through RunStore)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from emergent import Workstation
from emergent.assistant.store import COMPLETED

SECRET = "Alice's passport number is QX771-zebra-okapi"


def _erase_and_check(ws: Workstation) -> None:
    me, runs = ws.principal, ws.assistant_runs
    rec = ws.memory.remember(SECRET, scope="assistant/alice", tier="ltm")
    wrote = runs.create(assistant="assistant", principal="agent:assistant", asked_by=me.key, mode="auto",
                        question=f"/remember {SECRET}", state={"messages": [
                            {"role": "tool", "content": json.dumps({"text": SECRET, "id": rec.id})}],
                            "steps": [{"n": 1, "kind": "tool", "args": {"text": SECRET}}]})
    assert runs.save(wrote, status=COMPLETED, answer=f"Remembered: {SECRET}")
    short = runs.create(assistant="assistant", principal="agent:assistant", asked_by=me.key, mode="auto",
                        question="ok, thanks", state={"steps": [{"text": "ok"}]})
    other = runs.create(assistant="assistant", principal="agent:assistant", asked_by=me.key, mode="auto",
                        question="what is the weather?", state={"steps": []})
    tiny = ws.memory.remember("ok", scope="assistant/alice", tier="ltm")  # a short text: whole values only

    ws.retention.erase(by=me, reason="GDPR art. 17 #7", user="alice")

    back = runs.get(wrote.id)
    assert (back.status, back.assistant, back.asked_by) == (COMPLETED, "assistant", me.key)
    assert back.question == "/remember [erased]" and back.answer == "Remembered: [erased]"
    assert back.state["steps"] == [{"n": 1, "kind": "tool", "args": {"text": "[erased]"}}]
    assert "zebra" not in json.dumps(back.state) and rec.id in json.dumps(back.state)
    assert runs.get(short.id).question == "ok, thanks" and runs.get(short.id).state == {"steps": [{"text": "[erased]"}]}
    assert runs.get(other.id).question == "what is the weather?"
    assert tiny.id  # erased with the user
    ws.audit.flush()
    entry = [e for e in ws.audit.entries() if e.kind == "retention.erase"][-1]
    assert entry.data["assistant_runs_redacted"] == 2 and sorted(entry.data["assistant_runs"]) == sorted(
        [wrote.id, short.id])
    assert "zebra" not in json.dumps([e.to_dict() for e in ws.audit.entries()])
    with ws.sql.connect() as conn:
        raw = json.dumps([list(r) for r in conn.execute(sa.text("SELECT question, answer, state FROM assistant_runs"))])
    assert "zebra" not in raw


def test_an_erasure_redacts_the_runs_that_hold_the_erased_text_and_keeps_their_structure(ws: Workstation) -> None:
    _erase_and_check(ws)


def test_a_sealed_run_is_opened_redacted_and_sealed_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(os.urandom(32)).decode())
    ws = Workstation.open(home, embedder="hashing")
    try:
        _erase_and_check(ws)
        with ws.sql.connect() as conn:
            raw = conn.execute(sa.text("SELECT question, answer, state FROM assistant_runs")).all()
        assert all(v is None or v.startswith("egc1:") for r in raw for v in r)
    finally:
        ws.close()
