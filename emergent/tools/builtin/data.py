"""``sql``: read-only DuckDB queries over the workspace's files (CSV, Parquet, JSON)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from emergent.errors import ValidationError
from emergent.tools.builtin._common import files_root
from emergent.tools.spec import ToolContext, tool

_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_READ_ONLY = re.compile(r"^\s*(select|with|from|describe|show|summarize|explain|values|pivot|unpivot)\b", re.I)


def _absolute_paths(query: str, root: str) -> str:
    """Point quoted relative file names (and globs) that exist under ``root`` at their absolute path."""
    base = Path(root)

    def fix(m: re.Match[str]) -> str:
        value = m.group(1).replace("''", "'")
        if not value or value.startswith("/") or "://" in value:
            return m.group(0)
        if (base / value).exists() or any(base.glob(value)) if any(c in value for c in "*?[") else \
                (base / value).exists():
            return "'" + str(base / value).replace("'", "''") + "'"
        return m.group(0)

    return _LITERAL.sub(fix, query)


@tool(name="sql", version="1.0.0", python_requires=("duckdb>=1.0",), tags=("data",))
def sql(query: str, ctx: ToolContext, max_rows: int = 1000) -> dict[str, Any]:
    """Run a read-only SQL query (DuckDB) over files in the workspace, e.g. SELECT * FROM 'sales.csv'.

    Args:
        query: one SELECT / WITH / DESCRIBE / SUMMARIZE statement; file paths are relative to the
            workspace's files directory
        max_rows: most rows returned
    """
    if not _READ_ONLY.match(query) or ";" in query.strip().rstrip(";"):
        raise ValidationError("the sql tool runs one read-only statement (SELECT, WITH, DESCRIBE, ...)",
                              hint="write files with files.write", field="query")
    try:
        import duckdb
    except ImportError:
        from emergent.errors import MissingExtraError

        raise MissingExtraError("the sql tool", "tools", "duckdb") from None
    root = str(files_root(ctx))
    con = duckdb.connect(":memory:")
    con.execute("SET allowed_directories = $dirs", {"dirs": [root + "/"]})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    try:
        try:
            cur = con.execute(_absolute_paths(query, root))
        except duckdb.Error as exc:
            raise ValidationError(f"query failed: {exc}", hint="check table (file) and column names",
                                  field="query") from None
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(max_rows + 1) if columns else []
        return {"columns": columns, "rows": [list(r) for r in rows[:max_rows]],
                "truncated": len(rows) > max_rows}
    finally:
        con.close()


TOOLS = [sql]
