"""Config registry: versions in SQL, make-current, audited one-call rollback, never half-changed."""

from __future__ import annotations

import threading

import pytest

from emergent.errors import NotFoundError, StateConflictError, UsageError, ValidationError
from emergent.experiments.gate import StaticGate
from emergent.experiments.registry import ConfigRegistry
from emergent.stores.sql import SQLStore


@pytest.fixture
def registry(sql_url):
    sql = SQLStore(sql_url)
    gate = StaticGate()
    reg = ConfigRegistry(sql, audit=lambda actor, action, target, detail: gate.audit(action, actor,
                                                                                     {"target": target, **detail}))
    reg.gate = gate
    yield reg
    sql.dispose()


def test_defaults_become_version_one_and_changes_make_new_versions(registry):
    v1 = registry.current("memory")
    assert v1.id == "memory@1" and v1.values["w_text"] == 1.0
    v2 = registry.create("memory", changes={"w_text": 0.5}, actor="ana", note="less text")
    assert v2.id == "memory@2" and v2.parent_id == "memory@1" and v2.values["candidates"] == 100
    assert registry.current("memory").id == "memory@1"  # creating does not switch
    registry.make_current(v2.id, actor="ana", reason="test")
    assert registry.values("memory").w_text == 0.5
    assert registry.diff(v1, v2) == {"w_text": (1.0, 0.5)}


def test_invalid_values_and_unknown_keys_write_nothing(registry):
    registry.current("memory")
    with pytest.raises(ValidationError, match="invalid memory config"):
        registry.create("memory", changes={"candidates": 1})
    with pytest.raises(ValidationError, match="unknown memory config keys"):
        registry.create("memory", changes={"w_txt": 1})
    with pytest.raises(NotFoundError, match="did you mean 'memory'"):
        registry.current("memroy")
    assert [v.id for v in registry.versions("memory")] == ["memory@1"]


def test_rollback_is_one_call_and_audited(registry):
    registry.current("memory")
    v2 = registry.create("memory", changes={"w_text": 0.0})
    registry.make_current(v2.id, actor="cycle")
    back = registry.rollback("memory", actor="ana", reason="worse recall")
    assert back.id == "memory@1" and registry.current("memory").id == "memory@1"
    ev = registry.events("memory")[0]
    assert ev["action"] == "rollback" and ev["from_version"] == "memory@2" and ev["actor"] == "ana"
    assert ("config.rollback", "ana") in [(k, a) for k, a, _ in registry.gate.entries]


def test_rollback_to_a_deleted_version_fails_and_keeps_current(registry):
    registry.current("memory")
    v2 = registry.create("memory", changes={"w_text": 0.3})
    v3 = registry.create("memory", changes={"w_text": 0.7})
    registry.make_current(v3.id)
    registry.delete_version(v2.id)
    with pytest.raises(NotFoundError, match="memory@2.*does not exist"):
        registry.rollback("memory", to=v2.id)
    assert registry.current("memory").id == v3.id
    with pytest.raises(UsageError, match="is current"):
        registry.delete_version(v3.id)


def test_rollback_without_history_is_a_clear_error(registry):
    with pytest.raises(UsageError, match="no earlier current version"):
        registry.rollback("memory")


def test_concurrent_switches_never_leave_a_half_changed_config(registry):
    registry.current("memory")
    versions = [registry.create("memory", changes={"w_text": 0.1 * i}).id for i in range(1, 7)]
    errors: list[Exception] = []

    def switch(v: str) -> None:
        try:
            registry.make_current(v, expected="memory@1")
        except StateConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=switch, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == len(versions) - 1  # exactly one switch won
    cur = registry.current("memory")
    assert cur.id in versions and registry.values("memory").w_text == cur.values["w_text"]
    assert [e["action"] for e in registry.events("memory") if e["action"] == "make_current"] == ["make_current"]
