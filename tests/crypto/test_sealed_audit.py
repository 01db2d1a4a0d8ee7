"""The audit trail with encryption on: what people and tools said is sealed, the chain still verifies
without the key, and readers with the key see the entries as they were written."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from emergent.audit import AuditLog

SECRET = "transfer to the zanzibar quokka fund"


def test_sealed_fields_are_stored_sealed_and_read_back(home: Path) -> None:
    from emergent import Workstation

    ws = Workstation.open(home, embedder="hashing")
    try:
        log = AuditLog(ws.sql, clock=ws.clock, cipher=ws.keyring.cipher("sql.audit"))
        log.append("assistant.asked", ws.principal, {"question": SECRET, "mode": "offline"}, durable=True)
        log.append("tool.called", ws.principal, {"args": {"to": SECRET}, "tool": "pay", "outcome": "ok"}, durable=True)
        with ws.sql.connect() as conn:
            stored = [r[0] for r in conn.execute(sa.text("SELECT data FROM audit_log ORDER BY seq"))]
        assert not [d for d in stored if "zanzibar" in d]
        assert any('"tool":"pay"' in d and '"outcome":"ok"' in d for d in stored)  # the rest stays readable
        assert [e.data for e in log.entries()][-2:] == [{"question": SECRET, "mode": "offline"},
                                                        {"args": {"to": SECRET}, "tool": "pay", "outcome": "ok"}]
        assert AuditLog(ws.sql).verify().ok  # no key needed to verify the chain
        assert AuditLog(ws.sql).entries()[-1].data["args"].startswith("egc1:")  # without the key: sealed text
        with ws.sql.begin() as conn:  # a sealed value moved to another kind of entry does not open
            conn.execute(sa.text("UPDATE audit_log SET kind = 'tool.other' WHERE seq = (SELECT MAX(seq) FROM audit_log)"))
        from emergent.errors import IntegrityError

        with pytest.raises(IntegrityError):
            log.entries()
    finally:
        ws.close()



def test_an_assistant_question_leaves_no_plaintext_in_the_database(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(os.urandom(32)).decode())
    ws = Workstation.open(home, embedder="hashing")
    try:
        ws.memory.remember("the zanzibar quokka lives by the dam", tier="ltm")
        run = ws.assistant().ask("where does the zanzibar quokka live?", user=ws.principal)
        assert run.status == "completed"
        asked = [e for e in ws.audit.entries() if e.data.get("question")]
        # the trail keeps the question's digest, never its text (decision 90); with encryption on that digest is sealed too
        import hashlib

        q = "where does the zanzibar quokka live?"
        assert asked and asked[-1].data["question"]["sha256"] == hashlib.sha256(q.encode()).hexdigest()
        assert ws.audit.verify().ok
    finally:
        ws.close()
    leaks = [str(p) for p in home.rglob("*") if p.is_file() and b"zanzibar" in p.read_bytes()]
    assert leaks == []
