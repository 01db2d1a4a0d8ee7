"""`emergent backup restore` of a backup that holds an erased memory: refused in one line with the
option to use, and with --repurge restored without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emergent import Workstation

EMERGENT = str(Path(sys.executable).with_name("emergent"))
SECRET = "carol-passport-ZK404-heron"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMERGENT_EMBEDDER": "hashing"}
    return subprocess.run([EMERGENT, *args, "--home", str(home)], capture_output=True, text=True, timeout=120,
                          env=env)


def test_the_cli_refuses_a_backup_holding_an_erased_memory_until_told_to_repurge(home: Path) -> None:
    with Workstation.open(home, embedder="hashing") as ws:
        me = ws.principal
        gone = ws.memory.remember(SECRET, scope="assistant/carol", tier="ltm").id
        kept = ws.memory.remember("dave's note on tides", scope="assistant/dave", tier="ltm").id
        old = ws.backup(by=me)
        ws.retention.erase(by=me, reason="request 12", user="carol")

    refused = _cli(home, "backup", "restore", old.id, "--yes")
    both = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in both and "--repurge" in both, both

    done = _cli(home, "backup", "restore", old.id, "--yes", "--repurge")
    assert done.returncode == 0, done.stdout + done.stderr
    with Workstation.open(home, embedder="hashing") as ws:
        assert ws.memory.locate(ids=[gone]) == [] and ws.memory.locate(ids=[kept])
