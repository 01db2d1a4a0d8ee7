"""Sensitive SQL columns sealed at rest: an assistant run's question, answer and checkpoint."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from emergent.assistant.store import COMPLETED, RunStore
from emergent.errors import ConfigError, IntegrityError

SECRET = "wire the payroll to account zanzibar-7431"


def test_run_question_answer_and_checkpoint_are_sealed_and_read_back(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(os.urandom(32)).decode())
    ws = Workstation.open(home, embedder="hashing")
    try:
        store = ws.assistant_runs
        assert store.cipher is not None  # the workstation hands it the cipher when encryption is on
        run = store.create(assistant="assistant", principal="agent:assistant", asked_by="human:me", mode="auto",
                           question=SECRET, state={"messages": [{"role": "tool", "content": SECRET}]})
        run.state["messages"].append({"role": "assistant", "content": "done: " + SECRET})
        assert store.save(run, status=COMPLETED, answer="sent to zanzibar-7431")
        with ws.sql.connect() as conn:
            raw = conn.execute(sa.text("SELECT question, answer, state, status FROM assistant_runs")).one()
        assert all(v.startswith("egc1:") and "zanzibar" not in v for v in raw[:3]) and raw[3] == COMPLETED
        back = RunStore(ws.sql, cipher=ws.keyring.cipher("sql.assistant_runs")).get(run.id)
        assert back.question == SECRET and back.answer == "sent to zanzibar-7431"
        assert back.state["messages"][-1]["content"] == "done: " + SECRET
        assert [r.id for r in store.list(status=COMPLETED)] == [run.id]
        with pytest.raises(ConfigError):
            RunStore(ws.sql).get(run.id)  # encryption turned off: an error, never the ciphertext as text
        # a sealed value copied into another run does not open there
        other = store.create(assistant="assistant", principal="agent:assistant", asked_by="human:me", mode="auto",
                             question="harmless", state={})
        with ws.sql.begin() as conn:
            conn.execute(sa.text("UPDATE assistant_runs SET question = :q WHERE id = :id"),
                         {"q": raw[0], "id": other.id})
        with pytest.raises(IntegrityError):
            store.get(other.id)
        ws.close()
        ws = None
        data = b"".join(p.read_bytes() for p in home.rglob("emergent.db*") if p.is_file())
        assert b"zanzibar" not in data
    finally:
        if ws is not None:
            ws.close()


def test_runs_without_encryption_are_stored_as_before(home: Path) -> None:
    from emergent import Workstation

    ws = Workstation.open(home, embedder="hashing")
    try:
        assert ws.assistant_runs.cipher is None
        run = ws.assistant_runs.create(assistant="a", principal="agent:a", asked_by="human:me", mode="auto",
                                       question="plain question", state={})
        with ws.sql.connect() as conn:
            assert conn.execute(sa.text("SELECT question FROM assistant_runs")).scalar() == "plain question"
        assert ws.assistant_runs.get(run.id).question == "plain question"
    finally:
        ws.close()
