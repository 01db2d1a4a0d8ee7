"""Installing another MCP server's tools (`mcp+stdio:` / `mcp+http:`): real SDK server processes,
registered as versioned emergent tools and called through the gate."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from emergent import Workstation
from emergent.errors import (
    ApprovalPending,
    NotFoundError,
    PrincipalError,
    ToolExecutionError,
    UsageError,
    ValidationError,
)

DEMO = "mcp.demo_server"


def test_installing_a_stdio_server_registers_each_tool_with_version_and_side_effect(ws, me, demo):
    installed = ws.tools.install(demo(), by=me)
    specs = {s.name: s for s in installed}
    assert set(specs) == {f"{DEMO}.{t}" for t in ("add", "echo", "note", "wipe", "fail", "crash", "grow")}
    assert {s.version for s in specs.values()} == {"2.1.0"}  # serverInfo.version
    effects = {n.rsplit(".", 1)[1]: str(s.side_effect) for n, s in specs.items()}
    assert effects == {"add": "read", "echo": "read", "fail": "read", "note": "write", "grow": "write",
                       "crash": "write", "wipe": "destructive"}
    add = specs[f"{DEMO}.add"]
    assert add.args_schema["required"] == ["a", "b"] and add.args_schema["properties"]["a"]["type"] == "integer"
    assert add.source == demo() and add.permissions == ()  # stdio: a local process, no network permission
    listed = {i.name: i for i in ws.tools.list("mcp.demo")}
    assert listed[f"{DEMO}.wipe"].side_effect == "destructive" and listed[f"{DEMO}.wipe"].loaded
    ws.audit.flush()
    (installing,) = ws.audit.entries(kind="tool.installing")
    (done,) = ws.audit.entries(kind="tool.installed")
    assert installing.actor == done.actor == me.key and installing.data["target"] == demo()
    assert done.data["versions"] == [s.key for s in installed] and installing.seq < done.seq


def test_a_humans_call_runs_and_returns_the_servers_result(ws, me, demo):
    ws.tools.install(demo(), by=me)
    assert ws.tools.call(f"{DEMO}.add", {"a": 2, "b": 3}, principal=me) == {"result": 5}
    assert ws.tools.call(f"{DEMO}.echo", {"text": "héllo"}, principal=me) == {"result": "héllo"}
    assert json.loads(ws.tools.call(f"{DEMO}.note", {"text": "n"}, principal=me)) == {"kept": "n"}  # text content


def test_an_agents_destructive_call_asks_and_runs_once_a_human_approves(ws, me, agent, demo):
    ws.tools.install(demo(), by=me)
    assert ws.tools.call(f"{DEMO}.echo", {"text": "read"}, principal=agent) == {"result": "read"}  # reads: allowed
    with pytest.raises(ApprovalPending) as pending:
        ws.tools.call(f"{DEMO}.wipe", {"target": "db"}, principal=agent, wait=False)
    aid = pending.value.fields["approval"]
    a = ws.autonomy.approvals.get(aid)
    assert a.actor == agent.key and a.tool == f"{DEMO}.wipe@2.1.0" and a.args == {"target": "db"}
    ws.autonomy.approvals.approve(aid, by=me)
    assert ws.tools.resume(aid) == {"result": "wiped db"}
    assert ws.autonomy.approvals.get(aid).status == "consumed"


def test_arguments_are_checked_against_the_servers_schema_before_the_gate(ws, me, agent, demo):
    ws.tools.install(demo(), by=me)
    with pytest.raises(ValidationError) as bad:
        ws.tools.call(f"{DEMO}.add", {"a": "x"}, principal=me)
    fields = bad.value.invalid  # the list of every bad field
    assert any(f.startswith("a:") for f in fields) and any("'b'" in f for f in fields)
    with pytest.raises(ValidationError):
        ws.tools.call(f"{DEMO}.wipe", {}, principal=agent, wait=False)
    assert ws.autonomy.approvals.list("pending") == []  # an invalid call files no approval


def test_a_server_side_error_becomes_a_tool_execution_error(ws, me, demo):
    ws.tools.install(demo(), by=me)
    with pytest.raises(ToolExecutionError) as err:
        ws.tools.call(f"{DEMO}.fail", {"reason": "the disk is on fire"}, principal=me)
    assert "the disk is on fire" in err.value.message and err.value.hint


def test_a_server_that_dies_is_started_again_on_the_next_call(ws, me, demo):
    ws.tools.install(demo(), by=me)
    with pytest.raises(ToolExecutionError) as lost:
        ws.tools.call(f"{DEMO}.crash", {}, principal=me)
    assert "closed the connection" in lost.value.message and "call again" in lost.value.hint
    assert ws.tools.call(f"{DEMO}.add", {"a": 1, "b": 1}, principal=me) == {"result": 2}  # a new process


def test_a_changed_schema_at_the_same_server_version_becomes_a_new_revision(ws, me, demo):
    ws.tools.install(demo(), by=me)
    changed = {s.name: s.version for s in ws.tools.install(demo("--variant", "2"), by=me)}
    assert changed[f"{DEMO}.add"] == "2.1.0-r1"  # same serverInfo.version, different input schema
    assert changed[f"{DEMO}.echo"] == "2.1.0"  # unchanged schema: the same version
    assert [v.version for v in ws.tools.versions(f"{DEMO}.add")] == ["2.1.0", "2.1.0-r1"]
    assert ws.tools.resolve(f"{DEMO}.add").version == "2.1.0-r1"  # the newest schema wins
    assert ws.tools.call(f"{DEMO}.add", {"a": 1, "b": 2, "c": 3}, principal=me) == {"result": 6}
    assert ws.tools.call(f"{DEMO}.add@2.1.0", {"a": 1, "b": 2}, principal=me) == {"result": 3}
    again = {s.name: s.version for s in ws.tools.install(demo(), by=me)}
    assert again[f"{DEMO}.add"] == "2.1.0"  # the first schema again: its recorded version, not r2
    newer = {s.name: s.version for s in ws.tools.install(demo("--version", "v2.2"), by=me)}
    assert newer[f"{DEMO}.add"] == "2.2.0"


def test_a_server_that_later_claims_its_destructive_tool_is_read_only_still_needs_approval(ws, me, agent, demo):
    ws.tools.install(demo(), by=me)
    relabelled = {s.name: s for s in ws.tools.install(demo("--variant", "3"), by=me)}
    assert str(relabelled[f"{DEMO}.wipe"].side_effect) == "destructive"  # never lowered by a later listing
    with pytest.raises(ApprovalPending):
        ws.tools.call(f"{DEMO}.wipe", {"target": "db"}, principal=agent, wait=False)


def test_installed_tools_survive_a_process_restart(home, demo):
    with Workstation.open(home, embedder="hashing") as w:
        w.tools.install(demo(), by=w.principal)
    probe = ("import json\nfrom emergent import Workstation\n"
             f"with Workstation.open({str(home)!r}, embedder='hashing') as w:\n"
             f"    print(json.dumps(w.tools.call('{DEMO}.add', {{'a': 20, 'b': 22}}, principal=w.principal)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"result": 42}


def test_list_changed_on_a_live_session_registers_the_new_tool(ws, me, demo):
    ws.tools.install(demo(), by=me)
    clients = ws.tools.mcp_clients()
    before = clients.connection(demo()).relists
    assert ws.tools.call(f"{DEMO}.grow", {"name": "lateComer"}, principal=me) == {"result": "added lateComer"}
    assert clients.wait_for_refresh(demo(), before, timeout=20)
    spec = ws.tools.resolve(f"{DEMO}.late_comer")
    assert spec.version == "2.1.0" and str(spec.side_effect) == "read"
    assert ws.tools.call(f"{DEMO}.late_comer", {"x": "1"}, principal=me) == {"result": "lateComer:1"}
    ws.audit.flush()
    changed = ws.audit.entries(kind="mcp.tools_changed")
    assert changed and changed[-1].actor == me.key and f"{DEMO}.late_comer@2.1.0" in changed[-1].data["versions"]


def test_a_server_over_streamable_http_is_installed_as_external_tools(ws, me, demo, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, demo().split(" ", 1)[1].split()[0], "--http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "demo server did not start"
                time.sleep(0.1)
        specs = {s.name: s for s in ws.tools.install(f"mcp+http://127.0.0.1:{port}/mcp", by=me)}
        assert str(specs[f"{DEMO}.note"].side_effect) == "external"  # another machine, for all we know
        assert str(specs[f"{DEMO}.add"].side_effect) == "read" and specs[f"{DEMO}.add"].network
        assert ws.tools.call(f"{DEMO}.add", {"a": 4, "b": 5}, principal=me) == {"result": 9}
    finally:
        ws.tools.close()
        proc.terminate()
        proc.wait(10)


def test_targets_that_are_not_servers_are_refused_clearly(ws, me, agent, demo):
    with pytest.raises(UsageError):
        ws.tools.install("mcp+stdio:", by=me)
    with pytest.raises(UsageError):
        ws.tools.install("mcp+ftp://x", by=me)
    with pytest.raises(NotFoundError) as missing:
        ws.tools.install("mcp+stdio:/no/such/mcp-server --flag", by=me)
    assert "/no/such/mcp-server" in missing.value.message and missing.value.hint
    with pytest.raises(PrincipalError):
        ws.tools.install(demo(), by=agent)  # installing runs a program: a human decision


def test_names_and_versions_are_folded_to_the_registry_rules():
    from emergent.mcp.spec import base_version, fold, tool_names
    from emergent.tools.spec import NAME

    assert fold("Demo Server") == "demo_server" and fold("getWeather") == "get_weather"
    assert fold("list-files.v2") == "list_files_v2" and fold("3d") == "x3d" and fold("") == "x"
    names = tool_names("My-Server", ["get-x", "get_x", "GetX"])
    assert len(set(names.values())) == 3 and all(NAME.match(n) for n in names.values())
    assert names["get-x"].startswith("mcp.my_server.get_x")
    assert [base_version(v) for v in ("1.2.3", "v1.2", "2024.1", "1.0.0-beta.1", "nonsense", None)] == \
        ["1.2.3", "1.2.0", "2024.1.0", "1.0.0", "0.0.0", "0.0.0"]
