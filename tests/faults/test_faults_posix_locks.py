"""Opening a second store on a SQLite file this process already has open must not drop the first
store's locks (closing any descriptor of a file releases every POSIX lock the process holds on it:
another process could then write under our feet and corrupt the database)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from emergent.stores.sql import SQLStore


def test_a_second_store_never_opens_a_file_this_process_has_open(tmp_path: Path, monkeypatch) -> None:
    """Our header check used to open() and close() emergent.db while a workstation of this process had
    it open: the close dropped SQLite's shared lock, the next process to close its connection
    believed it was the last one and deleted the WAL this process still used ("database disk image
    is malformed" after a scheduled job ran beside a notebook). While a store holds the file, a
    second store relies on SQLite's own checks instead of reading the raw header."""
    db = tmp_path / "emergent.db"
    first = SQLStore(f"sqlite:///{db}")
    with first.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    opened: list[str] = []
    real_open = Path.open

    def spy(self: Path, *a: object, **kw: object):  # type: ignore[no-untyped-def]
        if self.name == "emergent.db":
            opened.append(str(self))
        return real_open(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", spy)
    second = SQLStore(f"sqlite:///{db}", migrate=False)
    assert opened == []
    second.dispose()
    first.dispose()
    third = SQLStore(f"sqlite:///{db}", migrate=False)  # nobody holds it now: the header is checked
    assert opened == [str(db)]
    third.dispose()


def test_a_file_damaged_while_no_store_had_it_open_is_still_refused_at_open(tmp_path: Path) -> None:
    import pytest

    from emergent.errors import StoreCorruptError

    db = tmp_path / "emergent.db"
    store = SQLStore(f"sqlite:///{db}")
    with store.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    store.dispose()
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreCorruptError, match="not a SQLite database"):
        SQLStore(f"sqlite:///{db}")
