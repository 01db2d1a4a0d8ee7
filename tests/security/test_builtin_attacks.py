"""Attacks reported against the built-in tools' shipped defaults, one test (or a few) per attack.

Everything is real: papermill kernels, DuckDB, sockets, the workstation's gate and approvals.
The agent is ``agent:researcher`` (fixture ``agent``), the human ``me``.
"""

from __future__ import annotations

import ast
import http.server
import importlib
import importlib.util
import inspect
import json
import os
import re
import socketserver
import sys
import textwrap
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from emergent import Workstation
from emergent.errors import (
    ApprovalPending,
    ApprovalStaleError,
    PermissionDenied,
    TimeoutExceeded,
    ValidationError,
)
from emergent.tools.spec import RunsCode, SideEffect, ToolContext


@pytest.fixture
def ws(home):
    """The workstation, with 127.0.0.1 on http_get's allow-list (any port)."""
    w = Workstation.open(home, embedder="hashing", tools={"http_allow_hosts": ["127.0.0.1"]})
    yield w
    w.close()


@pytest.fixture
def files(ws) -> Path:
    root = Path(ws.path) / "files"
    root.mkdir(parents=True, exist_ok=True)
    return root


def pending(ws) -> list:
    return ws.autonomy.approvals.list("pending")


# ============================================================== 1. notebook.run
def write_notebook(path: Path, params: str, body: str) -> bytes:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path.read_bytes()


def counting_notebook(files: Path, counter: Path, name: str = "report.ipynb") -> bytes:
    """A notebook whose run appends a line to ``counter`` (outside the workspace)."""
    return write_notebook(files / name, "n = 1", f"with open({str(counter)!r}, 'a') as fh:\n    fh.write('ran\\n')")


def evil_notebook(files: Path, pwn: Path, name: str = "report.ipynb") -> str:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(pwn)!r}, 'w').write('pwned')")]
    return nbformat.writes(nb)


def test_notebook_parameter_name_with_code_is_refused_before_anything_runs(ws, me, agent, files, tmp_path):
    pwn = tmp_path / "pwn"
    counting_notebook(files, tmp_path / "count")
    ws.autonomy.add_rule("agent:researcher", "notebook.run", "allow", resource="report.ipynb", by=me)
    attack = {f"x = 1\nopen({str(pwn)!r},'w').write('x')\ny": 2}
    for who in (agent, me):
        with pytest.raises(ValidationError, match="not a Python identifier"):
            ws.tools.call("notebook.run", {"path": "report.ipynb", "parameters": attack}, principal=who, wait=False)
    assert pending(ws) == []  # refused before a human is asked to approve it
    for bad in ("class", "__builtins__", "__import__", "a.b", "a b", "1x", "", "x;y"):
        with pytest.raises(ValidationError, match="identifier|dunder"):
            ws.tools.call("notebook.run", {"path": "report.ipynb", "parameters": {bad: 1}}, principal=me)
    for bad_value in (float("nan"), float("inf"), {1: "int key"}, {"s": {2, 3}}, (1, 2), b"bytes"):
        with pytest.raises(ValidationError, match="JSON|non-string key|finite"):
            ws.tools.call("notebook.run", {"path": "report.ipynb", "parameters": {"v": bad_value}}, principal=me)
    assert not pwn.exists() and not (tmp_path / "count").exists()


def test_notebook_parameter_values_with_quotes_backslashes_newlines_cannot_inject_code(ws, me, files, tmp_path):
    pwn = str(tmp_path / "pwn")
    values: dict[str, Any] = {
        "dq": f'"; open({pwn!r}, "w").write("x"); "',
        "sq": f"'; open({pwn!r}, 'w').write('x'); '",
        "tq": f'"""\nopen({pwn!r}, "w").write("x")\n"""',
        "tq1": f"'''\nopen({pwn!r}, 'w').write('x')\n'''",
        "bs": "\\",
        "bsq": f'\\"; open({pwn!r}, "w").write("x") #',
        "nl": f"x\nopen({pwn!r}, 'w').write('x')\n",
        "ctl": "a\rb\u2028c\u2029d\x00e\x0cf\x1b",
        "uni": "é😀\u202e",
        "fmt": "{open(pwn,'w')}{0}{pm}",
        "nested": {"k\"ey\n": ["\\", "'''", {'"""': None}], "n": 1.5, "b": True, "i": -(2 ** 70)},
    }
    names = list(values)
    write_notebook(files / "echo.ipynb", "\n".join(f"{n} = None" for n in names),
                   f"import json\nprint(json.dumps({{{', '.join(f'{n!r}: {n}' for n in names)}}}))")
    out = ws.tools.call("notebook.run", {"path": "echo.ipynb", "parameters": values, "output": "runs/echo.ipynb"},
                        principal=me)
    import nbformat

    executed = nbformat.read(files / out["output"], as_version=4)
    printed = executed.cells[-1].outputs[0]["text"]
    assert json.loads(printed) == values  # every value arrived as data, byte for byte
    assert not Path(pwn).exists()


