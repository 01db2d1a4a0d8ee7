"""``python`` and ``shell``: untrusted code and commands, run in the sandbox."""

from __future__ import annotations

from typing import Any

from emergent.tools.builtin._common import sandbox
from emergent.tools.sandbox import Limits, with_limits
from emergent.tools.spec import RunsCode, SideEffect, ToolContext, tool


def _limits(ctx: ToolContext, timeout: float | None, memory_mb: int | None) -> Limits:
    box = sandbox(ctx)
    return with_limits(box.limits, timeout=timeout, memory_mb=memory_mb,
                       cpu_seconds=int(timeout) + 1 if timeout else None)


@tool(name="python", version="1.0.0", side_effect=SideEffect.WRITE, runs_code=RunsCode.SANDBOX,
      permissions=("sandbox",), tags=("code", "sandbox"))
def python(code: str, ctx: ToolContext, stdin: str | None = None, files: dict[str, str] | None = None,
           timeout: float | None = None, memory_mb: int | None = None) -> dict[str, Any]:
    """Run Python source in the sandbox (isolated interpreter, no network, temp directory).

    Args:
        code: the program; print what you want back
        stdin: text fed to the program's standard input
        files: files to create in its working directory first (name -> text)
        timeout: wall-clock seconds before it is killed
        memory_mb: address-space limit in MiB
    """
    box = sandbox(ctx)
    res = box.python(code, stdin=stdin, files=files, limits=_limits(ctx, timeout, memory_mb)).check()
    return res.to_dict()


@tool(name="shell", version="1.0.0", side_effect=SideEffect.WRITE, runs_code=RunsCode.SANDBOX,
      permissions=("sandbox",), tags=("code", "sandbox"))
def shell(command: str, ctx: ToolContext, stdin: str | None = None, files: dict[str, str] | None = None,
          timeout: float | None = None, memory_mb: int | None = None) -> dict[str, Any]:
    """Run a /bin/sh command line in the sandbox.

    Args:
        command: the command line
        stdin: text fed to its standard input
        files: files to create in its working directory first (name -> text)
        timeout: wall-clock seconds before it is killed
        memory_mb: address-space limit in MiB
    """
    box = sandbox(ctx)
    return box.shell(command, stdin=stdin, files=files, limits=_limits(ctx, timeout, memory_mb)).check().to_dict()


TOOLS = [python, shell]
