"""Attacks on the audit trail and on governance through a restore, on a real workspace.

The chain is anchored outside the database (a signed head file in EMERGENT_AUDIT_DIR, per test), so
truncating it, emptying it or rewriting it with recomputed hashes is caught; a head the user wrote
down catches truncation even when the anchor directory is gone too. A restore keeps the current
audit chain and governance state, so restoring an old backup re-arms nothing. A failed audit write
stops the action it would have recorded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from emergent.audit import entry_hash
from emergent.autonomy.tables import audit_log
from emergent.cli import main
from emergent.errors import ApprovalPending, AuditWriteError, PermissionDenied, PrincipalError
from emergent.tools.spec import tool


def cli(*argv: str) -> int:
    """The exit code the console script would give."""
    try:
        result = main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return result if isinstance(result, int) else 0


def fill(ws: Any, me: Any, n: int = 6) -> None:
    """A few real, audited actions."""
    ids = ws.memory.ingest([f"note {i} about the harbour" for i in range(n)])
    for i in ids[: n // 2]:
        ws.memory.forget(i, principal=me)


def rows(ws: Any) -> list[dict[str, Any]]:
    ws.audit.flush()
    with ws.sql.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))]


def delete_from(ws: Any, seq: int) -> None:
    with ws.sql.begin() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq >= seq))


# ---------------------------------------------------------------------- tampering with the chain
def test_deleting_the_last_entries_is_detected_by_the_anchored_head(ws, me) -> None:
    fill(ws, me)
    last = rows(ws)[-1]["seq"]
    assert ws.audit.verify().ok
    delete_from(ws, last - 1)  # the chain left behind is internally consistent
    report = ws.audit.verify()
    assert not report.ok and report.anchored
    assert f"ends at entry {last - 2}" in report.problems[0][1] and "deleted from the end" in report.problems[0][1]


def test_deleting_every_entry_is_detected(ws, me) -> None:
    fill(ws, me)
    delete_from(ws, 1)
    report = ws.audit.verify()
    assert not report.ok and report.entries == 0 and "deleted from the end" in report.summary() + str(report.problems)


def test_rewriting_the_chain_from_an_entry_on_with_recomputed_hashes_is_detected(ws, me) -> None:
    fill(ws, me)
    chain = rows(ws)
    forged = next(r for r in chain if r["kind"] == "memory.forget")
    with ws.sql.begin() as conn:  # hide who forgot, then re-chain everything after it
        prev = forged["prev_hash"]
        for r in chain[chain.index(forged):]:
            actor = "system:maintenance" if r is forged else r["actor"]
            h = entry_hash(prev, r["seq"], r["at"], r["kind"], actor, r["data"])
            conn.execute(audit_log.update().where(audit_log.c.seq == r["seq"]).values(actor=actor, prev_hash=prev,
                                                                                       hash=h))
            prev = h
    report = ws.audit.verify()
    assert not report.ok
    assert any("is not the one anchored" in what and "rewritten" in what for _, what in report.problems)
    assert all("edited" not in what for _, what in report.problems)  # hash by hash the forgery is consistent


def test_an_edited_head_file_is_detected(ws, me) -> None:
    fill(ws, me)
    chain = rows(ws)
    head_file = ws.audit.anchor.head_file
    doc = json.loads(head_file.read_text())
    # truncate the chain and move the anchored head back to match, without the signing key
    delete_from(ws, chain[-2]["seq"])
    doc.update(seq=chain[-3]["seq"], hash=chain[-3]["hash"])
    head_file.write_text(json.dumps(doc))
    report = ws.audit.verify()
    assert not report.ok and "does not match its signature (it was edited)" in report.problems[0][1]


def test_a_key_swapped_for_another_valid_key_stops_the_next_write_of_a_writer_that_knew_the_head(ws, me) -> None:
    """The writer keeps the head it wrote (a file nobody touched is not read again): a new key in
    the key file must not sign on from that head as if it had been checked under the new key."""
    fill(ws, me)
    key_file = ws.audit.anchor.key_file
    key_file.write_text("ab" * 32)  # a well-formed key, not the one the head was signed with
    with pytest.raises(AuditWriteError, match="does not match its signature"):
        ws.memory.forget(ws.memory.ingest(["one more note"])[0], principal=me)


def test_an_entry_stored_but_never_anchored_reads_as_failed_and_an_entry_after_it_says_why(ws, me) -> None:
    """The chain is committed before its head is anchored. When the anchor cannot be written the
    append fails (so does the action), but the entry is in the chain and cannot be edited: an entry
    chained after it names it, and every read shows it as ``audit_write_failed``."""
    fill(ws, me)
    before = rows(ws)[-1]["seq"]
    ws.audit.anchor.key_file.write_text("ab" * 32)  # from now on no head can be anchored
    with pytest.raises(AuditWriteError):
        ws.audit.append("test.done", me, {"x": 1}, durable=True)
    got = {e.kind: e for e in ws.audit.entries(start=before + 1)}
    assert got["test.done"].data.get("audit_write_failed") is True
    assert got["audit.write_failed"].data["seq"] == got["test.done"].seq
    assert got["audit.write_failed"].data["kind"] == "test.done"
    assert ws.audit.entries(start=got["test.done"].seq, limit=1)[0].data["audit_write_failed"] is True  # one page
    assert not any(e.data.get("audit_write_failed") for e in ws.audit.entries(start=1, limit=before))
    assert ws.audit.entries(kind="test.done")[0].data["audit_write_failed"] is True


def test_a_head_edited_in_place_with_the_same_size_and_time_is_read_again_by_the_writer(ws, me) -> None:
    """An edit that keeps the head file's inode, size and modification time still changes its
    change time: the writer that kept the head reads the file again and finds the forgery."""
    import os

    fill(ws, me)
    head_file = ws.audit.anchor.head_file
    chain = rows(ws)
    before = head_file.stat()
    doc = json.loads(head_file.read_text())
    forged = json.dumps({**doc, "hash": chain[-2]["hash"]})
    assert len(forged) == len(head_file.read_text())
    with open(head_file, "r+") as fh:  # in place: same inode
        fh.write(forged)
    os.utime(head_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert head_file.stat().st_ino == before.st_ino and head_file.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(AuditWriteError, match="does not match its signature"):
        ws.memory.forget(ws.memory.ingest(["one more note"])[0], principal=me)


def test_a_process_holding_the_anchor_lock_delays_a_write_and_never_interleaves_with_it(ws, me) -> None:
    import fcntl
    import os
    import threading
    import time

    fill(ws, me)
    fd = os.open(str(ws.audit.anchor.head_file) + ".lock", os.O_RDWR)  # another open file: another holder
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (ws.memory.forget(ws.memory.ingest(["held note"])[0], principal=me),
                                              done.set()))
    worker.start()
    time.sleep(0.3)
    assert not done.is_set()  # waits for the holder
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    worker.join(10)
    assert done.is_set() and ws.audit.verify().ok


def test_verify_with_a_head_written_down_fails_on_a_truncated_chain_through_the_cli(ws, me, home, capsys) -> None:
    fill(ws, me)
    ws.close()
    assert cli("audit", "head", "--home", str(home)) == 0
    noted = capsys.readouterr().out.strip()
    assert len(noted) == 64
    with type(ws).open(home, embedder="hashing") as again:
        again.memory.forget(again.memory.ingest(["one more"])[0], principal=again.principal)
        noted_seq = next(r["seq"] for r in rows(again) if r["hash"] == noted)
        delete_from(again, noted_seq)  # the entry the user saw, and everything after it
    for f in ws.audit.anchor.dir.iterdir():  # and the attacker removed the anchor as well
        f.unlink()
    assert cli("audit", "verify", "--head", noted, "--home", str(home)) == 1
    out = capsys.readouterr().out
    assert f"the head you gave ({noted[:16]}) is not in the chain" in out and "broken" in out


def test_verify_with_the_current_head_passes_through_the_cli(ws, me, home, capsys) -> None:
    fill(ws, me)
    ws.close()
    assert cli("audit", "head", "--json", "--home", str(home)) == 0
    head = json.loads(capsys.readouterr().out)
    assert cli("audit", "verify", "--head", head["hash"], "--json", "--home", str(home)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["anchored"] and report["head"] == head["hash"]


# ---------------------------------------------------------------------- what entries hold
@tool(name="vault.login", version="1.0.0", side_effect="write")
def login(user: str, password: str, token: str, headers: dict[str, str]) -> str:
    """Log in to a vault (the test only checks what the audit trail keeps)."""
    return f"logged in {user}"


def test_tool_arguments_are_recorded_with_secrets_redacted(ws, me) -> None:
    ws.tools.add(login)
    secrets = {"password": "hunter2-very-secret", "token": "tok-abc-123-secret",
               "headers": {"Authorization": "Bearer sk-live-secret", "Accept": "text/plain"}}
    assert ws.tools.call("vault.login", {"user": "ana", **secrets}, principal=me) == "logged in ana"
    for kind in ("tool.intent", "tool.call"):
        (entry,) = ws.audit.entries(kind=kind)
        args = entry.data["args"]
        assert args["user"] == "ana" and args["password"] == "***" and args["token"] == "***"
        assert args["headers"] == {"Authorization": "***", "Accept": "text/plain"}
    raw = json.dumps(rows(ws))
    assert not any(s in raw for s in ("hunter2", "tok-abc", "sk-live"))  # nowhere in the stored chain


def test_memory_forget_and_restore_write_entries(ws, me) -> None:
    kept = ws.memory.remember("the harbour gate code changed", scope="ops")
    gone = ws.memory.remember("a note to forget", scope="ops")
    ws.memory.forget(gone.id, scope="ops", principal=me)
    intent, done = ws.audit.entries(kind="memory.forget")
    assert (intent.actor, intent.data["phase"], intent.data["scope"], intent.data["ids"]) == (
        me.key, "intent", "ops", [gone.id])
    assert (done.data["phase"], done.data["count"], done.data["forgotten"]) == ("done", 1, [gone.id])
    info = ws.backup("before", by=me)
    ws.restore(info.id, by=me)
    (started,) = ws.audit.entries(kind="workspace.restore")
    (restored,) = ws.audit.entries(kind="workspace.restored")
    for e in (started, restored):
        assert e.actor == me.key and e.data["backup"] == info.id and e.data["sha256"] == info.sha256
    assert started.seq < restored.seq and restored.data["governance"] == "kept"
    assert ws.memory.get(kept.id, scope="ops").text == kept.text


# ---------------------------------------------------------------------- restore never rolls back governance
def test_a_restore_keeps_the_audit_chain_and_appends_to_it(ws, me) -> None:
    fill(ws, me)
    info = ws.backup("old", by=me)
    fill(ws, me)  # entries the backup does not have
    before = [(r["seq"], r["hash"]) for r in rows(ws)]
    ws.restore(info.id, by=me)
    after = rows(ws)
    assert [(r["seq"], r["hash"]) for r in after[: len(before)]] == before  # nothing rolled back
    assert [r["kind"] for r in after[len(before):]] == ["workspace.restore", "workspace.restored"]
    report = ws.audit.verify(head=before[-1][1])
    assert report.ok and report.anchored


def test_a_restore_keeps_pause_suspensions_overrides_and_policy(ws, me, agent) -> None:
    gate = ws.autonomy
    rule = gate.add_rule(agent.key, "memory.remember", "allow", by=me)
    info = ws.backup("before the incident", by=me)
    gate.remove_rule(rule.id, by=me)
    gate.pause(by=me, reason="incident")
    gate.suspend(agent.key, by=me, reason="misbehaved")
    ov = gate.override(agent.key, "web.fetch", "deny", by=me, reason="no web")
    ws.restore(info.id, by=me)
    gate = ws.autonomy  # rebuilt on the restored stores
    assert gate.paused and agent.key in gate.suspended()
    assert [o["id"] for o in gate.overrides()] == [ov] and rule.id not in {r.id for r in gate.rules()}
    assert gate.decide_for(agent, "memory.remember", "write").source == "pause"


def _pending_ledger_call(ws, agent):  # type: ignore[no-untyped-def]
    """A write tool that counts its runs, and an agent's call of it waiting for approval."""
    ran: list[str] = []

    @tool(name="ledger.append", version="1.0.0", side_effect="write")
    def append(line: str) -> int:
        """Append a line to the ledger (counts the runs)."""
        ran.append(line)
        return len(ran)

    ws.tools.add(append)
    with pytest.raises(ApprovalPending) as pending:
        ws.tools.call("ledger.append", {"line": "pay 100"}, principal=agent, wait=False)
    return ran, append, pending.value.approval


