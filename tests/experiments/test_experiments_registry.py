"""Config registry: versions in SQL, make-current, audited one-call rollback, never half-changed."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from emergent.audit import AuditLog
from emergent.config import MemoryConfig
from emergent.errors import (
    AuditWriteError,
    NotFoundError,
    PrincipalError,
    StateConflictError,
    UsageError,
    ValidationError,
)
from emergent.experiments.registry import ConfigRegistry
from emergent.principals import Principals
from emergent.stores.sql import SQLStore


@pytest.fixture
def registry(sql_url):
    sql = SQLStore(sql_url)
    audit = AuditLog(sql, flush_interval=None)
    reg = ConfigRegistry(sql, audit=audit, principals=Principals(sql, audit=audit))
    yield reg
    audit.close()
    sql.dispose()


@pytest.fixture
def ana(registry):
    return registry.principals.os_user()


@pytest.fixture
def bot(registry, ana):
    return registry.principals.agent("cycle", created_by=ana)


def test_defaults_become_version_one_and_changes_make_new_versions(registry, ana):
    v1 = registry.current("memory")
    default = MemoryConfig().w_text
    assert v1.id == "memory@1" and v1.values["w_text"] == default
    v2 = registry.create("memory", changes={"w_text": 0.5}, principal=ana, note="less text")
    assert v2.id == "memory@2" and v2.parent_id == "memory@1" and v2.values["candidates"] == 100
    assert v2.created_by == ana.key
    assert registry.current("memory").id == "memory@1"  # creating does not switch
    registry.make_current(v2.id, by=ana, reason="test")
    assert registry.values("memory").w_text == 0.5
    assert registry.diff(v1, v2) == {"w_text": (default, 0.5)}


def test_invalid_values_and_unknown_keys_write_nothing(registry, ana):
    registry.current("memory")
    with pytest.raises(ValidationError, match="invalid memory config"):
        registry.create("memory", changes={"candidates": 1}, principal=ana)
    with pytest.raises(ValidationError, match="unknown memory config keys"):
        registry.create("memory", changes={"w_txt": 1}, principal=ana)
    with pytest.raises(NotFoundError, match="did you mean 'memory'"):
        registry.current("memroy")
    assert [v.id for v in registry.versions("memory")] == ["memory@1"]


def test_rollback_is_one_call_and_audited(registry, ana):
    registry.current("memory")
    v2 = registry.create("memory", changes={"w_text": 0.0}, principal=ana)
    registry.make_current(v2.id, by=ana)
    back = registry.rollback("memory", by=ana, reason="worse recall")
    assert back.id == "memory@1" and registry.current("memory").id == "memory@1"
    ev = registry.events("memory")[0]
    assert ev["action"] == "rollback" and ev["from_version"] == "memory@2" and ev["actor"] == ana.key
    entries = [(e.kind, e.actor, e.data["phase"]) for e in registry.audit.entries(kind="config.rollback")]
    assert entries == [("config.rollback", ana.key, "intent"), ("config.rollback", ana.key, "done")]
    assert registry.audit.verify().ok


def test_agents_may_create_versions_but_not_switch_roll_back_or_delete(registry, ana, bot):
    registry.current("memory")
    v2 = registry.create("memory", changes={"w_text": 0.0}, principal=bot)  # proposing is fine
    with pytest.raises(PrincipalError, match="agent:cycle may not make a config version current"):
        registry.make_current(v2.id, by=bot)
    registry.make_current(v2.id, by=ana)
    with pytest.raises(PrincipalError, match="agent:cycle may not roll back"):
        registry.rollback("memory", by=bot)
    with pytest.raises(PrincipalError, match="may not delete"):
        registry.delete_version("memory@1", by=bot)
    assert registry.current("memory").id == v2.id and len(registry.versions("memory")) == 2


def test_a_switch_whose_intent_cannot_be_audited_does_not_happen(registry, ana):
    registry.current("memory")
    v2 = registry.create("memory", changes={"w_text": 0.0}, principal=ana)
    with registry.sql.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_log RENAME TO audit_log_gone"))
    registry.audit.busy_retry_s = 0.2
    with pytest.raises(AuditWriteError):
        registry.make_current(v2.id, by=ana)
    assert registry.current("memory").id == "memory@1"
    assert [e["action"] for e in registry.events("memory")] == ["create", "create"]
    with registry.sql.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_log_gone RENAME TO audit_log"))


def test_rollback_to_a_deleted_version_fails_and_keeps_current(registry, ana):
    registry.current("memory")
    v2 = registry.create("memory", changes={"w_text": 0.3}, principal=ana)
    v3 = registry.create("memory", changes={"w_text": 0.7}, principal=ana)
    registry.make_current(v3.id, by=ana)
    registry.delete_version(v2.id, by=ana)
    with pytest.raises(NotFoundError, match="memory@2.*does not exist"):
        registry.rollback("memory", to=v2.id, by=ana)
    assert registry.current("memory").id == v3.id
    with pytest.raises(UsageError, match="is current"):
        registry.delete_version(v3.id, by=ana)


def test_rollback_without_history_is_a_clear_error(registry, ana):
    with pytest.raises(UsageError, match="no earlier current version"):
        registry.rollback("memory", by=ana)


def test_concurrent_switches_never_leave_a_half_changed_config(registry, ana):
    registry.current("memory")
    versions = [registry.create("memory", changes={"w_text": 0.1 * i}, principal=ana).id for i in range(1, 7)]
    errors: list[Exception] = []

    def switch(v: str) -> None:
        try:
            registry.make_current(v, by=ana, expected="memory@1")
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
