"""``emergent keys``: list the data keys, rotate a data key and the KEK from the command line."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emergent.cli.keys import app

SCOPE = "agent:cli"


def test_rotate_kek_from_the_cli_replaces_the_key_file_and_everything_still_opens(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    audit_dir = Path(os.environ["EMERGENT_AUDIT_DIR"])
    with Workstation.open(home) as ws:
        rid = ws.memory.remember("the cli otter hides keys", scope=SCOPE, tier="ltm").id
        before = ws.keyring.kek_fingerprint
    kek_file = audit_dir / "kek"
    old = kek_file.read_text().strip()
    cli = CliRunner()

    listed = cli.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert before in listed.output and "memory.ltm" in listed.output and old not in listed.output

    rotated = cli.invoke(app, ["rotate-kek"])
    assert rotated.exit_code == 0, rotated.output
    assert kek_file.read_text().strip() != old and stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    assert not kek_file.with_name("kek.new").exists()
    assert cli.invoke(app, ["rotate-data-key", "memory.ltm"]).exit_code == 0

    with Workstation.open(home) as ws:
        assert ws.keyring.kek_fingerprint != before
        assert [h.record.id for h in ws.memory.recall("cli otter", k=1, scope=SCOPE)] == [rid]
        assert {e.kind for e in ws.audit.entries()} >= {"crypto.kek_rotated", "crypto.data_key_rotated"}
        assert len([k for k in ws.keyring.data_keys() if k.purpose == "memory.ltm"]) == 2


def test_rotate_kek_with_the_key_in_the_environment_needs_out(home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent import Workstation
    from emergent.errors import UsageError
    from emergent.security.crypto import fingerprint, load_kek

    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(os.urandom(32)).decode())
    with Workstation.open(home) as ws:
        ws.memory.remember("an env-keyed note", scope=SCOPE, tier="ltm")
    refused = CliRunner().invoke(app, ["rotate-kek"])
    assert isinstance(refused.exception, UsageError) and "--out" in refused.exception.hint
    out = tmp_path / "kek.new"
    done = CliRunner().invoke(app, ["rotate-kek", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "EMERGENT_SECURITY__KEK" in done.output and stat.S_IMODE(out.stat().st_mode) == 0o600
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", out.read_text().strip())
    with Workstation.open(home) as ws:
        assert ws.keyring.kek_fingerprint == fingerprint(load_kek(None, out))
        assert ws.memory.recall("env-keyed note", k=1, scope=SCOPE)[0].record.text == "an env-keyed note"


def test_reseal_seals_what_was_stored_before_encryption_and_drops_old_versions(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    with Workstation.open(home) as ws:
        ids = ws.memory.ingest(["the plaintext zanzibar quokka note", "x" * 40_000 + " zanzibar quokka"],
                               scope=SCOPE)
        ws.memory.ltm.move_to_archive(ws.memory.ltm.records(f"id = '{ids[1]}'"), "test", ws.clock.now())
        ws.memory.ltm.maintain(force=True)
        assert ws.memory.recall("zanzibar quokka note", k=1, scope=SCOPE)  # the hot snapshot is written at close
    assert {p.parent.name for p in home.rglob("*") if p.is_file() and b"zanzibar" in p.read_bytes()} >= {"hot", "data"}
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    done = CliRunner().invoke(app, ["reseal", "--drop-history"])
    assert done.exit_code == 0, done.output
    assert "sealed 1 memories and 1 archived ones" in done.output
    assert [p for p in home.rglob("*") if p.is_file() and b"zanzibar" in p.read_bytes()] == []
    with Workstation.open(home) as ws:
        assert [h.record.id for h in ws.memory.recall("zanzibar quokka note", k=1, scope=SCOPE)] == [ids[0]]
        assert ws.memory.ltm.reseal() == {"memories": 0, "memories_archive": 0}  # nothing left in the clear
        assert "crypto.resealed" in {e.kind for e in ws.audit.entries()}
    assert [p for p in home.rglob("*") if p.is_file() and b"zanzibar" in p.read_bytes()] == []  # snapshot sealed
