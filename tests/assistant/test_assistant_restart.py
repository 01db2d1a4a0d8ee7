"""Approvals that survive: a run paused for an approval outlives the process that ran it (killed with
SIGKILL); a new process approves and the run completes. A run whose process died mid-step is taken
over, and a call that may have run is never run twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from emergent import Workstation
from emergent.providers.local_openai import LocalOpenAIServer, tool_call

CHILD = """
import json, sys, time
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing", llm_model="local-model", llm_base_url=sys.argv[2],
                      llm_api_key="sk-local")
r = ws.assistant().ask(sys.argv[3], user=ws.principal)
print(json.dumps({"run": r.run_id, "status": r.status, "approval": r.pending_approval}), flush=True)
time.sleep(600)  # stays alive until killed
"""

APPROVER = """
import json, sys
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing", llm_model="local-model", llm_base_url=sys.argv[2],
                      llm_api_key="sk-local")
found = ws.assistants_waiting_on(sys.argv[3])
bot, run_id = found
r = bot.approve(sys.argv[3], by=ws.principal, reason="fine")
print(json.dumps({"run": r.run_id, "status": r.status, "answer": r.answer, "expected": run_id}), flush=True)
ws.close()
"""


def _script(body: dict[str, Any]) -> dict[str, Any]:
    if any(m.get("role") == "tool" for m in body["messages"]):
        result = [m for m in body["messages"] if m.get("role") == "tool"][-1]["content"]
        return {"content": f"Done: {result[:80]}"}
    return {"content": None, "tool_calls": [tool_call("files-write", {"path": "report.md", "content": "# Report"})]}


def test_a_paused_run_survives_sigkill_and_a_new_process_approves_and_completes_it(home: Path) -> None:
    with Workstation.open(home, embedder="hashing") as ws:
        ws.assistant()  # the human creates the assistant once
    with LocalOpenAIServer(default=_script) as srv:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), srv.base_url, "write the report"],
                                 stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        try:
            line = child.stdout.readline()  # type: ignore[union-attr]
            paused = json.loads(line)
            assert paused["status"] == "waiting_approval"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert not (home / "files" / "report.md").exists()
        out = subprocess.run([sys.executable, "-c", APPROVER, str(home), srv.base_url, paused["approval"]],
                             capture_output=True, text=True, timeout=120, env=os.environ.copy())
        assert out.returncode == 0, out.stderr[-2000:]
        done = json.loads(out.stdout.strip().splitlines()[-1])
        assert done["run"] == paused["run"] == done["expected"] and done["status"] == "completed"
        assert done["answer"].startswith("Done:")
        assert (home / "files" / "report.md").read_text() == "# Report"
        assert len(srv.requests) == 2  # asked once before the kill, once after the approval


def test_a_run_whose_process_died_mid_step_is_taken_over_without_repeating_the_call(home: Path) -> None:
    with LocalOpenAIServer() as srv, Workstation.open(home, embedder="hashing", llm_model="local-model",
                                                     llm_base_url=srv.base_url, llm_api_key="k") as ws:
        me = ws.principal
        ws.autonomy.add_rule("agent:assistant", "files.write", "allow", by=me)
        ws.autonomy.set_threshold("write", 0.0, by=me)
        bot = ws.assistant()
        # a run checkpointed right after the model asked for a write; then its process "died"
        srv.script = [{"content": None, "tool_calls": [tool_call("files-write", {"path": "x.txt", "content": "1"})]}]
        calls: list[Any] = []
        real_call = ws.tools.call

        def dying(tool: str, *a: Any, **kw: Any) -> Any:
            if tool != "files.write":
                return real_call(tool, *a, **kw)
            calls.append(tool)
            raise KeyboardInterrupt  # the process stops while the write runs
        ws.tools.call = dying  # type: ignore[method-assign]
        with contextlib.suppress(KeyboardInterrupt):
            bot.ask("write x", user=me)
        ws.tools.call = real_call  # type: ignore[method-assign]
        run = bot.runs(1)[0]
        assert run.status == "running"
        assert bot.resume(run.run_id).status == "running"  # its owner's lease is still valid: hands off
        from emergent.assistant.tables import assistant_runs

        with ws.sql.begin() as conn:  # time passes: the lease runs out
            conn.execute(sa.update(assistant_runs).values(lease_until=time.time() - 1))
        srv.script = [lambda body: {"content": "noted: " + body["messages"][-1]["content"][:40]}]
        done = bot.resume(run.run_id)
        assert done.status == "completed" and "outcome unknown" in srv.requests[-1]["body"]["messages"][-1]["content"]
        assert calls == ["files.write"]  # it started once, and was not started again
        assert not (ws.path / "files" / "x.txt").exists()
