"""The Alembic migrations build exactly the schema the ``tables`` modules declare, and only the
owning capability touches its tables.

A fresh database (SQLite; PostgreSQL too when EMERGENT_TEST_POSTGRES_URL is set) is upgraded to
every branch head, then compared with ``emergent.stores.sql.metadata`` (after importing every
``emergent.<capability>.tables`` module) by Alembic's autogenerate: no table, column, type, index,
unique constraint or nullability may differ. Drift is fixed with a new named revision in the
owning branch, never by editing an old one.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import emergent
from emergent.stores.sql import MIGRATIONS, SQLStore, metadata

PACKAGE = Path(emergent.__file__).parent
TABLE_MODULES = sorted(f"emergent.{p.parent.name}.tables" for p in PACKAGE.glob("*/tables.py"))

#: modules that may touch another capability's tables, and why
OTHERS_TABLES_ALLOWED = {
    "workspace/backup.py": "backup and restore handle every table as one workspace",
    "audit.py": "audit_log is created by the autonomy branch (the audit trail moved out of emergent.autonomy)",
    "principals.py": "principals is created by the autonomy branch (the directory moved out of emergent.autonomy)",
}
_SQL_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+([a-z_][a-z0-9_]*)")  # SQL keywords in capitals


def _import_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)


def _diff(store: SQLStore, target: sa.MetaData) -> list[Any]:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, target))


def test_every_capability_declares_its_tables_in_a_tables_module() -> None:
    # the capabilities with an Alembic branch today; a new one adds its tables module here too
    assert {"autonomy", "experiments", "graph", "jobs", "memory", "proposals", "tools"} <= {
        n.split(".")[1] for n in TABLE_MODULES}


def test_migrations_at_heads_match_the_tables_metadata(sql_url: str) -> None:
    _import_tables()
    store = SQLStore(sql_url)
    try:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        assert store.heads() == sorted(ScriptDirectory.from_config(cfg).get_heads())  # every branch applied
        diff = _diff(store, metadata)
        assert diff == [], "the migrations and the tables modules disagree:\n" + "\n".join(map(repr, diff))
    finally:
        store.dispose()


def test_the_comparison_sees_drift(sql_url: str) -> None:
    """A control: a column the migrations do not create, and a table they do not know, are reported."""
    _import_tables()
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["proposals"].append_column(sa.Column("drift", sa.Integer, nullable=True))
    sa.Table("not_migrated", drifted, sa.Column("id", sa.Integer, primary_key=True))
    store = SQLStore(sql_url)
    try:
        found = {(d[0], d[2] if d[0] == "add_column" else d[1].name) for d in _diff(store, drifted)
                 if isinstance(d, tuple)}
        assert ("add_column", "proposals") in found and ("add_table", "not_migrated") in found
    finally:
        store.dispose()


def _owners() -> dict[str, str]:
    """table name -> the capability (package) whose tables module declares it."""
    out = {}
    for name in TABLE_MODULES:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, sa.Table):
                out[value.name] = name.split(".")[1]
    return out


def test_no_service_touches_another_capabilitys_tables() -> None:
    """Services read each other through read methods: no import of another package's ``tables``
    module, and no SQL string naming another package's table (outside the listed exceptions)."""
    owners = _owners()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("stores/migrations/") or rel in OTHERS_TABLES_ALLOWED:
            continue
        package = rel.split("/")[0] if "/" in rel else ""
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(".tables"):
                owner = node.module.split(".")[1]
                if owner != package:
                    found.append(f"{rel}:{node.lineno} imports {node.module}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for table in _SQL_TABLE.findall(node.value):
                    if owners.get(table) not in (None, package):
                        found.append(f"{rel}:{node.lineno} runs SQL on {table} (owned by {owners[table]})")
    assert found == [], "use the owning service's read methods instead:\n" + "\n".join(found)


@pytest.mark.parametrize("module", TABLE_MODULES)
def test_each_tables_module_imports_alone(module: str) -> None:
    assert importlib.import_module(module).metadata is metadata


def test_heads_read_from_the_scripts_are_alembics_heads() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from emergent.stores.sql import MIGRATIONS, declared_heads

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert declared_heads() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def test_a_current_workspace_opens_without_alembic_and_an_old_one_is_upgraded(tmp_path) -> None:
    import subprocess
    import sys

    import sqlalchemy as sa

    from emergent.stores.sql import SQLStore

    store = SQLStore.in_workspace(tmp_path)
    store.upgrade(tmp_path)
    probe = (f"import sys\nfrom pathlib import Path\nfrom emergent.stores.sql import SQLStore\n"
             f"s = SQLStore.in_workspace(Path({str(tmp_path)!r}))\ns.upgrade(Path({str(tmp_path)!r}))\n"
             f"print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from alembic import command

    from emergent.stores.sql import _alembic_config

    with store.begin() as conn:  # a database one migration behind
        command.downgrade(_alembic_config(conn), "autonomy_0001")
    assert "principals" not in sa.inspect(store.engine).get_table_names()
    store.upgrade(tmp_path)
    assert "autonomy_0002" in store.heads() and "principals" in sa.inspect(store.engine).get_table_names()
    store.dispose()
