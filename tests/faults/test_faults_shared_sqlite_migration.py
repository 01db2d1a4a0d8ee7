"""Two workspaces (two homes, as two `emergent serve` on one host) opening one new SQLite database file at
the same moment: one migrates, the other waits for it, and neither fails with "table already exists"."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

OPEN = """
import sys, time
from pathlib import Path
from emergent import Workstation
import emergent.stores.sql, alembic.command  # imported before the start line: both open at once
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.002)
with Workstation.open(sys.argv[1], create=True, embedder="hashing", database_url=sys.argv[2]) as ws:
    print(len(ws.sql.heads()))
"""


def test_two_workspaces_opening_one_new_sqlite_file_together_migrate_it_once(tmp_path: Path) -> None:
    for attempt in range(4):
        url = f"sqlite:///{tmp_path / f'shared{attempt}.db'}"
        go = tmp_path / f"go{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(tmp_path / f"home{attempt}_{i}"), url, str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
        time.sleep(3.0)  # both have imported and wait for the start line
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
            assert int(out.strip()) > 0
