"""Fault 1: a call must never fail after it committed, and a retry must never store twice.

Two real processes ingest into one workspace at once. LanceDB's index upkeep in one process
conflicts with the other's (``Retryable commit conflict ... preempted by concurrent transaction
Rewrite``); that used to surface as a raw RuntimeError from calls whose rows were already stored,
and "Please retry" stored them twice. Now every call either returns the ids it stored, or raises
an emergent error whose ``committed_ids`` are exactly the rows of that call in the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from emergent import Workstation

CALLS = 250

WRITER = textwrap.dedent("""
    import json, sys
    from dataclasses import replace
    from emergent import Workstation
    from emergent.errors import EmergentError
    home, tag, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ws = Workstation.open(home, embedder="hashing")
    # Index upkeep (optimize: compaction + index update) after nearly every write, in both
    # processes: their commits collide the way rarer upkeep collides over a long run.
    ws.memory.ltm.policy = replace(ws.memory.ltm.policy, optimize_after=40, optimize_growth=0.0)
    for i in range(calls):
        texts = [f"{tag} call {i} item {j} about the lake" for j in range(1 if i % 5 == 0 else 10)]
        out = {"call": i, "texts": texts}
        try:
            if len(texts) == 1:
                out["ids"] = [ws.memory.remember(texts[0], tier="ltm").id]
            else:
                out["ids"] = ws.memory.ingest(texts)
        except Exception as exc:
            out.update(error=f"{type(exc).__name__}: {exc}"[:300], emergent=isinstance(exc, EmergentError),
                       committed_ids=list(getattr(exc, "committed_ids", None) or []))
        print(json.dumps(out), flush=True)
    up = ws.memory.ltm.upkeep
    print(json.dumps({"upkeep_failures": up.failures, "last_error": up.last_error}), flush=True)
    ws.close()
""")


def test_two_processes_ingesting_store_every_reported_id_exactly_once_and_never_fail_after_commit(
        home: Path) -> None:
    Workstation.open(home, embedder="hashing").close()  # created once, so the writers race on data only
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env["EMERGENT_AUDIT_DIR"] = os.environ["EMERGENT_AUDIT_DIR"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), tag, str(CALLS)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in ("A", "B")]
    results, upkeep = [], []
    for p in procs:
        out, err = p.communicate(timeout=280)
        assert p.returncode == 0, err[-3000:]
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        results += [r for r in lines if "call" in r]
        upkeep += [r for r in lines if "upkeep_failures" in r]
    assert len(results) == 2 * CALLS

    ws = Workstation.open(home, embedder="hashing")
    rows = ws.memory.ltm.scan(columns=["id", "text"]).to_pylist()
    ws.close()
    ids = Counter(r["id"] for r in rows)
    texts = Counter(r["text"] for r in rows)
    assert [i for i, n in ids.items() if n > 1] == []  # nothing stored twice
    assert [t for t, n in texts.items() if n > 1] == []
    id_of = {r["text"]: r["id"] for r in rows}
    for r in results:
        stored = [id_of[t] for t in r["texts"] if t in id_of]
        if "ids" in r:  # reported stored: every one present, exactly these
            assert sorted(r["ids"]) == sorted(stored), r
        else:  # raised: an emergent error that says exactly what is stored (nothing raised after committing)
            assert r["emergent"], r["error"]
            assert sorted(r["committed_ids"]) == sorted(stored), r
    # The fault was really exercised: the writers' index upkeep collided and was retried, not raised.
    assert sum(u["upkeep_failures"] for u in upkeep) >= 1, upkeep


def test_index_upkeep_that_conflicts_never_fails_the_write_and_is_retried(ws: Workstation,
                                                                          monkeypatch) -> None:
    import time

    ltm = ws.memory.ltm
    real = ltm.store.maintain
    calls = {"n": 0}

    def conflicting(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] <= 2:  # the inline run and the first background retry collide with another writer
            raise RuntimeError("lance error: Retryable commit conflict for version 7: This CreateIndex transaction "
                               "was preempted by concurrent transaction Rewrite at version 7. Please retry.")
        return real(*args, **kwargs)

    monkeypatch.setattr(ltm.store, "maintain", conflicting)
    ids = ws.memory.ingest(["the write commits", "and reports what it stored"])
    assert ltm.present_ids(ids) == set(ids)
    assert ltm.upkeep.failures >= 1
    deadline = time.monotonic() + 20
    while ltm.upkeep.last_error is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ltm.upkeep.last_error is None and calls["n"] == 3 and ltm.upkeep.failures == 2  # retried until done
    assert any("text" in i.columns for i in ltm.table.list_indices())  # the full-text index exists


def test_a_long_lived_process_sees_what_another_process_stored(home: Path) -> None:
    import time

    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(["stored by the notebook"])
    assert ws.memory.ltm.count() == 1  # the table handle is open from here on
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env["EMERGENT_AUDIT_DIR"] = os.environ["EMERGENT_AUDIT_DIR"]
    job = f"from emergent import Workstation\nws = Workstation.open({str(home)!r}, embedder='hashing')\n" \
          "print(ws.memory.ingest(['stored by the scheduled job about otters'])[0])\nws.close()"
    other = subprocess.run([sys.executable, "-c", job], env=env, capture_output=True, text=True, check=True)
    deadline = time.monotonic() + 3  # LanceDB handles re-read the latest version at most once a second
    while ws.memory.ltm.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [h.id for h in ws.memory.recall("otters", k=1)] == [other.stdout.strip()]
    ws.close()