def test_notebook_run_by_an_agent_waits_for_approval_whatever_a_rule_says(ws, me, agent, files, tmp_path):
    counter = tmp_path / "count"
    counting_notebook(files, counter)
    spec = ws.tools.resolve("notebook.run")
    assert (spec.side_effect, spec.runs_code) == (SideEffect.EXECUTE, RunsCode.HOST)
    ws.autonomy.add_rule("agent:researcher", "notebook.run", "allow", resource="report.ipynb", by=me)
    with pytest.raises(ApprovalPending) as info:
        ws.tools.call("notebook.run", {"path": "report.ipynb"}, principal=agent, confidence=1.0, wait=False)
    a = ws.autonomy.approvals.get(info.value.approval)
    assert a.status == "pending" and a.actor == "agent:researcher" and a.tool == spec.key
    assert set(a.files) == {"report.ipynb"}  # bound to the notebook's bytes
    scheduler = ws.principals.service("scheduler")
    with pytest.raises(ApprovalPending):
        ws.tools.call("notebook.run", {"path": "report.ipynb"}, principal=scheduler, wait=False)
    assert not counter.exists()


def _approved_agent_run(ws, me, agent) -> str:
    with pytest.raises(ApprovalPending) as info:
        ws.tools.call("notebook.run", {"path": "report.ipynb", "output": "runs/report.ipynb"}, principal=agent,
                      wait=False)
    ws.autonomy.approvals.approve(info.value.approval, by=me)
    return str(info.value.approval)


def test_notebook_approve_then_swap_with_files_write_is_stale(ws, me, agent, files, tmp_path):
    counter, pwn = tmp_path / "count", tmp_path / "pwn"
    counting_notebook(files, counter)
    aid = _approved_agent_run(ws, me, agent)
    ws.autonomy.add_rule("agent:researcher", "files.write", "allow", by=me)
    ws.tools.call("files.write", {"path": "report.ipynb", "content": evil_notebook(files, pwn)}, principal=agent,
                  confidence=0.9)
    with pytest.raises(ApprovalStaleError, match="report.ipynb"):
        ws.tools.resume(aid)
    assert not pwn.exists() and not counter.exists() and not (files / "runs" / "report.ipynb").exists()
    assert ws.autonomy.approvals.get(aid).status == "approved"  # not consumed by the refused run


def test_notebook_approve_then_swap_by_writing_the_file_directly_is_stale(ws, me, agent, files, tmp_path):
    counter, pwn = tmp_path / "count", tmp_path / "pwn"
    counting_notebook(files, counter)
    aid = _approved_agent_run(ws, me, agent)
    (files / "report.ipynb").write_text(evil_notebook(files, pwn))
    with pytest.raises(ApprovalStaleError):
        ws.tools.resume(aid)
    assert not pwn.exists() and not counter.exists()


def test_notebook_unchanged_approval_runs_once_and_not_for_another_tool(ws, me, agent, files, tmp_path):
    counter = tmp_path / "count"
    counting_notebook(files, counter)
    aid = _approved_agent_run(ws, me, agent)
    a = ws.autonomy.approvals.get(aid)
    for other in ("files.write@1.0.0", "python@1.0.0"):
        with pytest.raises(PermissionDenied, match="is for notebook.run"):
            ws.autonomy.approvals.consume(aid, principal=agent, tool=other, digest=a.digest, files=a.files or {},
                                          call_id="attack")
    assert ws.autonomy.approvals.get(aid).status == "approved"
    out = ws.tools.resume(aid)
    assert out["output"] == "runs/report.ipynb" and counter.read_text() == "ran\n"
    assert ws.autonomy.approvals.get(aid).status == "consumed"
    with pytest.raises(PermissionDenied, match="already used"):
        ws.tools.resume(aid)
    assert counter.read_text() == "ran\n"  # ran exactly once


def test_notebook_run_executes_the_approved_bytes_not_the_file_on_disk(ws, files, tmp_path):
    counter, pwn = tmp_path / "count", tmp_path / "pwn"
    approved = counting_notebook(files, counter)
    (files / "report.ipynb").write_text(evil_notebook(files, pwn))  # what is on disk now
    spec = ws.tools.resolve("notebook.run")
    kwargs = spec.validate_args({"path": "report.ipynb", "output": "runs/r.ipynb"})
    spec.invoke(kwargs, ToolContext(workspace=Path(ws.path), contents={"report.ipynb": approved}))
    assert counter.read_text() == "ran\n" and not pwn.exists()
    with pytest.raises(Exception, match="has none"):
        spec.invoke(kwargs, ToolContext(workspace=Path(ws.path)))  # never falls back to reading the file


