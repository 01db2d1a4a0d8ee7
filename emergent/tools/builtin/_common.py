"""Helpers shared by the built-in tools: the workspace jail and the sandbox a call uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emergent.errors import ConfigError, ValidationError
from emergent.tools.spec import ToolContext


def files_root(ctx: ToolContext) -> Path:
    """``<workspace>/files``: the only directory the file, sql and notebook tools touch."""
    if ctx.workspace is None:
        raise ConfigError("this tool needs a workspace", hint="run it through Workstation.tools.call(...)")
    root = (Path(ctx.workspace) / "files").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def jailed(ctx: ToolContext, path: str, *, must_exist: bool = False) -> Path:
    """Resolve ``path`` inside the files root; refuse anything that escapes it (``..``, symlinks)."""
    root = files_root(ctx)
    if "\x00" in path:
        raise ValidationError("path contains a NUL byte", field="path")
    target = (root / path.lstrip("/")).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if target != root and not target.is_relative_to(root):
        raise ValidationError(f"path {path!r} leaves the workspace's files directory",
                              hint=f"use a path relative to {root}", field="path", path=path)
    if must_exist and not target.exists():
        raise ValidationError(f"no file {path!r} in the workspace", hint="`files.list` shows what is there",
                              field="path")
    return target


def sandbox(ctx: ToolContext) -> Any:
    if ctx.sandbox is not None:
        return ctx.sandbox
    from emergent.tools.sandbox import Sandbox

    return Sandbox()


def services(ctx: ToolContext) -> Any:
    if ctx.services is None:
        raise ConfigError("this tool needs the workstation's services",
                          hint="run it through Workstation.tools.call(...)")
    return ctx.services
