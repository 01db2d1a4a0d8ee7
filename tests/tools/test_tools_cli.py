"""`emergent tools|policy|approvals|principals|audit` from the command line (in-process, real workspace).

The command line acts as the OS user running it; it takes no name to act as a person.
"""

import hashlib
import json

import pytest

from emergent import Workstation
from emergent.cli import main
from emergent.errors import ApprovalPending
from emergent.tools import ToolContext, tool


def cli(capsys, *args):
    try:
        code = main([*args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code or 0, out.out, out.err


@pytest.fixture
def h(home):
    return ("--home", str(home))


@pytest.fixture
def me_key(home):
    with Workstation.open(home, embedder="hashing") as w:
        return w.principal.key


def agent_request(home, tool_name="files.write", args=None, extra=()):
    """As agent:scout (created by the OS user), ask for a call; returns the pending approval's id."""
    with Workstation.open(home, embedder="hashing") as w:
        w.tools.add(*extra)
        scout = w.principals.agent("scout", created_by=w.principal)
        with pytest.raises(ApprovalPending) as e:
            w.tools.call(tool_name, args or {"path": "b.txt", "content": "x"}, principal=scout, wait=False)
        return e.value.approval


def test_tools_commands(capsys, h, home, tmp_path, me_key):
    code, out, _ = cli(capsys, "tools", "list", "files.", "--json", *h)
    assert code == 0 and {t["name"] for t in json.loads(out)} >= {"files.read", "files.write"}
    code, out, _ = cli(capsys, "tools", "show", "files.read@^1", *h)
    assert json.loads(out)["resolved"]["args_schema"]["required"] == ["path"]
    code, out, _ = cli(capsys, "tools", "call", "files.write", '{"path": "a.txt", "content": "hi"}', *h)
    assert code == 0 and json.loads(out) == {"path": "a.txt", "bytes": 2}
    assert "disabled files.read@1.0.0" in cli(capsys, "tools", "disable", "files.read", *h)[1]
    code, _, err = cli(capsys, "tools", "call", "files.read", '{"path": "a.txt"}', *h)
    assert code == 2 and "emergent tools enable files.read@1.0.0" in err
    cli(capsys, "tools", "enable", "files.read@1.0.0", *h)
    code, _, err = cli(capsys, "tools", "call", "files.raed", "{}", *h)
    assert code == 2 and "did you mean 'files.read'" in err
    code, _, err = cli(capsys, "tools", "call", "files.read", "{not json", *h)
    assert code == 2 and err.startswith("error: ARGS is not JSON") and "Traceback" not in err
    stats = json.loads(cli(capsys, "tools", "stats", "--json", *h)[1])
    assert {(s["tool"], s["calls"]) for s in stats} >= {("files.write", 1)}
    src = tmp_path / "extra.py"
    src.write_text("from emergent.tools import tool\n@tool(version='2.1.0')\ndef ping() -> str:\n"
                   "    '''Ping.'''\n    return 'pong'\n")
    assert "installed ping@2.1.0" in cli(capsys, "tools", "install", str(src), *h)[1]
    with Workstation.open(home, embedder="hashing") as w:  # every change is the OS user's, in the audit trail
        by_kind = {e.kind: e.actor for e in w.audit.entries()}
        calls = [e for e in w.audit.entries(kind="tool.call") if e.data["tool"] == "files.write@1.0.0"]
    assert by_kind["tool.disabled"] == by_kind["tool.enabled"] == by_kind["tool.installed"] == me_key
    assert calls[0].actor == me_key and calls[0].data["outcome"] == "ok"


def test_approve_run_runs_the_waiting_call_once(capsys, h, home, me_key):
    aid = agent_request(home)
    (listed,) = json.loads(cli(capsys, "approvals", "list", "--json", *h)[1])
    assert listed["id"] == aid and listed["requester"] == "agent:scout" and listed["tool"] == "files.write@1.0.0"
    assert len(listed["digest"]) == 64 and listed["status"] == "pending"
    code, out, err = cli(capsys, "approvals", "approve", aid, "--run", "--reason", "fine", *h)
    assert code == 0, err
    assert f"{aid} approved by {me_key}" in out and json.loads(out.split("\n", 1)[1]) == {"path": "b.txt", "bytes": 1}
    assert (home / "files" / "b.txt").read_text() == "x"
    (home / "files" / "b.txt").write_text("changed by hand")
    code, _, err = cli(capsys, "approvals", "approve", aid, "--run", *h)
    assert code == 2 and "already consumed" in err and "Traceback" not in err
    code, _, err = cli(capsys, "tools", "resume", aid, *h)
    assert code == 2 and err.startswith(f"error: approval {aid} was already used") and "hint:" in err
    assert (home / "files" / "b.txt").read_text() == "changed by hand"  # it ran once, not again
    shown = json.loads(cli(capsys, "approvals", "show", aid, *h)[1])
    assert shown["status"] == "consumed" and shown["decided_by"] == me_key and shown["consumed_by"]
    assert json.loads(cli(capsys, "approvals", "list", "--json", *h)[1]) == []


def test_tools_resume_runs_an_approved_call_and_refuses_a_pending_one(capsys, h, home):
    aid = agent_request(home)
    code, _, err = cli(capsys, "tools", "resume", aid, *h)
    assert code == 2 and "still pending" in err and f"emergent approvals approve {aid}" in err
    code, out, _ = cli(capsys, "approvals", "approve", aid, *h)
    assert code == 0 and "approved" in out and not (home / "files" / "b.txt").exists()
    code, out, _ = cli(capsys, "tools", "resume", aid, *h)
    assert code == 0 and json.loads(out) == {"path": "b.txt", "bytes": 1}
    assert cli(capsys, "tools", "resume", aid, *h)[0] == 2
    rejected = agent_request(home, args={"path": "c.txt", "content": "no"})
    assert cli(capsys, "approvals", "reject", rejected, "--reason", "not today", *h)[0] == 0
    code, _, err = cli(capsys, "tools", "resume", rejected, *h)
    assert code == 2 and "rejected: not today" in err and not (home / "files" / "c.txt").exists()


def test_list_and_show_name_the_files_an_approval_is_bound_to(capsys, h, home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    script = b"print('the reviewed script')"
    (home / "files").mkdir(parents=True)
    (home / "files" / "job.py").write_bytes(script)

    def reads(kwargs, ctx):
        return {kwargs["path"]: (ctx.workspace / "files" / kwargs["path"]).read_bytes()}

    def run_script(path: str, ctx: ToolContext) -> int:
        """Run a script of the workspace."""
        return len(ctx.contents[path])

    spec = tool(run_script, name="script.run", version="1.0.0", side_effect="write", resource="path", reads=reads)
    aid = agent_request(home, "script.run", {"path": "job.py"}, extra=(spec,))
    sha = hashlib.sha256(script).hexdigest()
    shown = json.loads(cli(capsys, "approvals", "show", aid, *h)[1])
    assert shown["files"] == {"job.py": sha} and shown["requester"] == "agent:scout" and len(shown["digest"]) == 64
    code, out, _ = cli(capsys, "approvals", "list", *h)
    assert code == 0 and "job.py" in out and sha[:12] in out and shown["digest"][:12] in out


def test_the_command_line_takes_no_name_to_act_as_a_person(capsys, h, home, me_key):
    aid = agent_request(home)
    for args in (("approvals", "approve", aid, "--by", "human:boss"),
                 ("approvals", "reject", aid, "--reason", "x", "--by", "user:boss"),
                 ("tools", "call", "files.read", '{"path": "b.txt"}', "--actor", "human:root"),
                 ("policy", "pause", "--by", "human:boss"),
                 ("policy", "add", "*", "files.*", "allow", "--by", "human:boss")):
        code, _, err = cli(capsys, *args, *h)
        assert code == 2 and "No such option" in err and "Traceback" not in err, args
    for who in ("human:root", "user:boss", "root", f"{me_key}"):
        code, _, err = cli(capsys, "tools", "call", "files.list", "{}", "--as", who, *h)
        assert code == 2 and "can act only as an agent" in err and "Traceback" not in err, who
    code, _, err = cli(capsys, "tools", "call", "files.list", "{}", "--as", "agent:ghost", *h)
    assert code == 2 and "does not exist" in err and "emergent principals agent ghost" in err
    with Workstation.open(home, embedder="hashing") as w:
        assert w.autonomy.approvals.get(aid).status == "pending"
        assert "human:boss" not in {p["key"] for p in w.principals.list()}
        assert not w.autonomy.paused and w.autonomy.rules() == []


def test_as_an_agent_lowers_trust_to_try_a_policy(capsys, h, home):
    agent_request(home)  # creates agent:scout
    code, out, _ = cli(capsys, "tools", "call", "files.list", "{}", "--as", "agent:scout", *h)
    assert code == 0 and json.loads(out) == []  # reads: allowed for agents
    code, _, err = cli(capsys, "tools", "call", "files.write", '{"path": "d.txt", "content": "y"}',
                       "--as", "agent:scout", *h)
    assert code == 2 and "waits for approval" in err and "--run" in err
    assert not (home / "files" / "d.txt").exists()
    requests = json.loads(cli(capsys, "approvals", "list", "--json", *h)[1])
    assert {r["requester"] for r in requests} == {"agent:scout"} and len(requests) == 2


def test_a_process_lowered_to_an_agent_cannot_decide_or_raise_itself(capsys, h, home, monkeypatch):
    aid = agent_request(home)
    monkeypatch.setenv("EMERGENT_PRINCIPAL", "agent:scout")
    code, _, err = cli(capsys, "approvals", "approve", aid, *h)
    assert code == 2 and "agent:scout" in err and "only a human approves" in err
    code, _, err = cli(capsys, "tools", "call", "files.list", "{}", "--as", "service:scheduler", *h)
    assert code == 2 and "this process acts as agent:scout" in err
    code, _, err = cli(capsys, "principals", "agent", "minion", *h)
    assert code == 2 and "may not create agents" in err
    code, _, err = cli(capsys, "policy", "pause", *h)
    assert code == 2 and "agent:scout may not pause autonomy" in err
    monkeypatch.setenv("EMERGENT_PRINCIPAL", "human:boss")
    code, _, err = cli(capsys, "approvals", "approve", aid, *h)
    assert code == 2 and "names a human" in err
    monkeypatch.delenv("EMERGENT_PRINCIPAL")
    assert cli(capsys, "approvals", "approve", aid, *h)[0] == 0


def test_a_person_cannot_approve_their_own_request(capsys, h, home, me_key):
    assert cli(capsys, "policy", "add", "human:*", "files.write", "ask", *h)[0] == 0
    code, _, err = cli(capsys, "tools", "call", "files.write", '{"path": "e.txt", "content": "z"}', *h)
    assert code == 2 and "waits for approval" in err
    (pending,) = json.loads(cli(capsys, "approvals", "list", "--json", *h)[1])
    assert pending["requester"] == me_key
    code, _, err = cli(capsys, "approvals", "approve", pending["id"], "--run", *h)
    assert code == 2 and "may not approve it too" in err and not (home / "files" / "e.txt").exists()


def test_principals_commands(capsys, h, home, me_key):
    assert cli(capsys, "principals", "agent", "scout", *h)[1].strip() == "agent:scout"
    assert json.loads(cli(capsys, "principals", "whoami", *h)[1]) == {"principal": me_key, "kind": "human",
                                                                       "roles": []}
    assert cli(capsys, "principals", "grant", "role:analyst", "--to", "agent:scout", *h)[1].strip() == \
        "agent:scout: role:analyst"
    rows = {r["key"]: r for r in json.loads(cli(capsys, "principals", "list", "--json", *h)[1])}
    assert rows["agent:scout"]["created_by"] == me_key and rows["agent:scout"]["roles"] == ["role:analyst"]
    assert rows[me_key]["kind"] == "human"
    assert cli(capsys, "principals", "revoke", "role:analyst", "--to", "agent:scout", *h)[1].strip() == "agent:scout: -"
    code, _, err = cli(capsys, "principals", "grant", "role:analyst", "--to", "agent:ghost", *h)
    assert code == 2 and "no principal 'agent:ghost'" in err and "emergent principals list" in err
    code, _, err = cli(capsys, "principals", "grant", "analyst", "--to", "agent:scout", *h)
    assert code == 2 and "role:analyst" in err
    code, _, err = cli(capsys, "principals", "agent", "bad/name", *h)
    assert code == 2 and "not valid" in err
    with Workstation.open(home, embedder="hashing") as w:
        kinds = [(e.kind, e.actor) for e in w.audit.entries() if e.kind.startswith("principal.role")]
    assert kinds == [("principal.role_granted", me_key), ("principal.role_revoked", me_key)]


def test_policy_approvals_and_audit_commands(capsys, h, home, tmp_path, me_key):
    assert cli(capsys, "policy", "add", "agent:*", "files.*", "allow", "--side-effects", "read", *h)[0] == 0
    code, out, _ = cli(capsys, "policy", "explain", "agent:scout", "files.write", *h)
    assert json.loads(out)["effect"] == "ask" and json.loads(out)["side_effect"] == "write"
    assert json.loads(cli(capsys, "policy", "explain", "agent:scout", "files.read", *h)[1])["effect"] == "allow"
    assert json.loads(cli(capsys, "policy", "explain", me_key, "files.delete", *h)[1])["effect"] == "allow"
    code, _, err = cli(capsys, "policy", "explain", "scout", "files.write", *h)
    assert code == 2 and "not a principal key" in err
    exported = tmp_path / "policy.yaml"
    cli(capsys, "policy", "export", str(exported), *h)
    assert "files.*" in exported.read_text()
    cli(capsys, "policy", "pause", "--reason", "drill", *h)
    paused = json.loads(cli(capsys, "policy", "status", *h)[1])["paused"]
    assert paused["reason"] == "drill" and paused["by"] == me_key
    cli(capsys, "policy", "resume", *h)
    ov = cli(capsys, "policy", "override", "agent:scout", "files.write", "allow", "--reason", "demo", *h)[1].strip()
    assert json.loads(cli(capsys, "policy", "status", *h)[1])["overrides"][0]["by"] == me_key
    assert cli(capsys, "policy", "clear-override", ov, *h)[1].strip() == f"cleared {ov}"

    aid = agent_request(home)
    assert f"approved by {me_key}" in cli(capsys, "approvals", "approve", aid, *h)[1]
    with Workstation.open(home, embedder="hashing") as ws:
        assert ws.tools.resume(aid) == {"path": "b.txt", "bytes": 1}

    out_file = tmp_path / "audit.jsonl"
    assert cli(capsys, "audit", "export", "-o", str(out_file), *h)[0] == 0
    code, out, _ = cli(capsys, "audit", "verify", "--jsonl", str(out_file), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["entries"] >= 6
    assert cli(capsys, "audit", "verify", *h)[0] == 0
