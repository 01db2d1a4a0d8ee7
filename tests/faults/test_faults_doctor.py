"""``emergent doctor [--repair] [--json]``: every store checked, each finding with what to do;
exit 0 when healthy, 1 otherwise. Run as a real CLI process on real damaged workspaces."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from emergent import Workstation
from emergent.workspace import journal

EMERGENT = str(Path(sys.executable).with_name("emergent"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env.update(EMERGENT_AUDIT_DIR=os.environ["EMERGENT_AUDIT_DIR"], EMERGENT_EMBEDDER="hashing", **extra)
    return env


def doctor(home: Path, *args: str, **env: str) -> tuple[int, dict]:
    run = subprocess.run([EMERGENT, "doctor", "--json", "--home", str(home), *args], env=_env(**env),
                         capture_output=True, text=True, timeout=180)
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, json.loads(run.stdout)


def failing(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        if not f["ok"]:
            out.setdefault(f["check"], []).append(f)
    return out


def _workspace(home: Path, **overrides: str) -> str:
    ws = Workstation.open(home, embedder="hashing", **overrides)
    ws.memory.ingest([f"note {i} on the lake" for i in range(20)])
    ws.memory.remember("a short-term note")
    bid = ws.backup("good", by=ws.principal).id
    ws.memory.ingest(["after the backup"])
    ws.close()
    return bid


def test_a_healthy_workspace_exits_0_and_reports_every_store(home: Path) -> None:
    _workspace(home)
    code, report = doctor(home)
    assert code == 0 and report["healthy"], failing(report)
    checks = {f["check"] for f in report["findings"]}
    assert checks == {"restore", "debris", "sql", "lance", "stm", "audit"}
    sql = next(f for f in report["findings"] if f["check"] == "sql")
    assert "mem_0001" in sql["detail"]["heads"]
    lance = next(f for f in report["findings"] if f["check"] == "lance")
    assert lance["detail"]["tables"]["memories"]["rows"] == 21
    assert lance["detail"]["tables"]["memories"]["schema_version"] == 2  # learned_at (issue 12)
    assert lance["detail"]["memories_schema"] == 2
    stm = next(f for f in report["findings"] if f["check"] == "stm")
    assert stm["detail"]["backend"] == "sqlite" and stm["detail"]["layout"] == 3  # 3: the eviction floor
    text = subprocess.run([EMERGENT, "doctor", "--home", str(home)], env=_env(), capture_output=True, text=True)
    assert text.returncode == 0 and "healthy" in text.stdout.splitlines()[0]


def test_an_interrupted_restore_is_reported_untouched_then_repaired(home: Path) -> None:
    bid = _workspace(home)
    env = _env()
    script = ("import emergent.workspace.journal as _journal\n_journal.KILL_AT = 'restore:sqlite:in:done'\n"
              f"from emergent import Workstation\nws = Workstation.open({str(home)!r})\nws.restore({bid!r}, by=ws.principal)")
    assert subprocess.run([sys.executable, "-c", script], env=env, capture_output=True).returncode == -9

    code, report = doctor(home)
    assert code == 1
    [restore] = failing(report)["restore"]
    assert bid in restore["summary"] and "rolled back" in restore["remedy"] and "--repair" in restore["remedy"]
    assert (home / journal.JOURNAL).exists()  # looking changed nothing

    code, report = doctor(home, "--repair")
    assert code == 0, failing(report)
    repaired = next(f for f in report["findings"] if f["check"] == "restore")["repaired"]
    assert "rolled back" in repaired
    assert not (home / journal.JOURNAL).exists()
    ws = Workstation.open(home, embedder="hashing")
    assert ws.memory.ltm.count() == 21 and ws.recovered is None
    ws.close()


def test_leftovers_of_a_killed_backup_are_named_and_removed_by_repair(home: Path) -> None:
    _workspace(home)
    staging = home / "backups" / ".staging-killed"
    (staging / "lance").mkdir(parents=True)
    (staging / "x.tar.zst.part").write_bytes(b"half an archive")
    code, report = doctor(home)
    assert code == 1 and str(staging) in failing(report)["debris"][0]["summary"]
    code, report = doctor(home, "--repair")
    assert code == 0 and not staging.exists()


def test_an_emptied_database_is_named_and_repair_starts_a_new_one_keeping_the_file(home: Path) -> None:
    _workspace(home)
    (home / "emergent.db").write_bytes(b"")
    code, report = doctor(home)
    assert code == 1
    [sql] = failing(report)["sql"]
    assert "emergent.db is empty" in sql["summary"] and "backup restore" in sql["remedy"]
    assert failing(report)["audit"][0]["summary"].startswith("not checked")

    code, report = doctor(home, "--repair")
    assert code == 1  # a new database is not the old one: restore a backup
    [sql] = failing(report)["sql"]
    assert "started a new, empty database" in sql["repaired"] and "backup restore" in sql["remedy"]
    assert len(list(home.glob("emergent.db.empty-*"))) == 1 and (home / "emergent.db").stat().st_size > 0


def test_a_deleted_lance_data_file_is_named(home: Path) -> None:
    _workspace(home)
    next((home / "lance" / "memories.lance" / "data").iterdir()).unlink()
    code, report = doctor(home)
    assert code == 1
    [lance] = failing(report)["lance"]
    assert "memories.lance is damaged" in lance["summary"] and "backup restore" in lance["remedy"]


def test_a_tampered_audit_chain_is_reported(home: Path) -> None:
    _workspace(home)
    with sqlite3.connect(home / "emergent.db") as conn:
        conn.execute("UPDATE audit_log SET data = '{\"note\": \"rewritten\"}' WHERE seq = 2")
    code, report = doctor(home)
    assert code == 1
    [audit] = failing(report)["audit"]
    assert "#2" in audit["summary"] and "emergent audit verify" in audit["remedy"]


def test_redis_that_lost_the_workspace_and_has_no_persistence_is_reported(home: Path, redis_url: str) -> None:
    import redis

    _workspace(home, redis_url=redis_url)
    code, report = doctor(home, EMERGENT_REDIS_URL=redis_url)
    assert code == 1  # the test server runs without persistence: a restart would lose short-term memory
    stm = failing(report)["stm"]
    assert all(f["status"] == "warning" for f in stm) and "appendonly" in stm[0]["remedy"]
    ok = next(f for f in report["findings"] if f["check"] == "stm" and f["ok"])
    assert ok["detail"]["backend"] == "redis" and ok["detail"]["reset_detected"] is False

    redis.Redis.from_url(redis_url).flushall()  # as a restart without persistence would
    code, report = doctor(home, EMERGENT_REDIS_URL=redis_url)
    assert code == 1
    lost = [f for f in failing(report)["stm"] if f["status"] == "error"]
    assert lost and "lost this workspace's short-term memory" in lost[0]["summary"]
    assert "--repair" in lost[0]["remedy"]

    code, report = doctor(home, "--repair", EMERGENT_REDIS_URL=redis_url)
    acknowledged = next(f for f in report["findings"] if f["check"] == "stm" and f.get("repaired"))
    assert acknowledged["ok"] and "acknowledged" in acknowledged["repaired"]
    code, report = doctor(home, EMERGENT_REDIS_URL=redis_url)
    assert not [f for f in failing(report).get("stm", []) if f["status"] == "error"]


@pytest.mark.parametrize("flag", ["--json", ""])
def test_a_missing_workspace_is_a_usage_error_not_a_traceback(tmp_path: Path, flag: str) -> None:
    run = subprocess.run([EMERGENT, "doctor", *([flag] if flag else []), "--home", str(tmp_path / "nope")],
                         env=_env(), capture_output=True, text=True)
    assert run.returncode == 2 and "does not exist" in run.stderr and "Traceback" not in run.stderr


def test_stores_written_by_a_newer_version_are_named(home: Path) -> None:
    _workspace(home)
    with sqlite3.connect(home / "emergent.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'mem_0099' WHERE version_num = 'mem_0001'")
    with sqlite3.connect(home / "stm.db") as conn:
        conn.execute("PRAGMA user_version = 7")
    code, report = doctor(home)
    assert code == 1
    bad = failing(report)
    assert "migrated by a newer emergent" in bad["sql"][0]["summary"] and "mem_0099" in bad["sql"][0]["summary"]
    assert "upgrade emergent" in bad["sql"][0]["remedy"]
    assert "layout 7, newer than this emergent" in bad["stm"][0]["summary"]
