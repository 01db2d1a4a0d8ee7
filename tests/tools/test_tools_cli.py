"""`emergent tools|policy|approvals|audit` from the command line (in-process, real workspace)."""

import json

import pytest

from emergent import Workstation
from emergent.cli import main
from emergent.errors import ApprovalPending


def cli(capsys, *args):
    try:
        code = main([*args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code or 0, out.out, out.err


def test_tools_commands(capsys, home, tmp_path):
    h = ("--home", str(home))
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
    stats = json.loads(cli(capsys, "tools", "stats", "--json", *h)[1])
    assert {(s["tool"], s["calls"]) for s in stats} >= {("files.write", 1)}
    src = tmp_path / "extra.py"
    src.write_text("from emergent.tools import tool\n@tool(version='2.1.0')\ndef ping() -> str:\n"
                   "    '''Ping.'''\n    return 'pong'\n")
    assert "installed ping@2.1.0" in cli(capsys, "tools", "install", str(src), *h)[1]


def test_policy_approvals_and_audit_commands(capsys, home, tmp_path):
    h = ("--home", str(home))
    assert cli(capsys, "policy", "add", "agent:*", "files.*", "allow", "--side-effects", "read", *h)[0] == 0
    code, out, _ = cli(capsys, "policy", "explain", "agent:scout", "files.write", *h)
    assert json.loads(out)["effect"] == "ask"  # write is not covered by the read-only rule
    exported = tmp_path / "policy.yaml"
    cli(capsys, "policy", "export", str(exported), *h)
    assert "files.*" in exported.read_text()
    cli(capsys, "policy", "pause", "--reason", "drill", *h)
    assert json.loads(cli(capsys, "policy", "status", *h)[1])["paused"]["reason"] == "drill"
    cli(capsys, "policy", "resume", *h)

    with Workstation.open(home, embedder="hashing") as ws:
        with pytest.raises(ApprovalPending) as e:
            ws.tools.call("files.write", {"path": "b.txt", "content": "x"}, actor="agent:scout", wait=False)
        aid = e.value.approval
    listed = json.loads(cli(capsys, "approvals", "list", "--json", *h)[1])
    assert [a["id"] for a in listed] == [aid]
    assert "approved by user:boss" in cli(capsys, "approvals", "approve", aid, "--by", "user:boss", *h)[1]
    with Workstation.open(home, embedder="hashing") as ws:
        assert ws.tools.resume(aid) == {"path": "b.txt", "bytes": 1}

    out_file = tmp_path / "audit.jsonl"
    assert cli(capsys, "audit", "export", "-o", str(out_file), *h)[0] == 0
    code, out, _ = cli(capsys, "audit", "verify", "--jsonl", str(out_file), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["entries"] >= 6
    assert cli(capsys, "audit", "verify", *h)[0] == 0
