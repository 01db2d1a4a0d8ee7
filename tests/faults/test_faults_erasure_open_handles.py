"""An erasure by one process removes the data files another process's open LanceDB handle names:
the other's next read checks out the newest version and serves what was kept, never "damaged"."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergent import Workstation
from emergent.errors import NotFoundError, StoreCorruptError
from emergent.memory.types import Scope


def test_a_second_workstation_reads_a_kept_memory_after_an_erasure_through_the_other(ws, me, home: Path) -> None:
    erased = [ws.memory.remember(f"alice's note {i}", scope="assistant/alice", tier="ltm").id for i in range(3)]
    kept = ws.memory.remember("bob's note stays", scope="assistant/bob", tier="ltm").id
    other = Workstation.open(home, embedder="hashing")
    try:
        table = other.memory.ltm.table
        assert other.memory.ltm.get(kept, Scope.of("assistant/bob")).text == "bob's note stays"
        opened = table.version
        ws.retention.erase(by=me, reason="erasure through the first workstation", user="alice")
        assert other.memory.ltm.table is table and table.version == opened  # still on the old version
        assert other.memory.ltm.get(kept, Scope.of("assistant/bob")).text == "bob's note stays"
        assert table.version > opened
        for mid in erased:
            with pytest.raises(NotFoundError):
                other.memory.ltm.get(mid, Scope.of("assistant/alice"))
        assert [r.id for r in other.memory.ltm.records()] == [kept]
    finally:
        other.close()


def test_a_data_file_missing_at_the_newest_version_is_still_a_damaged_table(ws, home: Path) -> None:
    kept = ws.memory.remember("a note", scope="assistant/bob", tier="ltm").id
    data = Path(ws.memory.ltm.path) / "data"
    for f in data.glob("*.lance"):
        f.unlink()
    with pytest.raises(StoreCorruptError):
        ws.memory.ltm.get(kept, Scope.of("assistant/bob"))
