"""Right to erasure: a precise selector, every tier, the ledger and an audit trail without text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergent import Workstation
from emergent.errors import PrincipalError, ScopeError, ValidationError

SECRET = "alice-passport-QX771-zebra"


def _audit_text(ws) -> str:
    return json.dumps([e.to_dict() for e in ws.audit.entries()])


@pytest.fixture
def small(home: Path):
    """A workspace whose short-term memory keeps 2 items per agent (the rest are evicted)."""
    w = Workstation.open(home, embedder="hashing", memory={"stm_max_items": 2})
    yield w
    w.close()


@pytest.mark.parametrize("selector", [
    {}, {"ids": [], "user": None}, {"ids": "0123"}, {"ids": [""]}, {"ids": ["a"], "user": "alice"},
    {"scope": "assistant"}, {"user": "bad name!"}, {"user": "alice", "scope": "assistant/alice"},
])
def test_an_erasure_without_one_precise_selector_is_refused_and_erases_nothing(ws, me, selector) -> None:
    ws.memory.remember("alice's note", scope="assistant/alice", tier="ltm")
    ws.memory.remember("bob's note", scope="assistant/bob")
    with pytest.raises(ValidationError):
        ws.retention.erase(by=me, reason="request", **selector)
    assert len(ws.memory.locate(scope="assistant")) == 2
    assert ws.retention.erasures() == []


def test_an_erasure_needs_a_human_and_a_reason(ws, me, agent) -> None:
    rec = ws.memory.remember("alice's note", scope="researcher/alice", tier="ltm")
    for who in (agent, ws.scheduler_principal):
        with pytest.raises(PrincipalError):
            ws.retention.erase(by=who, reason="request", ids=[rec.id])
    for reason in ("", "   ", None):
        with pytest.raises(ValidationError):
            ws.retention.erase(by=me, reason=reason, ids=[rec.id])  # type: ignore[arg-type]
    with pytest.raises(ScopeError):  # memory's own erase keeps an agent in its scope too
        ws.memory.erase(user="alice", principal=agent)
    assert ws.memory.locate(ids=[rec.id])


def test_erasing_a_user_removes_it_from_every_agent_and_tier_and_keeps_others(small, home: Path) -> None:
    ws, me = small, small.principal
    m = ws.memory
    ltm = m.remember(f"{SECRET} long-term", scope="assistant/alice", tier="ltm").id
    stm = m.remember(f"{SECRET} short-term", scope="coach/alice/s1").id
    evicted = [m.remember(f"{SECRET} evicted {i}", scope="planner/alice", importance=0.9).id for i in range(3)]
    archived = m.remember(f"{SECRET} archived", scope="assistant/alice", tier="ltm")
    m.ltm.move_to_archive([m.get(archived.id, scope="assistant/alice")], "test", m.clock.now())
    kept = [m.remember("bob's harbour note", scope="assistant/bob", tier="ltm").id,
            m.remember("bob's short note", scope="coach/bob").id]

    dry = ws.retention.erase(by=me, reason="GDPR art. 17 #12", user="alice", dry_run=True)
    assert dry.count >= 4 and dry.erasure_id is None and len(m.locate(user="alice")) == dry.count

    report = ws.retention.erase(by=me, reason="GDPR art. 17 #12", user="alice")
    assert set(report.ids) >= {ltm, stm, archived.id, *evicted}
    assert m.locate(user="alice") == []
    assert {f["id"] for f in m.locate(user="bob")} == set(kept)
    m.consolidate(principal=me)  # nothing evicted comes back through promotion
    assert m.locate(user="alice") == []
    assert all(SECRET not in h.text for h in m.recall(SECRET, scope="planner", k=10))
    assert all(SECRET not in h.text for h in m.recall(SECRET, scope="assistant", k=10))

    [row] = ws.retention.erasures(op="erase")
    assert (row["status"], row["reason"], row["count"], row["by"]) == ("done", "GDPR art. 17 #12", len(report.ids),
                                                                       me.key)
    assert row["selector"] == {"by": "user", "user_sha256": report_user_hash("alice")}
    assert row["ids_sha256"] == report.ids_sha256
    done = [e for e in ws.audit.entries(kind="retention.erase") if e.data["phase"] == "done"]
    assert done[-1].data["erased_ids"] == report.ids and done[-1].data["reason"] == "GDPR art. 17 #12"
    assert SECRET not in _audit_text(ws) and "alice" not in _audit_text(ws)


def report_user_hash(user: str) -> str:
    import hashlib

    return hashlib.sha256(user.encode()).hexdigest()


def test_erasing_ids_removes_exactly_those_and_marks_the_backups_that_may_hold_them(ws, me) -> None:
    before = ws.backup(by=me, note="taken before the memories existed")
    a = ws.memory.remember(f"{SECRET} one", scope="assistant/alice", tier="ltm").id
    b = ws.memory.remember("a neighbour in the same fragment", scope="assistant/alice", tier="ltm").id
    holding = ws.backup(by=me)
    report = ws.retention.erase(by=me, reason="request 7", ids=[a, "000000000000000000000000"])
    assert report.ids == [a]  # an id that names nothing erases nothing (the ledger lists the request)
    assert ws.memory.locate(ids=[a]) == [] and ws.memory.locate(ids=[b])
    assert report.backups_marked == [holding.id]
    marks = {m["backup_id"] for m in ws.retention.marked_backups()}
    assert marks == {holding.id} and before.id not in marks
    ws.restore(before.id, by=me)  # it cannot hold what did not exist yet: restored as it is
    assert ws.memory.locate(ids=[a, b]) == []


def test_an_erasure_empties_this_process_embedding_cache(ws, me) -> None:
    """The cache is keyed by a hash of the text, so the erased texts' vectors cannot be picked out: an
    erasure drops the whole cache; an erasure that erased nothing leaves it."""
    a = ws.memory.remember(f"{SECRET} cached", scope="assistant/alice", tier="ltm").id
    ws.embedder.embed([f"{SECRET} cached"])  # embedded a second time: now cached
    for _ in range(2):
        ws.memory.recall("what is cached", scope="assistant/alice")
    assert len(ws.embedder._cache) >= 2
    ws.retention.erase(by=me, reason="request 8", ids=["000000000000000000000000"])
    assert len(ws.embedder._cache) >= 2
    ws.retention.erase(by=me, reason="request 9", ids=[a])
    assert len(ws.embedder._cache) == 0
    assert ws.embedder._seen._added == 0 and not any(ws.embedder._seen._bits)  # nor which texts were seen


def test_an_erased_row_leaves_the_data_file_it_shared_with_rows_that_stay(ws, me, home: Path) -> None:
    # One data file of 41 rows, one of them erased: a LanceDB delete only marks it, and compaction
    # leaves a lone file with a few deleted rows as it is; the erasure rewrites the file's other rows.
    notes = [f"ordinary note {i} about the tides" for i in range(40)]
    ids = ws.memory.ingest([*notes[:20], {"text": SECRET, "scope": "assistant/alice"}, *notes[20:]],
                           scope="assistant/bob")
    ws.retention.erase(by=me, reason="request 9", ids=[ids[20]])
    lance = home / "lance"
    assert [p for p in lance.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []
    assert len(ws.memory.locate(user="bob")) == 40
    assert [h.text for h in ws.memory.recall("ordinary note 7 tides", scope="assistant/bob", k=1)] == \
        ["ordinary note 7 about the tides"]


def test_the_ledger_and_policies_outlive_a_restore_on_every_database(home: Path, sql_url: str) -> None:
    from emergent.errors import BackupError

    with Workstation.open(home, embedder="hashing", database_url=sql_url) as ws:
        me = ws.principal
        rec = ws.memory.remember(SECRET, scope="assistant/alice", tier="ltm")
        ws.memory.remember("bob's note", scope="assistant/bob", tier="ltm")
        old = ws.backup(by=me)
        ws.retention.set_policy("episodic", "assistant", 30, by=me)
        report = ws.retention.erase(by=me, reason="request 11", user="alice")
        assert report.ids == [rec.id] and report.backups_marked == [old.id]
        clean = ws.backup(by=me)  # taken after the erasure: restores as it is
        with pytest.raises(BackupError):
            ws.restore(old.id, by=me)
        done = ws.restore(old.id, by=me, repurge=True)
        assert done.repurged["memories"] == 1
        assert ws.memory.locate(user="alice") == [] and len(ws.memory.locate(user="bob")) == 1
        assert [e["id"] for e in ws.retention.erasures()] == [report.erasure_id]
        assert [p.max_age_days for p in ws.retention.policies()] == [30.0]  # not the backup's (none)
        ws.restore(clean.id, by=me)
        assert ws.memory.locate(user="alice") == []


def test_an_erasure_also_removes_the_bytes_of_an_earlier_forget(ws, me, home: Path) -> None:
    # forget only marks rows deleted; a later erasure request for the same person finds nothing live,
    # yet the text is still in a data file: the erasure finishes every earlier delete
    ids = ws.memory.ingest([*(f"tide table {i}" for i in range(30)), {"text": SECRET, "scope": "assistant/alice"}],
                           scope="assistant/bob")
    ws.memory.forget(ids[-1], principal=me, scope="assistant/alice")
    lance = home / "lance"
    assert [p for p in lance.rglob("*.lance") if p.is_file() and SECRET.encode() in p.read_bytes()]
    report = ws.retention.erase(by=me, reason="request 12", user="alice")
    assert report.count == 0  # nothing live was left to find
    assert [p for p in lance.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []
    assert len(ws.memory.locate(user="bob")) == 30
