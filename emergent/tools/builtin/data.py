"""``sql``: one read-only DuckDB query over the workspace's files (CSV, Parquet, JSON).

What keeps it read-only and inside the workspace:

- DuckDB's own parser (``duckdb.extract_statements``) must find exactly one statement of type
  SELECT (``WITH … SELECT``, ``FROM …``, ``VALUES``, ``DESCRIBE``/``SUMMARIZE``/``SHOW`` of a
  query); COPY, EXPLAIN [ANALYZE], PRAGMA, SET/RESET, ATTACH, INSTALL/LOAD, EXPORT, CALL,
  CREATE, INSERT, ... never reach the engine, and the parsed statement is what runs;
- its syntax tree (``json_serialize_sql``) may hold only SELECT, set-operation and CTE query
  nodes: a COPY, INSERT or DELETE hidden in a CTE (DuckDB runs those even from a SELECT) is
  refused, and so are functions that run SQL given as a string (``query``, ``query_table``,
  ``json_execute_serialized_sql``) or change the engine (checkpoints, logging, profiling, ...);
- a fresh in-memory connection with ``enable_external_access = false`` and
  ``allowed_directories`` = the files directory (DuckDB resolves links, so one pointing out is
  refused; no network, no extension loading), ``lock_configuration = true`` so a query cannot
  loosen any of it;
- spill files in ``<workspace>/tmp/duckdb`` (outside the files directory, size-capped), a memory
  limit and a thread count;
- a real timeout: a timer thread calls ``con.interrupt()`` and the call raises
  :class:`~emergent.errors.TimeoutExceeded`.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from emergent.errors import MissingExtraError, TimeoutExceeded, ValidationError
from emergent.tools.builtin._common import files_root, workspace_tmp
from emergent.tools.spec import ToolContext, tool

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 300.0
MAX_ROWS = 100_000
MEMORY_LIMIT = "1GB"
THREADS = 2
MAX_TEMP = "4GB"

_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_GLOB = re.compile(r"[*?\[{]")
#: the query nodes a read-only statement is made of (DuckDB also has COPY/INSERT/DELETE/UPDATE nodes in CTEs)
_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
#: functions that run SQL handed to them as a string, or change the engine rather than read
_DENIED_FUNCTIONS = frozenset({
    "query", "query_table", "json_execute_serialized_sql", "write_log", "truncate_duckdb_logs", "checkpoint",
    "force_checkpoint", "enable_checkpoint_on_shutdown", "disable_checkpoint_on_shutdown", "enable_logging",
    "disable_logging", "enable_profiling", "disable_profiling", "enable_profile", "disable_profile",
    "add_grammar_extension", "remove_grammar_extension", "create_external_resource", "register_external_resource",
    "register_external_resource_type", "deregister_external_resource", "destroy_external_resource",
    "python_map_function", "pandas_scan", "arrow_scan", "arrow_scan_dumb", "python_arrow_scan"})
_DENIED_PATTERN = re.compile(r"sql|query|checkpoint|logging|profil|external_resource|grammar|python|pandas|arrow")
_HINT = ("the sql tool runs one read-only SELECT (or WITH … SELECT) over the workspace's files; "
         "write files with files.write")


def _absolute_paths(query: str, root: Path) -> str:
    """Point quoted relative file names (and globs) that exist under ``root`` at their absolute
    path. Only spelling: DuckDB's allowed_directories is what confines the query."""

    def fix(m: re.Match[str]) -> str:
        value = m.group(1).replace("''", "'")
        if not value or value.startswith(("/", "~")) or "://" in value or ".." in value.split("/"):
            return m.group(0)
        if _GLOB.search(value):
            head = value.split("/")
            fixed = [p for p in head[:-1] if not _GLOB.search(p)]
            exists = len(fixed) == len(head) - 1 and (root.joinpath(*fixed)).is_dir()
        else:
            exists = (root / value).exists()
        if not exists:
            return m.group(0)
        return "'" + str(root / value).replace("'", "''") + "'"

    return _LITERAL.sub(fix, query)