def test_a_consumed_approval_cannot_be_resumed_after_restoring_a_backup_taken_before(ws, me, agent) -> None:
    ran, append, aid = _pending_ledger_call(ws, agent)
    info = ws.backup("approval still pending here", by=me)
    ws.autonomy.approvals.approve(aid, by=me)
    assert ws.tools.resume(aid) == 1 and ws.autonomy.approvals.get(aid).status == "consumed"
    ws.restore(info.id, by=me)
    ws.tools.add(append)  # the tool exists after the restore too: only the approval stops the replay
    assert ws.autonomy.approvals.get(aid).status == "consumed"
    with pytest.raises(PermissionDenied, match="already used"):
        ws.tools.resume(aid)
    assert ran == ["pay 100"]


def test_restoring_governance_on_request_never_rolls_back_the_chain_or_re_arms_an_approval(ws, me, agent) -> None:
    ran, append, aid = _pending_ledger_call(ws, agent)
    info = ws.backup("approval pending, not paused", by=me)
    ws.autonomy.approvals.approve(aid, by=me)
    ws.tools.resume(aid)
    ws.autonomy.pause(by=me, reason="after the backup")
    before = [(r["seq"], r["hash"]) for r in rows(ws)]
    report = ws.restore(info.id, by=me, governance=True)
    assert report.governance == "restored"
    assert not ws.autonomy.paused  # the policy state is the backup's, as asked
    assert ws.autonomy.approvals.get(aid).status == "consumed"  # but a used approval stays used
    ws.tools.add(append)
    with pytest.raises(PermissionDenied, match="already used"):
        ws.tools.resume(aid)
    after = rows(ws)
    assert [(r["seq"], r["hash"]) for r in after[: len(before)]] == before and ws.audit.verify().ok
    assert after[-1]["kind"] == "workspace.restored" and json.loads(after[-1]["data"])["governance"] == "restored"


