"""Fault 2: a batch is validated whole before anything is written, and says what it stored.

``ingest`` of 10,000 items with a blank item at 5,000 used to commit 4,608 and raise a
ValidationError naming neither the item nor what was committed; ``ingest("lakes")`` stored five
one-letter memories; ``[5]``, ``[None]``, ``[b"\\xff"]`` and ``42`` raised raw TypeErrors. A batch
that fails after part of it was committed (here: the disk fills up) raises an error whose
``committed_ids`` are exactly what is stored, so retrying the rest stores each item once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emergent import Workstation
from emergent.errors import DiskFullError, PartialWriteError, ValidationError


def test_a_blank_item_in_the_middle_of_ten_thousand_writes_nothing_and_is_named(ws: Workstation) -> None:
    items = [f"survey note {i} on the lake" for i in range(10_000)]
    items[5_000] = "   "
    with pytest.raises(ValidationError) as err:
        ws.memory.ingest(items)
    assert "ingest item 5000 ('   ')" in str(err.value) and "nothing was written" in str(err.value)
    assert err.value.index == 5000 and err.value.committed_ids == []
    assert ws.memory.ltm.count() == 0


@pytest.mark.parametrize(("items", "named"), [
    ("lakes", "not one str ('lakes')"),
    (b"lakes", "not one bytes"),
    (42, "not int (42)"),
    ({"text": "one dict"}, "not one dict"),
    ([5], "ingest item 0 (5)"),
    ([None], "ingest item 0 (None)"),
    ([b"\xff"], "ingest item 0 (b'\\xff'): text is not valid UTF-8"),
    (["fine", {"txt": "typo"}], "ingest item 1 ({'txt': 'typo'}): the item has no 'text'"),
    (["fine", ["a", "list"]], "ingest item 1 (['a', 'list'])"),
])
def test_items_that_are_not_texts_are_validation_errors_naming_the_item(ws: Workstation, items: object,
                                                                         named: str) -> None:
    with pytest.raises(ValidationError) as err:
        ws.memory.ingest(items)  # type: ignore[arg-type]
    assert named in str(err.value)
    assert not isinstance(err.value, TypeError)
    assert ws.memory.ltm.count() == 0


def test_a_str_gets_a_hint_to_pass_a_list(ws: Workstation) -> None:
    with pytest.raises(ValidationError, match=r"pass a list: ingest\(\['lakes'\]\)"):
        ws.memory.ingest("lakes")  # type: ignore[arg-type]


def test_every_bad_item_is_counted_not_only_the_first(ws: Workstation) -> None:
    with pytest.raises(ValidationError, match=r"ingest item 1 .* \(2 more invalid items: 3, 4\)") as err:
        ws.memory.ingest(["ok", "", "ok", None, 7])  # type: ignore[list-item]
    assert err.value.invalid == [1, 3, 4]


def test_valid_bytes_are_decoded_and_ids_come_back_in_order(ws: Workstation) -> None:
    ids = ws.memory.ingest([b"caf\xc3\xa9 by the lake", "second", {"text": "third", "importance": 0.9}])
    assert [ws.memory.get(i).text for i in ids] == ["café by the lake", "second", "third"]


def test_disk_filling_up_mid_ingest_names_exactly_the_committed_ids(small_disk, tmp_path: Path) -> None:
    home = small_disk.path / "ws"
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest([f"warm-up note {i} about the lake" for i in range(300)])
    texts = [f"bulk item {i} about the river and the lake " * 3 for i in range(6_000)]
    small_disk.fill(leave=2_500_000)  # room for a batch or two, not for 6,000 items
    with pytest.raises((PartialWriteError, DiskFullError)) as err:
        ws.memory.ingest(texts)
    exc = err.value
    assert str(home / "lance" / "memories.lance") in str(exc) and "is full" in str(exc)
    stored = {r["text"]: r["id"] for r in ws.memory.ltm.scan(columns=["id", "text"]).to_pylist()}
    mine = [stored[t] for t in texts if t in stored]
    assert exc.committed_ids == mine  # exactly what is stored, in order
    if mine:
        assert isinstance(exc, PartialWriteError) and "ingest only the items after them" in exc.hint
    assert ws.memory.recall("river", k=3)  # reads keep working on a full disk

    small_disk.drain()
    rest = texts[len(mine):]
    ws.memory.ingest(rest)  # retry only what was not stored
    texts_now = [r["text"] for r in ws.memory.ltm.scan(columns=["text"]).to_pylist()]
    assert len(texts_now) == 300 + len(texts) and len(set(texts_now)) == len(texts_now)
    ws.close()


def test_a_failing_listener_does_not_fail_a_write_that_committed(ws: Workstation, caplog) -> None:
    import logging

    def broken(event: str, items: object) -> None:
        raise RuntimeError("graph extractor crashed")

    ws.memory.add_listener(broken)
    with caplog.at_level(logging.WARNING, logger="emergent.memory"):
        ids = ws.memory.ingest(["first stored memory", "second stored memory"])
        rec = ws.memory.remember("a short-term memory")
    assert len(ids) == 2 and ws.memory.ltm.count() == 2 and ws.memory.get(rec.id).text == "a short-term memory"
    assert "is stored, but listener" in caplog.text and "graph extractor crashed" in caplog.text
    assert [e[0] for e in ws.memory.listener_errors] == ["ingest", "remember"]
