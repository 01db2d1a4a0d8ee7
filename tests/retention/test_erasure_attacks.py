"""Attacks on an erasure: every way to get an erased memory's text back must fail.

A memory is erased; then the attacker tries a rewind of long-term memory (to a version, to a
moment), a LanceDB time travel to an older table version, a restore of a backup taken before the
erasure, a recall in a second process whose hot index loaded the memory before the erasure, and
finally reads every byte of the workspace (backups aside: they are marked and refused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emergent.errors import BackupError, NotFoundError

SECRET = "QX771-zebra-passport-of-alice"

SECOND = r"""
import json, sys
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
def texts():
    hits = ws.memory.recall(sys.argv[2], scope="assistant", k=20)
    return [h.text for h in hits]
print(json.dumps(texts()), flush=True)
for _ in sys.stdin:
    print(json.dumps(texts()), flush=True)
ws.close()
"""


def _versions_holding(home: Path, text: str) -> list[tuple[str, int]]:
    """(table, version) of every LanceDB version, of both memory tables, with a row holding ``text``."""
    import lancedb

    db = lancedb.connect(str(home / "lance"))
    found = []
    for name in ("memories", "memories_archive"):
        table = db.open_table(name)
        for v in table.list_versions():
            table.checkout(v["version"])
            if table.search().where(f"text LIKE '%{text}%'").limit(1).to_arrow().num_rows:
                found.append((name, v["version"]))
    return found


def _holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for dirpath, dirnames, files in os.walk(root):
        if Path(dirpath) == root and "backups" in dirnames:
            dirnames.remove("backups")
        for name in files:
            path = Path(dirpath) / name
            try:
                if needle in path.read_bytes():
                    found.append(str(path.relative_to(root)))
            except OSError:
                continue
    return found


def test_attack_an_erased_memory_cannot_be_brought_back(ws, me, home: Path) -> None:
    m = ws.memory
    notes = [f"ordinary note {i} about the weather in the harbour" for i in range(40)]
    # one erased memory shares its data file with 40 others (the rest of that file must stay)
    batch = m.ingest([*notes[:20], {"text": f"{SECRET} in a batch", "scope": "assistant/alice"}, *notes[20:]],
                     scope="assistant/bob")
    secret = m.remember(f"{SECRET} is alice's passport number", scope="assistant/alice", tier="ltm",
                        importance=0.9)
    m.ingest([f"another note {i} about the tides" for i in range(10)], scope="assistant/bob")
    short = m.remember(f"{SECRET} again, in short-term memory", scope="assistant/alice")
    assert SECRET in m.recall(SECRET, scope="assistant/alice", k=1)[0].text
    old_versions = [v["version"] for v in m.ltm.versions()]
    backup = ws.backup(by=me, note="before the erasure")
    m.ltm.hot.save()  # a snapshot on disk holding the text, as a closed process leaves one

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    second, third = (subprocess.Popen([sys.executable, "-c", SECOND, str(home), SECRET], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env) for _ in range(2))
    try:
        for proc in (second, third):
            assert proc.stdout is not None and proc.stdin is not None
            seen_before = json.loads(proc.stdout.readline())
            assert any(SECRET in t for t in seen_before)  # its own hot index holds the memory now
        before_erasure = time.time()
        time.sleep(0.05)

        report = ws.retention.erase(by=me, reason="GDPR art. 17", user="alice")
        assert {secret.id, short.id, batch[20]} <= set(report.ids)
        assert report.detail["rewritten_rows"] >= 40

        # a recall here, and in the second process with the hot index it loaded before
        assert all(SECRET not in h.text for h in m.recall(SECRET, scope="assistant", k=20))
        second.stdin.write("again\n")
        second.stdin.flush()
        assert all(SECRET not in t for t in json.loads(second.stdout.readline()))  # type: ignore[union-attr]
    finally:  # the third exits without a search after the erasure: it never saves what it held
        for proc in (second, third):
            if proc.stdin:
                proc.stdin.close()
        assert second.wait(timeout=60) == 0 and third.wait(timeout=60) == 0
    assert _holding(home, SECRET.encode()) == []  # what they saved on exit (hot index snapshots) included

    # a rewind of long-term memory, to any version it had or to a moment before the erasure
    for version in old_versions:
        with pytest.raises(NotFoundError):
            m.rewind(version=version, principal=me)
    with pytest.raises(NotFoundError):
        m.rewind(when=before_erasure, principal=me)

    # time travel in LanceDB itself, to every version the tables still know, or one they knew
    assert _versions_holding(home, SECRET) == []
    import lancedb

    table = lancedb.connect(str(home / "lance")).open_table("memories")
    for version in set(old_versions) - {v["version"] for v in table.list_versions()}:
        with pytest.raises(Exception):  # noqa: B017 - LanceDB's own error: the version is gone
            table.checkout(version)

    # a restore of the backup taken before: refused as it is, re-purged when asked
    with pytest.raises(BackupError) as refused:
        ws.restore(backup.id, by=me)
    assert refused.value.hint and "repurge" in refused.value.hint
    assert [e.data["backup"] for e in ws.audit.entries(kind="workspace.restore_refused")] == [backup.id]
    done = ws.restore(backup.id, by=me, repurge=True)
    assert done.repurged["memories"] == 2 and done.repurged["stm"] == 1 and done.repurged["left_after"] == 0
    assert ws.memory.locate(user="alice") == []
    assert len(ws.memory.locate(user="bob")) == 50  # the rest of the backup is back
    assert all(SECRET not in h.text for h in ws.memory.recall(SECRET, scope="assistant", k=20))
    assert _versions_holding(home, SECRET) == []  # the backup's own table history was re-purged too
    assert [e["id"] for e in ws.retention.erasures()] == [report.erasure_id]  # the ledger survived the restore

    # and no byte of the workspace holds the text any more (backups are marked, and refused)
    ws.memory.ltm.hot.save()
    assert _holding(home, SECRET.encode()) == []
