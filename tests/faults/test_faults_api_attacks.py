"""Fault attacks on the REST API and the memory write path, with real ``emergent serve`` processes.

* A 201 from ``POST /v1/memory`` (short- and long-term) survives a SIGKILL of the server the moment
  after, and the audit chain still verifies.
* A full disk under a running server: writes get a problem+json 5xx (never a 201, never a bare
  traceback), reads keep answering (a recall of short-term memory used to fail with a 503 because
  reinforcing what it found is a write), and after space is back everything reported stored is there
  and the chain verifies.
* The operation log (telemetry in SQL) could not be written: ``ingest`` used to raise a
  ``DiskFullError`` saying "the transaction that failed was rolled back" *after* every item was
  stored, with no ``committed_ids``, so a retry stored every item twice.
* The audit anchor's directory is full while the server runs: every mutating endpoint fails and none
  of the actions takes effect.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _servers import Serve

from emergent import Workstation


class Server(Serve):
    """One ``emergent serve`` process (tests/_servers.Serve), its log kept off the disk a test fills."""

    def __init__(self, home: Path, audit_dir: Path, log_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
        env.update(EMERGENT_HOME=str(home), EMERGENT_AUDIT_DIR=str(audit_dir), EMERGENT_EMBEDDER="hashing",
                   HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        super().__init__(home, env, name="faults", log_dir=log_dir)
        try:
            self.wait(60)
        except BaseException:
            self.kill()
            raise

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, str, Any]:
        """(status, content type, JSON body) of one request."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, ctype, raw = r.status, r.headers.get("content-type", ""), r.read()
        except urllib.error.HTTPError as e:
            status, ctype, raw = e.code, e.headers.get("content-type", ""), e.read()
        try:
            return status, ctype, json.loads(raw)
        except ValueError:
            return status, ctype, raw.decode(errors="replace")

    def stop(self) -> None:
        self.close()


def _tokens(home: Path) -> dict[str, Any]:
    """An operator and an admin token of the OS user, made before the server starts."""
    home.mkdir(parents=True, exist_ok=True)
    ws = Workstation.open(home, embedder="hashing")
    me = ws.principal
    out = {"me": me.key, "operator": ws.tokens.create(me, "operator", by=me, ttl_s=3600)[1],
           "admin": ws.tokens.create(me, "admin", by=me, ttl_s=3600)[1]}
    ws.close()
    return out


def _is_problem(status: int, ctype: str, body: Any) -> bool:
    return status >= 500 and ctype.startswith("application/problem+json") and isinstance(body, dict) \
        and body.get("status") == status and bool(body.get("detail")) and bool(body.get("hint"))


def _verify(server: Server, admin: str) -> dict[str, Any]:
    status, _, body = server.call("GET", "/v1/audit/verify", token=admin)
    assert status == 200, body
    return body


def _assert_stored(server: Server, token: str, stored: dict[str, str]) -> None:
    """Every memory a 201 reported (id -> text) reads back whole."""
    for mid, text in stored.items():
        status, _, body = server.call("GET", f"/v1/memory/{mid}", token=token)
        assert status == 200 and body["text"] == text, (mid, body)


def test_attack_kill_9_after_201_keeps_every_memory_and_the_chain(tmp_path: Path) -> None:
    home, audit = tmp_path / "home", Path(os.environ["EMERGENT_AUDIT_DIR"])
    tok = _tokens(home)
    server = Server(home, audit, tmp_path)
    stored: dict[str, str] = {}
    try:
        for i in range(12):
            text = f"kill test note {i}: nitrate at the northern lake"
            status, _, body = server.call("POST", "/v1/memory", {"text": text, "tier": ("stm", "ltm")[i % 2]},
                                          tok["operator"])
            assert status == 201, body
            stored[body["id"]] = text
    finally:
        server.kill()  # the moment after the last 201
    server = Server(home, audit, tmp_path)
    try:
        _assert_stored(server, tok["operator"], stored)
        status, _, body = server.call("GET", "/v1/memory/recall?query=nitrate%20northern%20lake&k=50",
                                      token=tok["operator"])
        assert status == 200 and {h["id"] for h in body["items"]} == set(stored)
        report = _verify(server, tok["admin"])
        assert report["ok"] and report["anchored"], report
    finally:
        server.stop()


