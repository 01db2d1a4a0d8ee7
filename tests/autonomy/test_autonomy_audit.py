"""The hash-chained audit trail: tampering is found and named by position."""

import io
import threading

import sqlalchemy as sa

from emergent.audit import AuditLog, verify_jsonl
from emergent.autonomy.tables import audit_log
from emergent.cli import main
from emergent.principals import Principals


def filled(store, clock, n=10):
    log = AuditLog(store, clock=clock, flush_every=4, flush_interval=None)
    bot = Principals(store, clock=clock).service("bot")
    for i in range(n):
        clock.advance(1)
        log.append("tool.call", bot, {"i": i, "tool": "files.read@1.0.0"})
    log.flush()
    return log


def test_intact_chain_verifies_and_exports(store, clock):
    log = filled(store, clock)
    rep = log.verify()
    assert rep.ok and rep.entries == 10
    buf = io.StringIO()
    assert log.export_jsonl(buf) == 10
    assert verify_jsonl(iter(buf.getvalue().splitlines())).head == rep.head


def test_edited_entry_is_named(store, clock):
    log = filled(store, clock)
    with store.begin() as c:
        c.execute(audit_log.update().where(audit_log.c.seq == 4).values(data='{"i":99}'))
    rep = log.verify()
    assert not rep.ok and rep.first_bad == 4 and "edited" in rep.problems[0][1]


def test_deleted_entry_is_named(store, clock):
    log = filled(store, clock)
    with store.begin() as c:
        c.execute(audit_log.delete().where(audit_log.c.seq == 6))
    rep = log.verify()
    assert rep.first_bad == 6 and "entry 6 was deleted" in rep.problems[0][1]


def test_inserted_entry_is_named(store, clock):
    log = filled(store, clock)
    with store.begin() as c:
        rows = [dict(r._mapping) for r in c.execute(sa.select(audit_log).where(audit_log.c.seq >= 3)
                                                   .order_by(audit_log.c.seq.desc()))]
        for r in rows:  # shift everything from 3 on, then slip a forged entry in at 3
            c.execute(audit_log.update().where(audit_log.c.seq == r["seq"]).values(seq=r["seq"] + 1))
        c.execute(audit_log.insert(), {"seq": 3, "at": 0.0, "kind": "tool.call", "actor": "agent:evil",
                                       "data": "{}", "prev_hash": "0" * 64, "hash": "f" * 64})
    rep = log.verify()
    assert rep.first_bad == 3 and any("inserted or deleted" in p for _, p in rep.problems)


def test_two_writers_keep_one_linear_chain(store, clock):
    a = AuditLog(store, clock=clock, flush_every=5, flush_interval=None)
    b = AuditLog(store, clock=clock, flush_every=5, flush_interval=None)
    directory = Principals(store, clock=clock)

    def write(log, who):
        for i in range(50):
            log.append("x", who, {"i": i})
        log.flush()

    ts = [threading.Thread(target=write, args=(a, directory.service("a"))),
          threading.Thread(target=write, args=(b, directory.service("b")))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rep = a.verify()
    assert rep.ok and rep.entries == 100


def test_cli_verify_fails_on_a_tampered_database(home, capsys):
    from emergent import Workstation

    with Workstation.open(home) as ws:
        for i in range(3):
            ws.audit.append("note", ws.principal, {"i": i})
        ws.audit.flush()
        with ws.sql.begin() as c:
            c.execute(audit_log.update().where(audit_log.c.seq == 2).values(actor="human:someone-else"))

    def cli(*args):
        try:
            return main(list(args))
        except SystemExit as exc:
            return exc.code

    assert cli("audit", "verify", "--home", str(home)) == 1
    assert "broken at entry 2" in capsys.readouterr().out