def test_only_a_human_restores(ws, me, agent) -> None:
    info = ws.backup("b", by=agent)  # taking a backup is fine for anyone (the daily job does)
    assert ws.audit.entries(kind="workspace.backup")[-1].actor == agent.key
    with pytest.raises(PrincipalError, match="agent:researcher may not restore a backup"):
        ws.restore(info.id, by=agent)
    with pytest.raises(PrincipalError, match="service:scheduler may not restore"):
        ws.restore(info.id, by=ws.scheduler_principal)
    assert ws.audit.entries(kind="workspace.restore") == []


# ---------------------------------------------------------------------- a failed audit write stops the action
def _break_audit(ws: Any) -> None:
    """The audit table is gone (renamed away) and retries give up quickly."""
    ws.audit.flush()
    ws.audit.busy_retry_s = 0.2
    with ws.sql.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")


def _mend_audit(ws: Any) -> None:
    with ws.sql.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log_gone RENAME TO audit_log")


def test_a_failed_audit_write_fails_forget_and_nothing_is_forgotten(ws, me) -> None:
    rec = ws.memory.remember("must survive", tier="ltm")
    _break_audit(ws)
    try:
        with pytest.raises(AuditWriteError, match="could not write"):
            ws.memory.forget(rec.id, principal=me)
    finally:
        _mend_audit(ws)
    assert ws.memory.get(rec.id).text == "must survive"