def test_attack_full_disk_under_the_server_fails_writes_clearly_and_reads_keep_answering(small_disk,
                                                                                        tmp_path: Path) -> None:
    home, audit = small_disk.path / "ws", tmp_path / "audit-anchor"
    tok = _tokens(home)
    server = Server(home, audit, tmp_path)
    stored: dict[str, str] = {}
    try:
        for tier in ("stm", "ltm"):
            text = f"a {tier} memory of the phosphate survey"
            status, _, body = server.call("POST", "/v1/memory", {"text": text, "tier": tier}, tok["operator"])
            assert status == 201, body
            stored[body["id"]] = text
        small_disk.fill()
        for tier in ("stm", "ltm"):
            status, ctype, body = server.call("POST", "/v1/memory", {"text": "written on a full disk " * 50,
                                                                     "tier": tier}, tok["operator"])
            assert _is_problem(status, ctype, body), (status, body)
            assert "full" in body["detail"], body
        # reads keep answering: recalling a short-term memory reinforces it (a write), which may fail
        status, ctype, body = server.call("GET", "/v1/memory/recall?query=phosphate%20survey&k=10",
                                          token=tok["operator"])
        assert status == 200, body
        assert {h["id"] for h in body["items"]} == set(stored)
        for mid in stored:
            assert server.call("GET", f"/v1/memory/{mid}", token=tok["operator"])[0] == 200
        small_disk.drain()
        status, _, body = server.call("POST", "/v1/memory", {"text": "once there is room again", "tier": "ltm"},
                                      tok["operator"])
        assert status == 201, body
        stored[body["id"]] = "once there is room again"
    finally:
        server.kill()
    server = Server(home, audit, tmp_path)
    try:
        _assert_stored(server, tok["operator"], stored)
        status, _, body = server.call("GET", "/v1/memory/recall?query=written%20on%20a%20full%20disk&k=50",
                                      token=tok["operator"])
        assert status == 200 and all(h["id"] in stored for h in body["items"]), body  # nothing half-written
        report = _verify(server, tok["admin"])
        assert report["ok"], report
    finally:
        server.stop()