# ============================================================== 2. sql
def test_sql_explain_analyze_copy_is_refused_and_writes_nothing(ws, me, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for q in ("EXPLAIN ANALYZE COPY (SELECT 42) TO 'a.csv'", f"EXPLAIN ANALYZE COPY (SELECT 42) TO '{files}/a.csv'",
              "EXPLAIN SELECT 1"):
        with pytest.raises(ValidationError, match="read-only SELECT statements only, not EXPLAIN"):
            ws.tools.call("sql", {"query": q}, principal=me)
    assert not (tmp_path / "a.csv").exists() and not (files / "a.csv").exists()


@pytest.mark.parametrize("query", [
    "COPY (SELECT 1) TO 'x.csv'", "PRAGMA version", "SET threads = 8", "RESET threads", "ATTACH 'x.db'",
    "INSTALL httpfs", "LOAD httpfs", "EXPORT DATABASE 'dump'", "CALL pragma_version()", "CHECKPOINT",
    "CREATE TABLE t AS SELECT 1", "INSERT INTO t VALUES (1)", "DELETE FROM t", "DROP TABLE t", "DETACH x",
    "USE memory", "BEGIN", "PREPARE p AS SELECT 1", "EXECUTE p", "VACUUM", "SET VARIABLE v = 1",
    "PIVOT (SELECT 1 AS a) ON a",
])
def test_sql_statements_other_than_select_never_reach_duckdb(ws, me, files, query):
    with pytest.raises(ValidationError, match="SELECT"):
        ws.tools.call("sql", {"query": query}, principal=me)
    assert list(files.iterdir()) == []


def test_sql_more_than_one_statement_is_refused(ws, me, files):
    for q in ("SELECT 1; SELECT 2", "SELECT 1; COPY (SELECT 1) TO 'x.csv'", "SELECT 1 /* ; */; COPY (SELECT 1) TO 'x.csv'"):
        with pytest.raises(ValidationError, match="exactly one statement"):
            ws.tools.call("sql", {"query": q}, principal=me)
    assert list(files.iterdir()) == []


def test_sql_copy_hidden_in_a_cte_subquery_comment_or_string_is_refused(ws, me, files):
    (files / "x.csv").write_text("a\n1\n")
    for q in ("WITH c AS (COPY (SELECT 1) TO 'x.csv') SELECT 1",
              "WITH c AS (COPY (SELECT 1) TO 'new.csv') SELECT * FROM 'x.csv'",
              "WITH c AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1",
              "WITH c AS (DELETE FROM t RETURNING *) SELECT 1",
              "SELECT * FROM (COPY (SELECT 1) TO 'new.csv')",
              "SELECT * FROM query('COPY (SELECT 1) TO ''new.csv''')",
              "SELECT * FROM query('WITH c AS (COPY (SELECT 1) TO ''new.csv'') SELECT 1')",
              "SELECT * FROM query_table('x')",
              "SELECT * FROM json_execute_serialized_sql('{}')",
              "SELECT * FROM checkpoint()",
              "SELECT * FROM enable_logging()"):
        with pytest.raises(ValidationError):
            ws.tools.call("sql", {"query": q}, principal=me)
    # a COPY in a comment is a comment: the SELECT runs, nothing is written
    out = ws.tools.call("sql", {"query": "SELECT 7 -- ; COPY (SELECT 1) TO 'new.csv'"}, principal=me)
    assert out["rows"] == [[7]]
    assert sorted(p.name for p in files.iterdir()) == ["x.csv"] and (files / "x.csv").read_text() == "a\n1\n"


def test_sql_runaway_query_is_interrupted_by_a_real_timeout(ws, me):
    for q in ("SELECT count(*) FROM range(1000000000000)",
              "SELECT i FROM range(1000000000000) t(i) WHERE i = -1"):  # streamed: no error, just cut short
        t0 = time.monotonic()
        with pytest.raises(TimeoutExceeded, match="did not finish within 1 s"):
            ws.tools.call("sql", {"query": q, "timeout": 1}, principal=me)
        assert time.monotonic() - t0 < 10
    with pytest.raises(ValidationError, match="timeout"):
        ws.tools.call("sql", {"query": "SELECT 1", "timeout": 10_000}, principal=me)
    assert ws.tools.call("sql", {"query": "SELECT 1"}, principal=me)["rows"] == [[1]]


def test_sql_temp_directory_is_inside_the_workspace_and_the_config_is_locked(ws, me, files, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = ws.tools.call("sql", {"query": "SELECT current_setting('temp_directory'), "
                                         "current_setting('enable_external_access'), "
                                         "current_setting('lock_configuration'), current_setting('threads')"},
                        principal=me)
    temp, external, locked, threads = out["rows"][0]
    assert Path(temp) == Path(ws.path).resolve() / "tmp" / "duckdb" and not Path(temp).is_relative_to(files)
    assert (external, locked) == (False, True) and threads <= 2
    # a sort bigger than the memory it may use spills there, not into the cwd
    ws.tools.call("sql", {"query": "SELECT count(*) FROM (SELECT i, md5(i::VARCHAR) m FROM range(2000000) t(i) "
                                   "ORDER BY m)"}, principal=me)
    assert list(cwd.iterdir()) == []


def test_sql_cannot_read_etc_passwd_or_files_outside_the_jail(ws, me, files):
    (Path(ws.path) / "secret.csv").write_text("k\nsecret\n")
    for q in ("SELECT * FROM read_csv('/etc/passwd', sep=':')", "SELECT * FROM '/etc/passwd'",
              "SELECT * FROM read_text('/etc/passwd')", "SELECT * FROM read_blob('/etc/passwd')",
              "SELECT * FROM read_text('../secret.csv')", "SELECT * FROM '../secret.csv'",
              f"SELECT * FROM read_text('{files}/../secret.csv')", "SELECT * FROM glob('/etc/*')",
              "SELECT * FROM glob('../*')", "SELECT * FROM read_text('/proc/self/environ')",
              "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')"):
        with pytest.raises(ValidationError, match="refused|Permission|disabled|does not exist"):
            ws.tools.call("sql", {"query": q}, principal=me)


def test_sql_symlink_in_the_files_dir_pointing_outside_is_refused(ws, me, files, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("k\nsecret\n")
    (files / "link.csv").symlink_to(outside / "secret.csv")
    (files / "dir").symlink_to(outside)
    for q in ("SELECT * FROM 'link.csv'", "SELECT * FROM read_text('link.csv')", "SELECT * FROM 'dir/secret.csv'",
              "SELECT * FROM read_text('dir/secret.csv')"):
        with pytest.raises(ValidationError, match="refused|Permission|disabled"):
            ws.tools.call("sql", {"query": q}, principal=me)
    for q in ("SELECT * FROM glob('dir/*')", "SELECT * FROM glob('**')"):
        try:
            rows = ws.tools.call("sql", {"query": q}, principal=me)["rows"]
        except ValidationError:
            continue
        assert not any("secret" in str(r) for r in rows)


# ============================================================== 3. files
def test_files_list_pattern_with_dotdot_cannot_list_outside_the_jail(ws, me, files):
    (files / "a.txt").write_text("a")
    for pattern in ("../../../../etc/pass*", "/etc/pass*", "**/../../*", "../*"):
        with pytest.raises(ValidationError, match="pattern"):
            ws.tools.call("files.list", {"pattern": pattern}, principal=me)
    for path in ("../", "..", "/etc", "a/../.."):
        with pytest.raises(ValidationError, match="leaves the workspace"):
            ws.tools.call("files.list", {"path": path}, principal=me)
    assert ws.tools.call("files.list", {"pattern": "**/*.txt"}, principal=me) == ["a.txt"]


def test_files_list_never_lists_through_links_pointing_outside(ws, me, files, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (files / "sub").mkdir()
    (files / "sub" / "ok.txt").write_text("ok")
    (files / "etc").symlink_to("/etc")
    (files / "out").symlink_to(outside)
    (files / "sub" / "pw").symlink_to("/etc/passwd")
    listed = ws.tools.call("files.list", {}, principal=me)
    assert listed == ["sub/ok.txt"]
    for pattern in ("pass*", "*secret*", "etc/*"):
        assert ws.tools.call("files.list", {"pattern": pattern}, principal=me) == []
    with pytest.raises(ValidationError, match="leaves the workspace"):
        ws.tools.call("files.list", {"path": "out"}, principal=me)


def test_files_read_and_write_do_not_follow_symlinks_pointing_outside(ws, me, files, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target.txt"
    target.write_text("original")
    (files / "etc").symlink_to("/etc")
    (files / "t.txt").symlink_to(target)
    (files / "out").symlink_to(outside)
    (files / "dangling").symlink_to(outside / "created.txt")
    for path in ("etc/passwd", "t.txt", "out/target.txt"):
        with pytest.raises(ValidationError, match="leaves the workspace.*symbolic link"):
            ws.tools.call("files.read", {"path": path}, principal=me)
    for path in ("t.txt", "out/target.txt", "out/new.txt", "out/deep/new.txt", "dangling", "etc/motd"):
        with pytest.raises(ValidationError, match="leaves the workspace.*symbolic link"):
            ws.tools.call("files.write", {"path": path, "content": "pwned"}, principal=me)
    assert target.read_text() == "original"
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]
    # deleting a link removes the link, never what it points to
    assert ws.tools.call("files.delete", {"path": "t.txt"}, principal=me) is True
    assert not (files / "t.txt").is_symlink() and target.read_text() == "original"
    with pytest.raises(ValidationError, match="leaves the workspace"):
        ws.tools.call("files.delete", {"path": "out/target.txt"}, principal=me)
    assert target.exists()


def test_files_hard_links_and_fifos_are_refused(ws, me, files, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("original")
    os.link(outside, files / "hard.txt")
    with pytest.raises(ValidationError, match="hard link"):
        ws.tools.call("files.read", {"path": "hard.txt"}, principal=me)
    with pytest.raises(ValidationError, match="hard link"):
        ws.tools.call("files.write", {"path": "hard.txt", "content": "pwned"}, principal=me)
    assert outside.read_text() == "original"
    os.mkfifo(files / "fifo")
    t0 = time.monotonic()
    with pytest.raises(ValidationError, match="not a regular file"):
        ws.tools.call("files.read", {"path": "fifo"}, principal=me)
    assert time.monotonic() - t0 < 5


def test_files_non_canonical_paths_cannot_slip_past_a_deny_rule(ws, me, agent, files):
    (files / "secrets").mkdir()
    (files / "secrets" / "k.txt").write_text("key")
    (files / "public").mkdir()
    ws.autonomy.add_rule("agent:researcher", "files.read", "deny", resource="secrets/*", by=me)
    with pytest.raises(PermissionDenied):
        ws.tools.call("files.read", {"path": "secrets/k.txt"}, principal=agent)
    for path in ("./secrets/k.txt", "secrets//k.txt", "public/../secrets/k.txt", "secrets/./k.txt",
                 str(files / "secrets" / "k.txt")):
        with pytest.raises((ValidationError, PermissionDenied)) as info:
            ws.tools.call("files.read", {"path": path}, principal=agent)
        assert "key" not in str(info.value)


# ============================================================== 4. http_get
class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    requests = 0
    sent = 0


BODY = 200 * 1024 * 1024
_CHUNK = b"a" * (1024 * 1024)


def _gzip_bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    return b"".join([*(c.compress(zeros) for _ in range(size // len(zeros))), c.flush()])


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv: Any = self.server
        srv.requests += 1
        if self.path == "/small":
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/bomb":
            body = srv.bomb
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")  # though the client asked for identity
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(BODY))
        self.end_headers()
        try:
            while srv.sent < BODY:
                self.wfile.write(_CHUNK)
                srv.sent += len(_CHUNK)
        except OSError:  # the client stopped reading and hung up
            pass

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.bomb = _gzip_bomb(100 * 1024 * 1024)  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _peak_while(fn) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_http_get_large_body_is_streamed_and_capped(ws, me, server):
    from emergent.tools.builtin.web import MAX_BYTES

    srv, url = server
    assert ws.tools.call("http_get", {"url": f"{url}/small"}, principal=me)["text"] == "hello"  # warm imports
    out, peak = _peak_while(lambda: ws.tools.call("http_get", {"url": f"{url}/big"}, principal=me))
    assert out["truncated"] is True and len(out["text"]) == MAX_BYTES and out["text"] == "a" * MAX_BYTES
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a {BODY / 2**20:.0f} MiB body"
    time.sleep(0.2)
    assert srv.sent < BODY // 4  # the client hung up instead of draining the body


def test_http_get_gzip_bomb_is_inflated_in_bounded_steps(ws, me, server):
    from emergent.tools.builtin.web import MAX_BYTES

    _, url = server
    ws.tools.call("http_get", {"url": f"{url}/small"}, principal=me)
    out, peak = _peak_while(lambda: ws.tools.call("http_get", {"url": f"{url}/bomb"}, principal=me))
    assert out["truncated"] is True and len(out["text"]) == MAX_BYTES
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_http_get_paused_workspace_refuses_an_agents_request(ws, me, agent, server):
    srv, url = server
    assert ws.tools.resolve("http_get").network
    assert ws.tools.call("http_get", {"url": f"{url}/small"}, principal=agent)["text"] == "hello"
    before = srv.requests
    ws.autonomy.pause(by=me, reason="incident review")
    with pytest.raises(PermissionDenied, match="paused"):
        ws.tools.call("http_get", {"url": f"{url}/small"}, principal=agent)
    assert srv.requests == before  # nothing left the machine
    assert ws.tools.call("http_get", {"url": f"{url}/small"}, principal=me)["text"] == "hello"  # humans still may
    ws.autonomy.resume(by=me)
    assert ws.tools.call("http_get", {"url": f"{url}/small"}, principal=agent)["text"] == "hello"


# ============================================================== 5. memory scopes
def test_agent_recalls_its_own_scope_without_approval(ws, me, agent):
    ws.tools.call("memory.remember", {"text": "the staging db is on port 5433", "scope": "researcher"}, principal=me)
    for args in ({"query": "staging db port"}, {"query": "staging db port", "scope": "researcher"}):
        hits = ws.tools.call("memory.recall", args, principal=agent)
        assert hits and hits[0]["text"] == "the staging db is on port 5433"
    assert pending(ws) == []


def test_agent_remember_in_its_own_scope_asks_unless_a_rule_and_confidence(ws, me, agent):
    with pytest.raises(ApprovalPending) as info:
        ws.tools.call("memory.remember", {"text": "note one"}, principal=agent, wait=False)
    assert ws.autonomy.approvals.get(info.value.approval).args["scope"] == "researcher"  # the runner filled it
    ws.autonomy.add_rule("agent:researcher", "memory.remember", "allow", by=me)
    with pytest.raises(ApprovalPending):  # a rule alone: no confidence counts as 0
        ws.tools.call("memory.remember", {"text": "note two"}, principal=agent, wait=False)
    mid = ws.tools.call("memory.remember", {"text": "note three"}, principal=agent, confidence=0.9)
    hits = ws.tools.call("memory.recall", {"query": "note three", "scope": "researcher"}, principal=me)
    assert mid in [h["id"] for h in hits]


def test_agent_cannot_reach_another_users_scope_by_default(ws, me, agent):
    ws.tools.call("memory.remember", {"text": "alice's salary is 90k", "scope": "assistant/alice"}, principal=me)
    with pytest.raises(PermissionDenied, match="own memory scope"):
        ws.tools.call("memory.recall", {"query": "salary", "scope": "assistant/alice"}, principal=agent)
    with pytest.raises(PermissionDenied, match="own memory scope"):
        ws.tools.call("memory.remember", {"text": "x", "scope": "assistant/alice"}, principal=agent, confidence=1.0)
    for sneaky in ("assistant", "researcherx", "researcher2/alice"):
        with pytest.raises(PermissionDenied):
            ws.tools.call("memory.recall", {"query": "salary", "scope": sneaky}, principal=agent)
    assert pending(ws) == []


def test_a_humans_rule_lets_an_agent_into_another_scope(ws, me, agent):
    ws.tools.call("memory.remember", {"text": "alice prefers tea", "scope": "assistant/alice"}, principal=me)
    ws.autonomy.add_rule("agent:researcher", "memory.*", "allow", resource="assistant/*", by=me)
    hits = ws.tools.call("memory.recall", {"query": "what does alice prefer", "scope": "assistant/alice"},
                         principal=agent)
    assert hits[0]["text"] == "alice prefers tea"
    ws.tools.call("memory.remember", {"text": "alice also likes scones", "scope": "assistant/alice"},
                  principal=agent, confidence=0.9)
    with pytest.raises(PermissionDenied):  # the rule covers assistant/*, not other agents' scopes
        ws.tools.call("memory.recall", {"query": "x", "scope": "other/bob"}, principal=agent)


def test_a_human_uses_any_scope(ws, me):
    for scope in ("assistant/alice", "researcher", "other/bob/s1"):
        mid = ws.tools.call("memory.remember", {"text": f"fact for {scope}", "scope": scope}, principal=me)
        assert ws.tools.call("memory.recall", {"query": f"fact for {scope}", "scope": scope}, principal=me)[0][
            "id"] == mid


# ============================================================== 6. every tool declares whether it runs code
HOST, SANDBOX, QUERY = "host", "sandbox", "query"
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_HOST_CALL = re.compile(r"^(subprocess|papermill|pty|runpy|multiprocessing)(\.|$)|^os\.(system|popen|exec\w*|spawn\w*|"
                        r"posix_spawn\w*|fork\w*)$|^builtins\.(exec|eval|__import__)$|^importlib\.import_module$")
_SANDBOX_CALL = re.compile(r"(^|\.)Sandbox$|(^|\.)sandbox\.(run|python|shell)$")
#: tools that hand their input to an engine in-process, confined instead of sandboxed, and why
CONFINED = {"sql": "runs one parsed, read-only SELECT on a DuckDB connection with external access off, "
                   "allowed_directories = the files jail and the configuration locked (tests above)"}


class CodeRunScanner:
    """Follows a tool's code (its function, ``reads``, the functions, classes and methods of its
    own package and of emergent that they call, ``self.`` methods) and reports calls that run
    code: subprocess, os.system/exec*/spawn*, papermill, exec/eval, duckdb.connect, the Sandbox.
    The Sandbox is where it stops: what runs inside it is the sandbox's business."""

    def __init__(self) -> None:
        self._mods: dict[str, Any] = {}

    def _mod(self, name: str) -> Any:
        if name not in self._mods:
            mod = importlib.import_module(name)
            tree = ast.parse(inspect.getsource(mod))
            funcs = {n.name: n for n in tree.body if isinstance(n, _FUNCS)}
            classes = {n.name: {m.name: m for m in n.body if isinstance(m, _FUNCS)}
                       for n in tree.body if isinstance(n, ast.ClassDef)}
            top = [n for n in tree.body if not isinstance(n, (*_FUNCS, ast.ClassDef))]
            self._mods[name] = (mod, funcs, classes, self._aliases(top, mod))
        return self._mods[name]

    @staticmethod
    def _aliases(nodes: list[ast.AST], mod: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for top in nodes:
            for node in ast.walk(top):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom):
                    base = importlib.util.resolve_name("." * node.level + (node.module or ""), mod.__package__) \
                        if node.level else node.module
                    for a in node.names:
                        out[a.asname or a.name] = f"{base}.{a.name}"
        return out

    @staticmethod
    def _dotted(expr: ast.AST) -> str | None:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, ast.Attribute):
            head = CodeRunScanner._dotted(expr.value)
            return None if head is None else f"{head}.{expr.attr}"
        return None

    def scan(self, starts: list[tuple[str, ast.AST, str | None]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        seen: set[tuple[str, int]] = set()
        own = {"emergent", *(m.split(".")[0] for m, _, _ in starts)}  # packages whose code is followed
        todo = list(starts)
        while todo:
            modname, node, cls = todo.pop()
            if (modname, node.lineno) in seen:
                continue
            seen.add((modname, node.lineno))
            mod, funcs, classes, aliases = self._mod(modname)
            aliases = {**aliases, **self._aliases([node], mod)}
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                name = self._dotted(call.func)
                if name is None:
                    continue
                head, _, rest = name.partition(".")
                if head in ("self", "cls") and cls and rest in classes.get(cls, {}):
                    todo.append((modname, classes[cls][rest], cls))
                    continue
                if head in aliases:
                    full = aliases[head] + (f".{rest}" if rest else "")
                elif head in funcs or head in classes:
                    full = f"{modname}.{name}"
                elif not rest and head in ("exec", "eval", "__import__"):
                    full = f"builtins.{head}"
                else:
                    full = name
                kind = HOST if _HOST_CALL.search(full) else SANDBOX if _SANDBOX_CALL.search(full) else \
                    QUERY if full == "duckdb.connect" else None
                if kind:
                    found.add((kind, f"{modname}:{call.lineno} {full}()"))
                elif full.split(".")[0] in own:
                    todo.extend(self._resolve(full))
        return found

    def _resolve(self, full: str) -> list[tuple[str, ast.AST, str | None]]:
        parts = full.split(".")
        for i in range(len(parts) - 1, 0, -1):
            modname, attr = ".".join(parts[:i]), parts[i:]
            try:
                _, funcs, classes, _ = self._mod(modname)
            except (ImportError, TypeError, OSError):
                continue
            if len(attr) == 1 and attr[0] in funcs:
                return [(modname, funcs[attr[0]], None)]
            if attr[0] in classes:
                methods = classes[attr[0]]
                wanted = [attr[1]] if len(attr) == 2 else ["__init__"]
                return [(modname, methods[m], attr[0]) for m in wanted if m in methods]
            return []
        return []

    def _function(self, fn: Any) -> tuple[str, ast.AST, str | None] | None:
        code = getattr(fn, "__code__", None)
        mod = inspect.getmodule(code) if code is not None else None
        if mod is None:
            return None
        _, funcs, classes, _ = self._mod(mod.__name__)
        first = code.co_firstlineno
        for cls, node in [*((None, f) for f in funcs.values()),
                          *((c, m) for c, ms in classes.items() for m in ms.values())]:
            lines = [node.lineno, *(d.lineno for d in node.decorator_list)]
            if first in lines:
                return mod.__name__, node, cls
        for node in ast.walk(ast.parse(inspect.getsource(mod))):  # a nested function
            if isinstance(node, _FUNCS) and first in (node.lineno, *(d.lineno for d in node.decorator_list)):
                return mod.__name__, node, None
        return None

    def starts(self, spec: Any) -> list[tuple[str, ast.AST, str | None]]:
        out = [s for s in (self._function(spec.func), self._function(spec.reads) if spec.reads else None) if s]
        for value in inspect.getclosurevars(spec.func).nonlocals.values():
            if inspect.isclass(value) and value.__module__.startswith("emergent."):
                for klass in value.__mro__:  # a class tool, or an integration's client class: all its methods
                    if klass.__module__.startswith("emergent.") or klass is value:
                        _, _, classes, _ = self._mod(klass.__module__)
                        out += [(klass.__module__, m, klass.__name__) for m in classes.get(klass.__name__, {}).values()]
        return out

    def violations(self, specs: list[Any]) -> dict[str, list[str]]:
        bad: dict[str, list[str]] = {}
        for spec in specs:
            found = self.scan(self.starts(spec))
            kinds = {k for k, _ in found}
            where = sorted(w for _, w in found)
            problems = []
            if HOST in kinds and spec.runs_code != RunsCode.HOST:
                problems.append(f"runs code on the host ({where}) but declares runs_code={spec.runs_code}")
            elif SANDBOX in kinds and spec.runs_code == RunsCode.NO:
                problems.append(f"runs code in the sandbox ({where}) but declares runs_code=no")
            if QUERY in kinds and spec.runs_code == RunsCode.NO and spec.name not in CONFINED:
                problems.append(f"hands input to a query engine ({where}) without declaring it or a CONFINED reason")
            if spec.runs_code != RunsCode.NO and not kinds:
                problems.append(f"declares runs_code={spec.runs_code} but the scanner sees no code being run")
            if spec.name in CONFINED and QUERY not in kinds:
                problems.append("is listed in CONFINED but no longer hands input to a query engine")
            if problems:
                bad[spec.name] = problems
        return bad


def all_tool_specs() -> list[Any]:
    from emergent.tools.builtin import TOOLS
    from emergent.tools.integrations import tool_specs

    return [*TOOLS, *tool_specs()]


def test_every_builtin_and_integration_tool_that_runs_code_declares_it():
    specs = all_tool_specs()
    assert len(specs) > 30  # the integrations are there too
    assert CodeRunScanner().violations(specs) == {}
    declared = {s.name: s.runs_code for s in specs if s.runs_code != RunsCode.NO}
    assert declared == {"python": RunsCode.SANDBOX, "shell": RunsCode.SANDBOX, "notebook.run": RunsCode.HOST}


FORGETFUL = '''
import os
from emergent.tools.spec import RunsCode, SideEffect, ToolContext, tool
from {pkg}.helpers import helper


@tool(name="forgets_subprocess")
def forgets_subprocess(x: str) -> str:
    """Runs a command through a helper in another module."""
    return helper(x)


@tool(name="forgets_eval")
def forgets_eval(x: str) -> str:
    """Evaluates its input."""
    return str(eval(x))


@tool(name="forgets_os_system")
def forgets_os_system(x: str) -> int:
    """Runs a shell command."""
    return _run(x)


def _run(x):
    return os.system(x)


@tool(name="forgets_papermill")
def forgets_papermill(path: str) -> None:
    """Runs a notebook."""
    import papermill as pm
    pm.execute_notebook(path, None)


@tool(name="forgets_sandbox")
def forgets_sandbox(code: str, ctx: ToolContext) -> str:
    """Runs code in the sandbox without saying so."""
    return ctx.sandbox.python(code).stdout


@tool(name="forgets_duckdb")
def forgets_duckdb(q: str) -> list:
    """Queries with DuckDB."""
    import duckdb
    return duckdb.connect().execute(q).fetchall()


@tool(name="declares_host", side_effect=SideEffect.EXECUTE, runs_code=RunsCode.HOST)
def declares_host(x: str) -> str:
    """Honest about running host code."""
    return helper(x)


@tool(name="claims_sandbox", runs_code=RunsCode.SANDBOX)
def claims_sandbox(x: str) -> str:
    """Declares a sandbox it never uses."""
    return x


@tool(name="pure")
def pure(x: str) -> str:
    """Runs nothing."""
    return x.upper()


TOOLS = [forgets_subprocess, forgets_eval, forgets_os_system, forgets_papermill, forgets_sandbox, forgets_duckdb,
         declares_host, claims_sandbox, pure]
'''


def test_the_runs_code_check_catches_a_tool_that_forgets(tmp_path, monkeypatch):
    pkg = "forgetful_tools_" + str(os.getpid())
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "helpers.py").write_text(textwrap.dedent('''
        import subprocess as sp


        def helper(x):
            return sp.run(["echo", x], capture_output=True, text=True).stdout
    '''))
    (tmp_path / pkg / "tools.py").write_text(FORGETFUL.format(pkg=pkg))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        mod = importlib.import_module(f"{pkg}.tools")
        bad = CodeRunScanner().violations(mod.TOOLS)
    finally:
        for name in [m for m in sys.modules if m.startswith(pkg)]:
            del sys.modules[name]
    assert set(bad) == {"forgets_subprocess", "forgets_eval", "forgets_os_system", "forgets_papermill",
                        "forgets_sandbox", "forgets_duckdb", "claims_sandbox"}
    assert "helpers" in " ".join(bad["forgets_subprocess"]) and "subprocess.run" in " ".join(bad["forgets_subprocess"])
