"""The SQL store: migrations on open, idempotent, concurrent-safe; SQLite and PostgreSQL."""

import threading

import sqlalchemy as sa

from emergent.errors import ConfigError, StoreUnavailableError
from emergent.stores.sql import SQLStore


def test_opening_applies_every_branch_head(sql_url):
    store = SQLStore(sql_url)
    assert "mem_0001" in store.heads()
    names = sa.inspect(store.engine).get_table_names()
    assert {"memory_ops", "backups"} <= set(names)
    store.dispose()


def test_reopening_is_a_no_op(sql_url):
    first = SQLStore(sql_url)
    heads = first.heads()
    first.dispose()
    again = SQLStore(sql_url)
    assert again.heads() == heads
    again.dispose()


def test_concurrent_opens_migrate_once(sql_url, tmp_path):
    errors = []

    def open_one():
        try:
            SQLStore(sql_url, lock_dir=tmp_path).dispose()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = SQLStore.in_workspace(tmp_path)
    with store.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    store.dispose()


def test_bad_url_is_a_config_error():
    import pytest

    with pytest.raises(ConfigError, match="cannot use database URL"):
        SQLStore("nosuchdialect://x")


def test_unreachable_server_is_reported_as_unavailable():
    import pytest

    with pytest.raises(StoreUnavailableError, match="unavailable"):
        SQLStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