def test_attack_ingest_when_the_operation_log_cannot_be_written_reports_what_it_stored(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL database on a disk that fills up, the memory stores on another: the operation log is
    written every 500 operations, and that write must not turn a stored ingest into a failure."""
    monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
    home = tmp_path / "ws"
    home.mkdir()
    ws = Workstation.open(home, embedder="hashing")
    try:
        _ = ws.sql
        for i in range(499):
            ws.memory.remember(f"short note {i}")
        small_disk.fill()
        texts = [f"ingested while the database disk is full {i}" for i in range(10)]
        ids = ws.memory.ingest(texts)  # the 500th operation: its log write fails
        assert [ws.memory.get(i).text for i in ids] == texts
        rec = ws.memory.remember("and one more")
        assert ws.memory.get(rec.id).text == "and one more"
        assert ws.memory.ltm.count() == len(texts)
        small_disk.drain()
    finally:
        ws.close()
    ws = Workstation.open(home, embedder="hashing")
    try:
        assert ws.memory.ltm.count() == len(texts)  # stored once
        import sqlalchemy as sa

        from emergent.memory.tables import memory_ops
        with ws.sql.connect() as conn:  # the samples were kept and written once there was room
            assert conn.execute(sa.select(sa.func.count()).select_from(memory_ops)).scalar_one() >= 500
    finally:
        ws.close()


def _fill(directory: Path) -> None:
    with (directory / "filler.bin").open("ab") as fh:
        chunk = b"\0" * (1 << 16)
        while True:
            try:
                fh.write(chunk)
                fh.flush()
            except OSError:
                return


MUTATIONS = [
    ("POST", "/v1/memory", {"text": "short-term memory while the anchor is stuck"}, "operator"),
    ("POST", "/v1/memory", {"text": "long-term memory while the anchor is stuck", "tier": "ltm"}, "operator"),
    ("DELETE", "/v1/memory/{mid}", None, "operator"),
    ("POST", "/v1/tools/memory.remember/call", {"args": {"text": "a tool call while the anchor is stuck"}},
     "operator"),
    ("POST", "/v1/tokens", {"principal": "{me}", "role": "viewer"}, "admin"),
    ("POST", "/v1/policy/pause", {"reason": "anchor"}, "admin"),
    ("POST", "/v1/tools/memory.recall/disable", None, "admin"),
]


def _mutate_with_a_full_anchor_dir(small_disk, tmp_path: Path) -> tuple[Path, dict[str, Any], str, int]:
    """A server whose audit anchor lives on ``small_disk``; the disk fills up, every mutation is tried.
    Returns (home, tokens, the id of a memory kept, the last audit seq before the fault)."""
    home, audit = tmp_path / "home", small_disk.path / "audit"
    tok = _tokens(home)
    server = Server(home, audit, tmp_path)
    try:
        status, _, body = server.call("POST", "/v1/memory", {"text": "kept through the fault", "tier": "ltm"},
                                      tok["operator"])
        assert status == 201, body
        mid = body["id"]
        before = _verify(server, tok["admin"])["last_seq"]
        _fill(small_disk.path)
        for method, path, payload, role in MUTATIONS:
            if isinstance(payload, dict) and payload.get("principal") == "{me}":
                payload = {**payload, "principal": tok["me"]}
            status, ctype, answer = server.call(method, path.format(mid=mid), payload, tok[role])
            assert _is_problem(status, ctype, answer), (method, path, status, answer)
            assert "anchor" in answer["detail"], answer
    finally:
        server.kill()
    small_disk.drain()
    return home, tok, mid, before


def test_attack_a_full_audit_anchor_dir_fails_every_mutation_and_none_takes_effect(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, tok, mid, _ = _mutate_with_a_full_anchor_dir(small_disk, tmp_path)
    monkeypatch.setenv("EMERGENT_AUDIT_DIR", str(small_disk.path / "audit"))
    ws = Workstation.open(home, embedder="hashing")
    try:
        assert ws.memory.get(mid).text == "kept through the fault"
        assert [r["text"] for r in ws.memory.ltm.scan(columns=["text"]).to_pylist()] == ["kept through the fault"]
        assert not any(r.text.endswith("while the anchor is stuck") for a in ws.memory.stm.agents()
                       for r in ws.memory.stm.scan(a))
        assert len(ws.tokens.list()) == 2
        assert not ws.autonomy.paused
        assert all(v.enabled for v in ws.tools.versions("memory.recall"))
        assert ws.audit.verify().ok
    finally:
        ws.close()


def test_attack_a_full_audit_anchor_dir_leaves_no_entry_reading_as_done(small_disk, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    home, _, _, before = _mutate_with_a_full_anchor_dir(small_disk, tmp_path)
    monkeypatch.setenv("EMERGENT_AUDIT_DIR", str(small_disk.path / "audit"))
    ws = Workstation.open(home, embedder="hashing")
    try:
        during = ws.audit.entries(start=before + 1)
        assert during, "the failed actions left no trace at all"
        single = {"api.token_created", "autonomy.paused", "tool.disabled"}  # one entry: "this was done"
        claims = [(e.seq, e.kind) for e in during if e.kind in single and not e.data.get("audit_write_failed")]
        assert claims == [], f"entries recording actions that failed and never took effect: {claims}"
    finally:
        ws.close()


def test_attack_close_on_a_full_database_disk_still_closes_the_memory_store(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing writes what was buffered (operation samples) to SQL; on a full database disk that
    fails, and the failure is raised, but the long-term store is still closed (its recall index
    saved for the next process) and nothing stored is lost. The next open used to call the database
    truncated: the interrupted checkpoint had written the header's page count, the pages were in the WAL."""
    from emergent.errors import EmergentError

    monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
    home = tmp_path / "ws"
    home.mkdir()
    ws = Workstation.open(home, embedder="hashing")
    texts = [f"long-term note {i} about the harbour" for i in range(20)]
    ids = ws.memory.ingest(texts)
    assert ws.memory.recall("harbour note", k=5)  # buffers operation samples, written at close
    snapshots = Path(ws.memory.ltm.hot.snapshot_dir)
    small_disk.fill()
    with pytest.raises(EmergentError):
        ws.close()
    assert list(snapshots.glob("*.npz")), "the long-term store was not closed"
    small_disk.drain()  # the close's checkpoint was cut short: the header counts pages still in the WAL
    ws = Workstation.open(home, embedder="hashing")
    try:
        assert [ws.memory.get(i).text for i in ids] == texts
        assert ws.audit.verify().ok
    finally:
        ws.close()
