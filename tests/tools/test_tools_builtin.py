"""Built-in tools through the workstation: files jail, sql, http_get allow-list, memory, code, notebooks."""

import http.server
import json
import threading
from pathlib import Path

import pytest

from emergent import Workstation
from emergent.errors import PermissionDenied, SandboxLimitError, TransientError, ValidationError
from emergent.tools.builtin import TOOLS
from emergent.tools.spec import RunsCode, SideEffect


@pytest.fixture
def ws(home):
    w = Workstation.open(home, embedder="hashing", tools={"http_allow_hosts": ["127.0.0.1"]})
    yield w
    w.close()


@pytest.fixture
def tools(ws):
    return ws.tools


def test_files_are_jailed_to_the_workspace(tools, me):
    assert tools.call("files.write", {"path": "notes/a.txt", "content": "hello"}, principal=me) == {
        "path": "notes/a.txt", "bytes": 5}
    assert tools.call("files.read", {"path": "notes/a.txt"}, principal=me) == "hello"
    assert tools.call("files.list", {}, principal=me) == ["notes/a.txt"]
    assert tools.call("files.list", {"path": "notes", "pattern": "*.txt"}, principal=me) == ["notes/a.txt"]
    for bad in ("../emergent.db", "/etc/passwd", "notes/../../emergent.db"):
        with pytest.raises(ValidationError, match="leaves the workspace"):
            tools.call("files.read", {"path": bad}, principal=me)
    with pytest.raises(ValidationError, match="canonical form"):
        tools.call("files.read", {"path": "./notes/a.txt"}, principal=me)
    (tools.workspace / "files" / "link").symlink_to("/etc")
    with pytest.raises(ValidationError, match="leaves the workspace"):
        tools.call("files.read", {"path": "link/passwd"}, principal=me)
    assert tools.call("files.delete", {"path": "notes/a.txt"}, principal=me) is True
    assert tools.call("files.list", {}, principal=me) == []


def test_sql_queries_workspace_files_read_only(tools, me):
    tools.call("files.write", {"path": "sales.csv", "content": "region,amount\neu,3\nus,4\neu,5\n"}, principal=me)
    out = tools.call("sql", {"query": "SELECT region, sum(amount) AS total FROM 'sales.csv' GROUP BY 1 ORDER BY 1"},
                     principal=me)
    assert out == {"columns": ["region", "total"], "rows": [["eu", 8], ["us", 4]], "truncated": False}
    assert tools.call("sql", {"query": "SELECT * FROM 'sales.csv'", "max_rows": 2}, principal=me)["truncated"]
    with pytest.raises(ValidationError, match="read-only SELECT statements only, not COPY"):
        tools.call("sql", {"query": "COPY (SELECT 1) TO 'x.csv'"}, principal=me)
    with pytest.raises(ValidationError, match="Permission|disabled"):
        tools.call("sql", {"query": "SELECT * FROM read_text('/etc/hostname')"}, principal=me)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/flaky" and not getattr(self.server, "flaked", False):
            self.server.flaked = True  # type: ignore[attr-defined]
            self.send_response(503)
            self.end_headers()
            return
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://example.com/")
            self.end_headers()
            return
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_get_fetches_allowed_hosts_and_retries_5xx(tools, server, me):
    out = tools.call("http_get", {"url": f"{server}/hello"}, principal=me)
    assert json.loads(out["text"]) == {"path": "/hello"} and out["truncated"] is False
    assert tools.call("http_get", {"url": f"{server}/flaky"}, principal=me)["status"] == 200
    stats = {s.tool: s for s in tools.stats("http_get")}
    assert stats["http_get"].calls == 2
    assert TransientError.retryable


def test_http_get_refuses_other_hosts_and_redirects_to_them(tools, server, me):
    with pytest.raises(PermissionDenied, match="not on http_get's allow-list"):
        tools.call("http_get", {"url": "http://example.com/"}, principal=me)
    with pytest.raises(PermissionDenied, match="example.com"):
        tools.call("http_get", {"url": f"{server}/away"}, principal=me)


def test_memory_tools_use_the_memory_service(tools, me):
    mid = tools.call("memory.remember", {"text": "the launch is on friday", "importance": 0.9}, principal=me)
    hits = tools.call("memory.recall", {"query": "when is the launch", "k": 3}, principal=me)
    assert hits[0]["id"] == mid and hits[0]["text"] == "the launch is on friday"


def test_python_and_shell_tools_run_in_the_sandbox(tools, me):
    out = tools.call("python", {"code": "import os; print(os.getcwd() != '/')"}, principal=me)
    assert out["stdout"] == "True\n" and out["isolation"] in ("process", "network", "namespace")
    assert tools.call("shell", {"command": "echo $((6*7))"}, principal=me)["stdout"] == "42\n"
    with pytest.raises(SandboxLimitError, match="timeout"):
        tools.call("python", {"code": "import time; time.sleep(5)", "timeout": 0.5}, principal=me)


def test_notebook_run_executes_a_workspace_notebook(tools, me):
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import os\nresult = n * 10\nprint(result, os.getcwd())")]
    path = Path(tools.workspace) / "files" / "calc" / "calc.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    out = tools.call("notebook.run", {"path": "calc/calc.ipynb", "parameters": {"n": 4},
                                      "output": "runs/calc.ipynb"}, principal=me)
    assert out["output"] == "runs/calc.ipynb"
    executed = nbformat.read(Path(tools.workspace) / "files" / out["output"], as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == f"40 {path.parent.resolve()}\n"  # runs in its own folder


def test_builtin_tools_declare_how_they_run_code():
    declared = {s.name: (s.runs_code, s.side_effect) for s in TOOLS}
    assert declared["python"] == declared["shell"] == (RunsCode.SANDBOX, SideEffect.WRITE)
    assert declared["notebook.run"] == (RunsCode.HOST, SideEffect.EXECUTE)
    assert {n for n, (rc, _) in declared.items() if rc == RunsCode.NO} == {
        "files.read", "files.write", "files.list", "files.delete", "sql", "http_get", "memory.remember",
        "memory.recall", "memory.forget"}
    by = {s.name: s for s in TOOLS}
    assert by["http_get"].network and not by["sql"].network
    assert by["memory.recall"].resource_kind == by["memory.remember"].resource_kind == "scope"
    assert by["notebook.run"].reads is not None