def _one_select(duckdb: Any, query: str) -> Any:
    """The single SELECT statement of ``query`` as DuckDB parses it; ValidationError otherwise."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ValidationError(f"query does not parse: {exc}", hint="fix the SQL syntax", field="query") from None
    if len(statements) != 1:
        raise ValidationError(f"the sql tool runs exactly one statement; the query has {len(statements)}",
                              hint=_HINT, field="query")
    st = statements[0]
    if st.type != duckdb.StatementType.SELECT:
        kind = str(getattr(st.type, "name", st.type))
        raise ValidationError(f"the sql tool runs read-only SELECT statements only, not {kind}", hint=_HINT,
                              field="query", statement=kind)
    return st


def _check_tree(con: Any, text: str) -> None:
    """Refuse a SELECT whose syntax tree holds anything but read-only query nodes and functions."""
    try:
        doc = json.loads(con.execute("SELECT json_serialize_sql($q)", {"q": text}).fetchone()[0])
    except Exception as exc:  # no json extension, or a parser this code does not know
        raise ValidationError(f"the sql tool cannot check this query, so it does not run it: {exc}", hint=_HINT,
                              field="query") from None
    if doc.get("error"):
        raise ValidationError(f"the sql tool cannot check this query, so it does not run it: "
                              f"{doc.get('error_message', 'unknown error')}", hint=_HINT, field="query")
    todo: list[Any] = [doc.get("statements")]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if (isinstance(kind, str) and kind.endswith("_NODE") and kind not in _QUERY_NODES) or "info_type" in node:
            what = str(kind or node.get("info_type")).removesuffix("_NODE").removesuffix("_QUERY")
            raise ValidationError(f"the sql tool runs read-only SELECT statements only; this one holds a {what} "
                                  "(e.g. in a WITH clause)", hint=_HINT, field="query", statement=what)
        fn = node.get("function_name")
        if isinstance(fn, str) and (fn.lower() in _DENIED_FUNCTIONS or _DENIED_PATTERN.search(fn.lower())):
            raise ValidationError(f"the sql tool does not run the function {fn}() (it runs SQL from a string or "
                                  "changes the engine)", hint=_HINT, field="query", function=fn)
        todo.extend(node.values())


def _connect(duckdb: Any, root: Path, tmp: Path) -> Any:
    con = duckdb.connect(":memory:", config={
        "threads": THREADS, "memory_limit": MEMORY_LIMIT, "temp_directory": str(tmp),
        "max_temp_directory_size": MAX_TEMP, "autoinstall_known_extensions": False,
        "autoload_known_extensions": False, "python_enable_replacements": False})
    try:
        con.execute("SET allowed_directories = $dirs", {"dirs": [str(root) + "/"]})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


@tool(name="sql", version="1.1.0", python_requires=("duckdb>=1.1",), tags=("data",))
def sql(query: str, ctx: ToolContext, max_rows: int = 1000, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Run one read-only SQL query (DuckDB) over files in the workspace, e.g. SELECT * FROM 'sales.csv'.

    Args:
        query: one SELECT statement (WITH … SELECT, FROM-first and DESCRIBE/SUMMARIZE of a query
            count); file paths are relative to the workspace's files directory and may not leave it
        max_rows: most rows returned (at most 100000)
        timeout: seconds before the query is interrupted (at most 300)
    """
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValidationError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds, got {timeout!r}",
                              hint="split the query or aggregate earlier", field="timeout")
    if not 0 <= max_rows <= MAX_ROWS:
        raise ValidationError(f"max_rows must be between 0 and {MAX_ROWS}, got {max_rows!r}",
                              hint="aggregate, or page with LIMIT/OFFSET", field="max_rows")
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError("the sql tool", "tools", "duckdb") from None
    root = files_root(ctx)
    statement = _one_select(duckdb, _absolute_paths(query, root))
    con = _connect(duckdb, root, workspace_tmp(ctx, "duckdb"))
    try:
        _check_tree(con, statement.query)
        return _run(duckdb, con, statement, max_rows, timeout)
    finally:
        con.close()


def _run(duckdb: Any, con: Any, statement: Any, max_rows: int, timeout: float) -> dict[str, Any]:
    """Execute and fetch under a timer that interrupts the connection after ``timeout`` seconds."""
    fired = threading.Event()
    lock = threading.Lock()
    finished = False

    def stop() -> None:
        with lock:
            if not finished:
                fired.set()
                con.interrupt()

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    try:
        cur = con.execute(statement)
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(max_rows + 1) if columns else []
    except duckdb.Error as exc:
        if fired.is_set():
            raise _timed_out(timeout) from None
        if isinstance(exc, duckdb.PermissionException):
            raise ValidationError(f"query refused: {exc}",
                                  hint="the sql tool reads only files inside the workspace's files directory "
                                       "(relative paths; links leading out are refused)", field="query") from None
        raise ValidationError(f"query failed: {exc}", hint="check table (file) and column names",
                              field="query") from None
    finally:
        with lock:
            finished = True
        timer.cancel()
    if fired.is_set():  # an interrupt can also cut a streamed result short without an error
        raise _timed_out(timeout)
    return {"columns": columns, "rows": [list(r) for r in rows[:max_rows]], "truncated": len(rows) > max_rows}


def _timed_out(timeout: float) -> TimeoutExceeded:
    return TimeoutExceeded(f"sql query did not finish within {timeout:g} s and was interrupted",
                           hint="filter or aggregate earlier, add a LIMIT, or pass a larger timeout "
                                f"(at most {MAX_TIMEOUT:g} s)", tool="sql")


TOOLS = [sql]
