"""``emergent bench assistant``: what the assistant's loop adds to a tool-calling agent, and how fast a
paused run continues in a new process.

- ``step_overhead_ms_p50``: per tool-calling step, our loop (gate, audit, checkpoint in SQL, events)
  minus a bare loop that calls the same local chat-completions server (streaming, through the same
  ``openai`` client) and the same function directly; interleaved in the same run. Target ≤ 2 ms.
- ``resume_after_restart_s``: a run paused for an approval, a person approves, a *new* process
  continues it to its answer: from the decision to the answer, beside ``bare_process_s`` (a new process
  that only opens the same workspace).
- ``mcp_call_overhead_ratio``: a no-op tool through ``emergent mcp serve`` over the same tool through a
  bare official-SDK server (emergent.bench.mcp), when the ``mcp`` extra is installed. Target ≤ 1.3.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emergent.bench import Row, median, percentile

TARGET_STEP_MS = 2.0
TARGET_MCP_RATIO = 1.3
STEPS = 20


def _noop_tool() -> Any:
    from emergent.tools.spec import tool

    @tool(name="bench.noop", version="1.0.0")
    def noop(x: int = 0) -> int:
        """Return x (a benchmark's no-op).

        Args:
            x: any integer
        """
        return x

    return noop


def _script(steps: int) -> Any:
    from emergent.providers.local_openai import tool_call

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        done = sum(1 for m in body["messages"] if m.get("role") == "tool")
        if done < steps:
            return {"content": None, "tool_calls": [tool_call("bench-noop", {"x": done}, f"call_{done}")]}
        return {"content": f"done after {done} calls"}
    return answer


def _bare_loop(base_url: str, steps: int, fn: Any, opening: list[dict[str, Any]],
               tools: list[dict[str, Any]]) -> list[float]:
    """The floor: the same server, the same client, the same opening messages and tool schema, the
    function called directly; per-step seconds."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    messages: list[dict[str, Any]] = [dict(m) for m in opening]
    marks = [time.perf_counter()]
    while True:
        stream = client.chat.completions.create(  # type: ignore[call-overload]
            model="local-model", messages=messages, tools=tools, stream=True,
                                                stream_options={"include_usage": True})
        calls: dict[int, dict[str, str]] = {}
        for chunk in stream:
            for ch in chunk.choices:
                for tc in ch.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["args"] += tc.function.arguments or ""
        if not calls:
            break
        c = calls[0]
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["args"]}}]})
        result = fn(**json.loads(c["args"]))
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": json.dumps(result)})
        marks.append(time.perf_counter())
    return [b - a for a, b in zip(marks[1:], marks[2:], strict=False)]  # whole steps after the first


def _ours(ws: Any, steps: int) -> list[float]:
    marks: list[float] = []

    def on_event(ev: Any) -> None:
        if ev.type == "tool_result":
            marks.append(time.perf_counter())

    bot = ws.assistant("bench", tools=("bench.noop",), remember_runs=False).with_budget(max_steps=steps + 2, max_tool_calls=steps + 2)
    r = bot.ask("go", user=ws.principal, on_event=on_event)
    if r.status != "completed" or r.usage["tool_calls"] != steps:
        raise RuntimeError(f"benchmark run ended {r.status}: {r.answer[:200]}")
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def _step_overhead(root: Path, repeats: int, steps: int) -> dict[str, Any]:
    from emergent.providers.local_openai import LocalOpenAIServer
    from emergent.workstation import Workstation

    noop = _noop_tool()
    ours: list[float] = []
    bare: list[float] = []
    with LocalOpenAIServer(default=_script(steps)) as srv, \
            Workstation.open(root / "ws-step", embedder="hashing", llm_model="local-model",
                             llm_base_url=srv.base_url, llm_api_key="sk-bench") as ws:
        ws.tools.add(noop)
        _ours(ws, steps)  # warm: imports, SQL, the chain of the tool
        first = srv.requests[0]["body"]
        opening, tools = first["messages"], first["tools"]  # the bare loop sends exactly what ours sent
        _bare_loop(srv.base_url, steps, noop.func, opening, tools)
        for i in range(repeats):  # interleaved, alternating which goes first
            if i % 2:
                ours += _ours(ws, steps)
                bare += _bare_loop(srv.base_url, steps, noop.func, opening, tools)
            else:
                bare += _bare_loop(srv.base_url, steps, noop.func, opening, tools)
                ours += _ours(ws, steps)
    o, b = median(ours) * 1e3, median(bare) * 1e3
    return {"step_ms_p50": o, "bare_step_ms_p50": b, "step_overhead_ms_p50": o - b,
            "step_ms_p95": percentile([x * 1e3 for x in ours], 95),
            "bare_step_ms_p95": percentile([x * 1e3 for x in bare], 95), "steps_measured": len(ours)}


