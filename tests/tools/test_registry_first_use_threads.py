"""Threads making their first tool lookups at once all see the whole registry."""

from __future__ import annotations

import threading
from pathlib import Path

from emergent.registry import Registry
from emergent.stores.sql import SQLStore
from emergent.tools.registry import ToolRegistry


def _race(n: int, fn) -> list[BaseException]:  # type: ignore[no-untyped-def]
    barrier, errors = threading.Barrier(n), []

    def go() -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_concurrent_first_lookups_wait_for_the_entry_points_instead_of_finding_no_tool(tmp_path: Path) -> None:
    sql = SQLStore(f"sqlite:///{tmp_path / 'e.db'}")
    for _ in range(3):  # a fresh registry each round: the race is on the first use
        registry = ToolRegistry(sql)
        errors = _race(8, lambda registry=registry: registry.resolve("files.read"))
        assert errors == []
        assert "files.read" in registry.names()


def test_concurrent_first_lookups_of_an_entry_point_registry_all_find_it() -> None:
    for _ in range(3):
        reg: Registry[object] = Registry("tool source", group="emergent.tools")
        errors = _race(8, lambda reg=reg: reg.get("builtin"))
        assert errors == []


def test_a_plugin_that_fails_to_load_is_named_on_every_lookup_and_hides_no_other(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from importlib import metadata

    import pytest

    from emergent.errors import UnknownChoiceError

    good = metadata.EntryPoint("good", "json:dumps", "emergent.test_axis")
    bad = metadata.EntryPoint("bad", "no_such_module_here:thing", "emergent.test_axis")
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [bad, good] if kw.get("group") == "emergent.test_axis" else real(**kw))
    reg: Registry[object] = Registry("widget", group="emergent.test_axis")
    for _ in range(2):  # the second lookup too: the failure is not a one-off shown to the first caller
        with pytest.raises(UnknownChoiceError, match="installed but failed to load: ModuleNotFoundError"):
            reg.get("bad")
    assert reg.get("good") is not None
