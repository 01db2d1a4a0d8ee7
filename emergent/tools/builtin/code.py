"""``python`` and ``shell``: untrusted code and commands, run in the sandbox."""

from __future__ import annotations

import math
from typing import Any

from emergent.errors import ValidationError
from emergent.tools.builtin._common import sandbox
from emergent.tools.sandbox import Limits, with_limits
from emergent.tools.spec import RunsCode, SideEffect, ToolContext, tool


def _limits(ctx: ToolContext, timeout: float | None, memory_mb: int | None) -> Limits:
    """The sandbox's limits with the call's ``timeout`` and ``memory_mb``. Only a human raises them
    above the workspace's (``[tools] sandbox_timeout_s``, ``sandbox_memory_mb``); an agent or a
    service may only lower them (else its run could take all the memory or run for ever)."""
    box = sandbox(ctx)
    base = box.limits
    for name, value in (("timeout", timeout), ("memory_mb", memory_mb)):
        if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
            raise ValidationError(f"{name} must be a positive finite number, got {value!r}", field=name)
    who = ctx.principal
    if who is not None and not who.is_human:
        for name, value, ceiling in (("timeout", timeout, base.timeout), ("memory_mb", memory_mb, base.memory_mb)):
            if value is not None and value > ceiling:
                raise ValidationError(f"{name} {value!r} is above the workspace's sandbox limit ({ceiling!r}); "
                                      f"{who.key} may only lower it",
                                      hint="leave it out, or ask a human to raise [tools] sandbox_timeout_s / "
                                           "sandbox_memory_mb", field=name)
    return with_limits(base, timeout=timeout, memory_mb=memory_mb,
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