def test_a_failed_audit_write_fails_a_policy_change_and_the_policy_is_unchanged(ws, me, agent) -> None:
    _ = ws.autonomy.paused  # built before the table goes away
    _break_audit(ws)
    try:
        with pytest.raises(AuditWriteError):
            ws.autonomy.pause(by=me, reason="unrecorded")
        with pytest.raises(AuditWriteError):
            ws.autonomy.suspend(agent.key, by=me)
    finally:
        _mend_audit(ws)
    ws.autonomy.refresh_interval = 0.0
    assert not ws.autonomy.paused and ws.autonomy.suspended() == {}


def test_a_failed_audit_write_fails_a_tool_call_and_the_tool_does_not_run(ws, me) -> None:
    ran: list[str] = []

    @tool(name="ledger.append", version="1.0.0", side_effect="write")
    def append(line: str) -> int:
        """Append a line to the ledger (counts the runs)."""
        ran.append(line)
        return len(ran)

    ws.tools.add(append)
    _break_audit(ws)
    try:
        with pytest.raises(AuditWriteError):
            ws.tools.call("ledger.append", {"line": "unrecorded"}, principal=me)
    finally:
        _mend_audit(ws)
    assert ran == []


def test_a_failed_audit_write_fails_a_restore_before_anything_is_replaced(ws, me) -> None:
    ws.memory.ingest(["kept as it is"])
    info = ws.backup("b", by=me)
    ws.memory.ingest(["written after the backup"])
    _break_audit(ws)
    try:
        with pytest.raises(AuditWriteError):
            ws.restore(info.id, by=me)
    finally:
        _mend_audit(ws)
    assert ws.memory.ltm.count() == 2


def test_a_lone_surrogate_in_an_argument_cannot_stop_every_later_audited_action(ws, me):
    """'\\ud800' is valid JSON and a valid Python str but not UTF-8: one such entry used to make every
    later audit write of the process fail (no action could run until a restart)."""
    import contextlib

    with contextlib.suppress(Exception):
        ws.tools.call("memory.recall", {"query": "\ud800 probe"}, principal=me)
    ws.audit.append("test.surrogate", me, {"name": "file\udfffname"}, durable=True)
    assert ws.tools.call("memory.recall", {"query": "fine"}, principal=me) == []
    ws.audit.flush()
    assert ws.audit.verify().ok
    (entry,) = ws.audit.entries(kind="test.surrogate")
    assert entry.data["name"] == "file\ufffdname"