_PAUSE = """
import json, sys
from emergent.workstation import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing", llm_model="local-model", llm_base_url=sys.argv[2],
                      llm_api_key="sk-bench")
r = ws.assistant().ask("write the report", user=ws.principal)
print(json.dumps({"run": r.run_id, "approval": r.pending_approval, "status": r.status}), flush=True)
ws.close()
"""
_RESUME = """
import json, sys, time
from emergent.workstation import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing", llm_model="local-model", llm_base_url=sys.argv[2],
                      llm_api_key="sk-bench")
done = ws.assistant().resume_decided()
print(json.dumps({"status": [r.status for r in done], "at": time.time()}), flush=True)
ws.close()
"""
_BARE = """
import json, sys, time
from emergent.workstation import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
ws.assistant_runs.list(limit=1)
print(json.dumps({"at": time.time()}), flush=True)
ws.close()
"""


def _python(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise RuntimeError(f"benchmark process failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _resume_after_restart(root: Path, repeats: int) -> dict[str, Any]:
    from emergent.providers.local_openai import LocalOpenAIServer, tool_call
    from emergent.workstation import Workstation

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if any(m.get("role") == "tool" for m in body["messages"]):
            return {"content": "The report is written."}
        return {"content": None, "tool_calls": [tool_call("files-write", {"path": "report.md", "content": "# R"})]}

    home = root / "ws-resume"
    ours: list[float] = []
    bare: list[float] = []
    with LocalOpenAIServer(default=answer) as srv:
        with Workstation.open(home, embedder="hashing") as ws:
            ws.assistant()  # the human creates the assistant's principal once
        for _ in range(repeats):
            paused = _python(_PAUSE, str(home), srv.base_url)
            if paused["status"] != "waiting_approval":
                raise RuntimeError(f"the benchmark run did not pause: {paused}")
            t0 = time.time()
            _python(_BARE, str(home))
            bare.append(time.time() - t0)
            with Workstation.open(home, embedder="hashing") as ws:
                ws.autonomy.approvals.approve(paused["approval"], by=ws.principal)
            t0 = time.time()
            done = _python(_RESUME, str(home), srv.base_url)
            if done["status"] != ["completed"]:
                raise RuntimeError(f"the benchmark run did not complete after approval: {done}")
            ours.append(done["at"] - t0)
    return {"resume_after_restart_s": median(ours), "bare_process_s": median(bare),
            "resume_overhead_s": median(ours) - median(bare)}


def run(args: dict[str, Any]) -> dict[str, Any]:
    steps = int(args.get("size") or STEPS)
    with tempfile.TemporaryDirectory(prefix="emergent-bench-assistant-") as tmp:
        root = Path(tmp)
        result = {"steps_per_run": steps, **_step_overhead(root, repeats=8, steps=steps),
                  **_resume_after_restart(root, repeats=3)}
    try:
        mcp_bench = importlib.import_module("emergent.bench.mcp")
    except ImportError:
        result["mcp_call_overhead_ratio"] = None
        result["mcp_note"] = "the mcp extra is not installed"
    else:
        result.update(mcp_bench.mcp_call_overhead())
    result["target_step_overhead_ms"] = TARGET_STEP_MS
    result["target_mcp_call_overhead_ratio"] = TARGET_MCP_RATIO
    return result


def table(r: dict[str, Any]) -> list[Row]:
    return [
        ("step p50 (ms, model excluded by subtraction)", r["step_ms_p50"], r["bare_step_ms_p50"],
         f"+{r['step_overhead_ms_p50']:.2f} ms (target ≤ {TARGET_STEP_MS})"),
        ("resume after restart (s)", r["resume_after_restart_s"], r["bare_process_s"],
         f"+{r['resume_overhead_s']:.2f} s"),
        ("MCP no-op call p50 (ms)", r.get("mcp_call_ms_p50"), r.get("bare_mcp_call_ms_p50"),
         f"{r['mcp_call_overhead_ratio']:.2f}x (target ≤ {TARGET_MCP_RATIO})"
         if r.get("mcp_call_overhead_ratio") is not None else r.get("mcp_note", "")),
    ]
