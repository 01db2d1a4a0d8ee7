"""MCP call overhead: a no-op tool through ``emergent mcp serve`` (the gate in the path) beside the
same no-op through a bare official-SDK server, same client, same transport (stdio), same run.

- ``mcp_call_ms_p50``: one ``tools/call`` of ``bench.noop`` from the SDK's ``ClientSession`` to our
  server over stdio, as the human principal of the process: the request crosses the pipe, our
  handler hands it to a worker thread, ``ToolService.call`` runs the whole chain (principal check,
  validation, policy decision, breaker, telemetry row, audit entry — buffered, as for every read),
  and the result comes back as text plus structured content.
- ``bare_mcp_call_ms_p50``: the same call to the leanest bare SDK server: the SDK's low-level
  ``Server`` (the class ours is built on) with its input validation off, the handler returning
  the value: everything but the gate (and but any argument validation).
- ``mcp_call_overhead_ratio`` = ours / bare (target ≤ 1.3). For reference, the same no-op on the
  low-level server with the SDK's default input validation on (``bare_validating_mcp_call_ms_p50``:
  it builds a jsonschema validator per call) and on FastMCP (``bare_fastmcp_call_ms_p50``), the
  flavour most servers are written with.
- ``gate_call_us_p50``: ``ToolService.call`` of the no-op in this process (what the gate itself
  costs, without any transport); ``mcp_added_ms_p50`` = ours − bare.

The two (three) sessions are open at once and measured in interleaved blocks, so a load change on
the machine hits every side alike.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from emergent.bench import Row, fmt, percentile

TOOL = "bench.noop"

_OURS = textwrap.dedent('''
    import sys
    from emergent import Workstation
    from emergent.mcp.server import MCPServer
    from emergent.tools import tool

    @tool(name="bench.noop", version="1.0.0")
    def noop(x: int = 0) -> int:
        """Do nothing: return x."""
        return x

    ws = Workstation.open(sys.argv[1], embedder="hashing")
    try:
        ws.tools.add(noop)
        MCPServer(ws.tools, audit=ws.audit, principals=ws.principals).run_stdio(ws.principal)
    finally:
        ws.close()
''')

_BARE = textwrap.dedent('''
    import sys

    import anyio
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    server = Server("bare")
    TOOLS = [types.Tool(name="bench.noop", description="Do nothing: return x.",
                        inputSchema={"type": "object", "properties": {"x": {"type": "integer", "default": 0}},
                                     "additionalProperties": False},
                        annotations=types.ToolAnnotations(readOnlyHint=True))]

    @server.list_tools()
    async def list_tools():
        return TOOLS

    @server.call_tool(validate_input=sys.argv[1:] != ["lean"])
    async def call_tool(name, arguments):
        x = arguments.get("x", 0)
        return types.CallToolResult(content=[types.TextContent(type="text", text=str(x))],
                                    structuredContent={"result": x})

    async def main():
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
''')

_FAST = textwrap.dedent('''
    from mcp.server.fastmcp import FastMCP
    from mcp.types import ToolAnnotations

    mcp = FastMCP("bare-fastmcp", log_level="WARNING")

    @mcp.tool(name="bench.noop", annotations=ToolAnnotations(readOnlyHint=True))
    def noop(x: int = 0) -> int:
        """Do nothing: return x."""
        return x

    mcp.run("stdio")
''')


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "mean": statistics.fmean(samples)}


def _gate_us(root: Path, env: dict[str, str], n: int) -> float:
    """ToolService.call of the no-op in this process (a second process on the same workspace)."""
    from emergent import Workstation
    from emergent.tools import tool

    @tool(name=TOOL, version="1.0.0")
    def noop(x: int = 0) -> int:
        """Do nothing: return x."""
        return x

    with Workstation.open(root, embedder="hashing", audit_dir=env["EMERGENT_AUDIT_DIR"]) as ws:
        ws.tools.add(noop)
        me = ws.principal
        for _ in range(200):
            ws.tools.call(TOOL, {"x": 1}, principal=me)
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            ws.tools.call(TOOL, {"x": 1}, principal=me)
            out.append((time.perf_counter_ns() - t0) / 1000.0)
    return percentile(out, 50)


def mcp_call_overhead(n: int = 2000, *, blocks: int = 10, warmup: int = 100) -> dict[str, Any]:
    """Our MCP server (gate in the path) vs bare SDK servers: p50 ms of a no-op ``tools/call``."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    with tempfile.TemporaryDirectory(prefix="emergent-bench-mcp-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "EMERGENT_AUDIT_DIR": str(root / "anchor"), "EMERGENT_EMBEDDER": "hashing"}
        env.pop("EMERGENT_PRINCIPAL", None)  # the human of this process, as the brief measures
        scripts = {}
        for name, body in (("ours", _OURS), ("bare", _BARE), ("fastmcp", _FAST)):
            scripts[name] = root / f"serve_{name}.py"
            scripts[name].write_text(body)
        scripts["lean"] = scripts["bare"]
        extra = {"ours": [str(root / "ws")], "lean": ["lean"]}
        errlog = open(root / "servers.log", "w")  # noqa: SIM115

        async def main() -> dict[str, list[float]]:
            samples: dict[str, list[float]] = {k: [] for k in scripts}
            sessions: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                ready = anyio.Event()
                stop = anyio.Event()

                async def hold(name: str) -> None:
                    args = [str(scripts[name]), *extra.get(name, [])]
                    params = StdioServerParameters(command=sys.executable, args=args, env=env)
                    async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
                        await s.initialize()
                        await s.list_tools()  # the client caches output schemas once
                        sessions[name] = s
                        if len(sessions) == len(scripts):
                            ready.set()
                        await stop.wait()

                for name in scripts:
                    tg.start_soon(hold, name)
                with anyio.fail_after(120):
                    await ready.wait()
                for s in sessions.values():
                    for _ in range(warmup):
                        res = await s.call_tool(TOOL, {"x": 1})
                        assert not res.isError, res
                per = max(1, n // blocks)
                for _ in range(blocks):
                    for name, s in sessions.items():
                        for _ in range(per):
                            t0 = time.perf_counter_ns()
                            await s.call_tool(TOOL, {"x": 1})
                            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
                stop.set()
            return samples

        try:
            samples = anyio.run(main)
        finally:
            errlog.close()
        gate_us = _gate_us(root / "ws", env, min(n, 5000))
    ours, lean = _ms(samples["ours"]), _ms(samples["lean"])
    bare, fast = _ms(samples["bare"]), _ms(samples["fastmcp"])
    return {"mcp_call_overhead_ratio": ours["p50"] / lean["p50"], "mcp_call_ms_p50": ours["p50"],
            "bare_mcp_call_ms_p50": lean["p50"], "mcp_call_ms_p95": ours["p95"], "bare_mcp_call_ms_p95": lean["p95"],
            "mcp_added_ms_p50": ours["p50"] - lean["p50"],
            "bare_validating_mcp_call_ms_p50": bare["p50"], "mcp_vs_validating_ratio": ours["p50"] / bare["p50"],
            "bare_fastmcp_call_ms_p50": fast["p50"], "mcp_vs_fastmcp_ratio": ours["p50"] / fast["p50"],
            "gate_call_us_p50": gate_us, "mcp_calls": len(samples["ours"])}


def run(args: dict[str, Any]) -> dict[str, Any]:
    return mcp_call_overhead(int(args.get("size") or 2000))


def table(r: dict[str, Any]) -> list[Row]:
    return [
        ("MCP no-op call ms (p50, stdio, gate in the path)", fmt(r["mcp_call_ms_p50"]),
         f"bare SDK server {fmt(r['bare_mcp_call_ms_p50'])} ms", f"ratio {fmt(r['mcp_call_overhead_ratio'])} (≤ 1.3)"),
        ("  vs the SDK server with its default input validation", fmt(r["mcp_call_ms_p50"]),
         f"{fmt(r['bare_validating_mcp_call_ms_p50'])} ms", f"ratio {fmt(r['mcp_vs_validating_ratio'])}"),
        ("  vs a FastMCP server", fmt(r["mcp_call_ms_p50"]), f"{fmt(r['bare_fastmcp_call_ms_p50'])} ms",
         f"ratio {fmt(r['mcp_vs_fastmcp_ratio'])}"),
        ("gate alone µs (p50, in process)", fmt(r["gate_call_us_p50"]), "", ""),
    ]
