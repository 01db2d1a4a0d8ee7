"""The Emergent kernel spec, and the magics inside a real kernel started from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from emergent.cli.kernel import install, kernel_spec
from emergent.jobs import runner
from emergent.jobs.model import RunStatus

ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_kernel_json_is_the_spec_that_gets_installed() -> None:
    repo = json.loads((ROOT / "kernels" / "emergent" / "kernel.json").read_text())
    ours = kernel_spec("python")
    assert repo == ours
    assert kernel_spec()["argv"][0] == sys.executable and "--ext" in ours["argv"] and ours["display_name"] == "Emergent"


def test_magics_work_in_the_emergent_kernel_inside_its_running_event_loop(tmp_path, make_nb, monkeypatch, home) -> None:
    prefix = tmp_path / "prefix"
    where = Path(install(prefix=str(prefix)))
    assert json.loads((where / "kernel.json").read_text())["display_name"] == "Emergent"
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    nb = make_nb(
        "magics",
        "import asyncio\nfrom emergent.workstation import Workstation\n"
        "assert isinstance(ws, Workstation), 'the kernel opened the workspace'\nstr(ws.path)",
        "mid = %remember --importance 0.9 --kind semantic the launch code is purple elephant\nassert mid",
        "%%remember --kind procedural\nTo deploy: run make release\nthen tag the commit",
        "hits = %recall -k 3 purple elephant\nassert 'purple elephant' in hits[0].text, hits",
        "hits2 = %recall deploy release\nassert any('make release' in h.text for h in hits2), hits2",
        "hits3 = %recall -k 3 what is the launch code?\nassert 'purple elephant' in hits3[0].text, hits3",
        "%%recall -k 2\nHow do I deploy a release?",
        "assert any('make release' in h.text for h in _), _  # the %%recall cell's value",
        "status = %emergent status\nassert status['workspace'] == str(ws.path) and 'jobs' in status",
        "from emergent.magics import run_sync\nasyncio.get_running_loop()  # the kernel's loop is running here\n"
        "assert run_sync(asyncio.sleep(0.01, result='done')) == 'done'",
        "assert await asyncio.sleep(0, result=7) == 7",
        "me = ws.principal\nassert me.is_human and me.key.startswith('human:'), me  # the kernel's OS user",
        "from emergent.tools import tool\nfrom emergent.tools.service import ToolService\n"
        "ws.tools = ToolService(ws.sql, workspace=ws.path)\n"
        "async def shout(text: str):\n    await asyncio.sleep(0.01)\n    return text.upper()\n"
        "ws.tools.add(tool(shout, name='demo.shout', version='1.0.0'))",
        "loud = %tool demo.shout text=hello\nassert loud == 'HELLO', loud  # an async tool, awaited in the kernel",
        "j = %tool demo.shout {\"text\": \"json\"}\nassert j == 'JSON', j",
        "r = %tool python {\"code\": \"print(6 * 7)\"}\nassert r['stdout'].strip() == '42', r\nr",
        "from IPython.core.error import UsageError\ntry:\n    get_ipython().run_line_magic('recall', '')\n"
        "    raise AssertionError('no usage error')\nexcept UsageError as exc:\n    print('usage error:', exc)",
        kernel="emergent",
    )
    out = tmp_path / "magics-out.ipynb"
    outcome = runner.execute(nb, out, {}, kernel="emergent", timeout_s=120,
                             env={"EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing"})
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    text = out.read_text()
    assert str(home) in text
    assert "not found" not in text  # '?' ended a question, not a help request
    assert "fork support is experimental" not in text  # no third-party warning reaches the output


@pytest.mark.parametrize("line,expected", [("x {\"a\": 1}", {"a": 1}), ("x a=1 b=two", {"a": 1, "b": "two"})])
def test_tool_magic_arguments_parse_as_json_or_key_value(line: str, expected: dict) -> None:
    from emergent.magics import _tool_args

    assert _tool_args(line.partition(" ")[2]) == expected


def test_tool_magic_acts_as_the_workstation_principal(ws, me) -> None:
    from emergent.magics import EmergentMagics

    magics = EmergentMagics(None, ws=ws)
    assert magics.tool('files.write {"path": "m.txt", "content": "hi"}') == {"path": "m.txt", "bytes": 2}
    (entry,) = [e for e in ws.audit.entries(kind="tool.call") if e.data["tool"] == "files.write@1.0.0"]
    assert entry.actor == me.key and entry.data["outcome"] == "ok"


def test_tool_magic_in_a_kernel_lowered_to_an_agent_asks_without_blocking(ws, me, agent, home, monkeypatch) -> None:
    from IPython.core.error import UsageError

    from emergent.magics import EmergentMagics
    from emergent.workstation import Workstation

    monkeypatch.setenv("EMERGENT_PRINCIPAL", agent.key)
    with Workstation.open(home, embedder="hashing") as lowered:
        magics = EmergentMagics(None, ws=lowered)
        with pytest.raises(UsageError, match="waits for approval") as exc:
            magics.tool("files.write path=n.txt content=x")
        assert "emergent approvals approve" in str(exc.value)
        (pending,) = lowered.autonomy.approvals.list()
        assert pending.actor == agent.key and not (home / "files" / "n.txt").exists()
    monkeypatch.setenv("EMERGENT_PRINCIPAL", "human:boss")
    with Workstation.open(home, embedder="hashing") as claimed, pytest.raises(UsageError, match="names a human"):
        EmergentMagics(None, ws=claimed).tool("files.list")
