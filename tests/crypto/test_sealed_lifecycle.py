"""A sealed workspace through its lifecycle: re-embedding (the CLI) and backup + restore."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "the heron nests behind the zanzibar quokka dam"
SCOPE = "agent:life"


@pytest.fixture
def kek_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"EMERGENT_SECURITY__ENCRYPT": "true",
           "EMERGENT_SECURITY__KEK": base64.b64encode(os.urandom(32)).decode()}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _no_secret_on_disk(home: Path) -> None:
    hits = [str(p) for p in home.rglob("*") if p.is_file() and not p.name.endswith(".tar.zst")
            and b"zanzibar" in p.read_bytes()]
    assert hits == []


def test_reembed_of_a_sealed_store_embeds_the_text_and_keeps_it_sealed(home: Path, tmp_path: Path,
                                                                      kek_env: dict[str, str]) -> None:
    from emergent import Workstation

    with Workstation.open(home, embedder="hashing") as ws:
        rid = ws.memory.remember(SECRET, scope=SCOPE, tier="ltm").id
        ws.memory.remember("an unrelated note about tea", scope=SCOPE, tier="ltm")
    env = {**kek_env, "EMERGENT_HOME": str(home), "EMERGENT_AUDIT_DIR": os.environ["EMERGENT_AUDIT_DIR"],
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "emergent"), "memory", "reembed", "--embedder",
                           "hashing"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "re-embedded 2 memories" in done.stdout
    with Workstation.open(home) as ws:
        rec = ws.memory.ltm.get(rid, ws.memory._scope(SCOPE))
        assert rec.text == SECRET
        assert float(rec.vector @ ws.embedder.embed([SECRET])[0]) > 0.999  # embedded from the opened text
        assert [h.record.id for h in ws.memory.recall("heron nests dam", k=1, scope=SCOPE)] == [rid]
    _no_secret_on_disk(home)


def test_backup_and_restore_of_a_sealed_workspace_reads_back(home: Path, kek_env: dict[str, str]) -> None:
    from emergent import Workstation

    with Workstation.open(home, embedder="hashing") as ws:
        kept = ws.memory.remember(SECRET, scope=SCOPE, tier="ltm").id
        info = ws.backup("before", by=ws.principal)
        ws.keyring.rotate_kek(new := os.urandom(32), by=ws.principal)  # the backup's key rows: the old KEK
        ws.memory.forget(kept, scope=SCOPE, principal=ws.principal)
    os.environ["EMERGENT_SECURITY__KEK"] = base64.b64encode(new).decode()  # restored by monkeypatch
    with Workstation.open(home, embedder="hashing") as ws:
        ws.restore(info.id, by=ws.principal)
    with Workstation.open(home, embedder="hashing") as ws:
        hits = ws.memory.recall("heron nests dam", k=3, scope=SCOPE)
        assert [h.record.text for h in hits if h.record.id == kept] == [SECRET]
    _no_secret_on_disk(home)
