"""The Memory service on real stores: LanceDB dir, SQLite, LocalSTM or a real Redis."""

import math

import pytest

from emergent import FakeClock, Workstation
from emergent.errors import NotFoundError, PrincipalError, ScopeError, ValidationError
from emergent.memory.types import Scope, Tier


@pytest.fixture(params=["local", "redis"])
def mem(request, home, redis_url):
    clock = FakeClock()
    opts = {"redis_url": redis_url} if request.param == "redis" else {}
    ws = Workstation.open(home, embedder="hashing", clock=clock, **opts)
    ws.memory.clock_ = clock
    ws.memory.me = ws.principal  # who acts in these tests: the OS user
    yield ws.memory
    ws.close()


def test_remembered_text_is_recalled_first(mem):
    mem.ingest(["The lab meeting moved to Thursday", "Pip install needs a pinned torch", "Coffee machine is broken"])
    rec = mem.remember("Alice's favourite tea is jasmine", importance=0.8)
    hits = mem.recall("what tea does alice like", k=3)
    assert hits[0].id == rec.id
    assert hits[0].record.tier is Tier.STM
    assert "vector" in hits[0].sources


def test_full_text_finds_a_rare_word_in_long_term_memory(mem):
    mem.ingest([f"routine note number {i} about nothing in particular" for i in range(50)] + ["the zyxwv protocol"])
    hits = mem.recall("zyxwv", k=5)
    assert hits[0].text == "the zyxwv protocol"
    assert "text" in hits[0].sources


@pytest.mark.parametrize("bad, field", [
    ({"text": ""}, "text"), ({"text": "   \n\t"}, "text"), ({"text": b"\xff\xfe bad"}, "text"),
    ({"text": 42}, "text"), ({"importance": float("nan")}, "importance"), ({"importance": -0.1}, "importance"),
    ({"importance": "high"}, "importance"), ({"kind": "dream"}, "kind"), ({"scope": "a/b/c/d"}, None),
    ({"scope": "bad scope!"}, None), ({"meta": {"x": object()}}, "meta"), ({"meta": [1]}, "meta"),
])
def test_bad_input_raises_a_clear_error_and_writes_nothing(mem, bad, field):
    args = {"text": "fine text", **bad}
    with pytest.raises(ValidationError) as exc:
        mem.remember(args.pop("text"), **args)
    if field:
        assert exc.value.field == field
    assert mem.stm.scan("default") == [] and mem.ltm.count() == 0


def test_fifty_megabyte_text_is_refused_before_embedding(mem):
    with pytest.raises(ValidationError, match="above the limit"):
        mem.remember("x" * (50 * 1024 * 1024))
    assert mem.ltm.count() == 0


def test_large_text_is_compressed_and_read_back_whole(mem):
    big = "lorem ipsum dolor sit amet " * 5000  # ~135 kB
    rec = mem.remember(big, tier="ltm")
    row = mem.ltm.scan(f"id = '{rec.id}'", columns=["text", "payload"]).to_pylist()[0]
    assert row["payload"] is not None and len(row["payload"]) < len(big) / 10
    assert mem.get(rec.id).text == big


def test_reads_and_deletes_never_cross_scopes(mem):
    alice = Scope("bot", "alice")
    bob = Scope("bot", "bob")
    a = mem.remember("alice secret plan", scope=alice)
    b = mem.remember("bob secret plan", scope=bob, tier="ltm")
    assert [h.id for h in mem.recall("secret plan", scope=alice)] == [a.id]
    with pytest.raises(NotFoundError):
        mem.get(b.id, scope=alice)
    with pytest.raises(NotFoundError):
        mem.forget(b.id, scope=alice, principal=mem.me)
    assert mem.forget(scope=alice, principal=mem.me) == 1
    assert [h.id for h in mem.recall("secret plan", scope=bob)] == [b.id]
    assert [h.id for h in mem.recall("secret plan", scope=Scope("bot"))] == [b.id]


def test_forget_without_target_or_filter_is_refused(mem):
    mem.remember("keep me")
    with pytest.raises(ValidationError, match="whole agent"):
        mem.forget(principal=mem.me)


def test_forget_is_audited_with_who_the_scope_and_the_ids(mem):
    a = mem.remember("delete me", scope="bot/u1")
    b = mem.remember("and me", scope="bot/u1", tier="ltm")
    assert mem.forget([a.id, b.id], scope="bot/u1", principal=mem.me) == 2
    intent, done = mem.audit.entries(kind="memory.forget")
    assert intent.actor == done.actor == mem.me.key
    assert intent.data["phase"] == "intent" and intent.data["scope"] == "bot/u1" and intent.data["ids"] == [a.id, b.id]
    assert done.data["phase"] == "done" and done.data["count"] == 2 and set(done.data["forgotten"]) == {a.id, b.id}


def test_forget_without_a_principal_or_by_an_agent_outside_its_scope_is_refused(mem):
    rec = mem.remember("not yours", scope="bot/u1")
    with pytest.raises(PrincipalError, match="not a principal"):
        mem.forget(rec.id, scope="bot/u1", principal=None)
    scout = mem.principals.agent("scout", created_by=mem.me)
    with pytest.raises(ScopeError, match="only in its own memory scope"):
        mem.forget(rec.id, scope="bot/u1", principal=scout)
    own = mem.remember("mine", scope="scout")
    assert mem.forget(own.id, scope="scout", principal=scout) == 1
    assert mem.get(rec.id, scope="bot/u1").id == rec.id


def test_recall_filters_by_kind_and_time(mem):
    mem.remember("old fact about rivers", kind="semantic", at=1_000_000_000, tier="ltm")
    new = mem.remember("new episode about rivers", kind="episodic", at=1_700_000_000, tier="ltm")
    assert [h.id for h in mem.recall("rivers", kinds=["episodic"])] == [new.id]
    assert [h.id for h in mem.recall("rivers", since=1_500_000_000)] == [new.id]


def test_reinforce_grows_stability_and_access_count(mem):
    rec = mem.remember("a fact worth keeping", tier="ltm")
    mem.clock_.advance(days=3)
    again = mem.reinforce(rec.id)
    assert again.access_count == 1 and again.stability > rec.stability


def test_recall_touches_hits_and_flush_persists_the_access(mem):
    rec = mem.remember("quantum annealing notes", tier="ltm")
    mem.recall("quantum annealing")
    assert mem.flush() == 1
    assert mem.get(rec.id).access_count == 1


def test_consolidation_promotes_important_merges_duplicates_and_keeps_provenance(mem):
    a = mem.remember("The cluster password rotates every Monday", importance=0.9)
    b = mem.remember("The cluster password rotates every Monday.", importance=0.7)
    low = mem.remember("passing thought about lunch", importance=0.1)
    report = mem.consolidate(principal=mem.me)
    assert report.promoted == 1 and report.merged == 1
    kept = mem.get(a.id)
    assert kept.tier is Tier.LTM and b.id in kept.sources
    assert mem.get(low.id).tier is Tier.STM  # not important, not reinforced: stays short-term


def test_consolidation_archives_decayed_memories_but_never_deletes_them(mem):
    gone = mem.remember("trivial episode", importance=0.0, tier="ltm")
    keep = mem.remember("critical procedure", importance=1.0, kind="procedural", tier="ltm")
    mem.clock_.advance(days=400)
    report = mem.consolidate(principal=mem.me)
    assert report.archived == 1
    done = mem.audit.entries(kind="memory.consolidate")[-1]
    assert done.data["phase"] == "done" and done.data["archived"] == 1 and done.actor == mem.me.key
    assert mem.ltm.archive.count_rows(f"id = '{gone.id}'") == 1
    assert mem.get(keep.id).id == keep.id


def test_stm_ttl_follows_the_forgetting_curve(mem):
    rec = mem.remember("short lived", importance=0.0)
    ttl = mem._ttl(rec)
    assert 0 < ttl <= mem.config.stm_ttl_s
    assert math.isclose(ttl, min(mem.config.stm_ttl_s, -math.log(mem.config.archive_floor) * rec.stability * 86400))


def test_operation_log_reaches_sql(mem):
    mem.remember("log me")
    mem.recall("log")
    mem.flush()
    from emergent.memory.tables import memory_ops

    with mem.sql.connect() as conn:
        ops = [r.op for r in conn.execute(memory_ops.select())]
    assert "remember" in ops and "recall" in ops


def test_closing_an_embedded_workstation_keeps_short_term_memory_for_the_next_process(home):
    # The embedded STM is a file in the workspace (shared by its processes): closing loses nothing,
    # and consolidation (not close) decides what is promoted.
    ws = Workstation.open(home, embedder="hashing")
    keep = ws.memory.remember("the freezer alarm code is 4471", importance=0.9)
    ws.memory.remember("idle chatter", importance=0.1)
    ws.close()
    again = Workstation.open(home, embedder="hashing")
    assert again.memory.get(keep.id).tier is Tier.STM
    assert again.memory.consolidate(principal=again.principal).promoted == 1
    assert again.memory.get(keep.id).tier is Tier.LTM
    again.close()


def test_an_important_local_stm_item_whose_ttl_ran_out_is_still_promoted(home):
    clock = FakeClock()
    ws = Workstation.open(home, embedder="hashing", clock=clock)
    keep = ws.memory.remember("calibrate the sonde before each dive", importance=0.95)
    clock.advance(days=30)  # past the 7-day STM cap
    assert ws.memory.consolidate(principal=ws.principal).promoted == 1
    assert ws.memory.get(keep.id).tier is Tier.LTM
    ws.close()


def test_a_backdated_memory_is_recalled_and_survives_consolidation(ws, me):
    """remember(at=<months ago>) records when it happened; it was learned now, so it neither expires
    from short-term memory at once nor is archived as decayed (notebook 05 recalled unrelated notes)."""
    mem = ws.memory
    note = mem.remember("My friend Jolene works at Google.", at="2024-03-01")
    for i in range(5):
        mem.remember(f"unrelated note {i} about the weather")
    hits = mem.recall("What does Jolene do?", k=3)
    assert hits[0].id == note.id
    assert mem.get(note.id).created_at < ws.clock.now() - 86400 * 30
    old = mem.ingest([{"text": "Perch spawn in April.", "at": "2020-04-01"}])
    mem.consolidate(principal=me)
    assert mem.recall("When do perch spawn?", k=1)[0].id == old[0]
