"""``files.*``: read, write, list and delete files jailed to ``<workspace>/files``."""

from __future__ import annotations

from typing import Any

from emergent.errors import ValidationError
from emergent.tools.builtin._common import files_root, jailed
from emergent.tools.spec import SideEffect, ToolContext, tool

MAX_READ = 5_000_000


@tool(name="files.read", version="1.0.0", resource="path", tags=("files",))
def read(path: str, ctx: ToolContext) -> str:
    """Read a text file from the workspace.

    Args:
        path: path relative to the workspace's files directory
    """
    target = jailed(ctx, path, must_exist=True)
    if target.is_dir():
        raise ValidationError(f"{path!r} is a directory", hint="use files.list", field="path")
    if target.stat().st_size > MAX_READ:
        raise ValidationError(f"{path!r} is larger than {MAX_READ} bytes", hint="query it with the sql tool")
    return target.read_text("utf-8", errors="replace")


@tool(name="files.write", version="1.0.0", side_effect=SideEffect.WRITE, resource="path", tags=("files",))
def write(path: str, content: str, ctx: ToolContext, append: bool = False) -> dict[str, Any]:
    """Write (or append) text to a file in the workspace, creating folders as needed.

    Args:
        path: path relative to the workspace's files directory
        content: the text to write
        append: add to the end instead of replacing
    """
    target = jailed(ctx, path)
    if target == files_root(ctx) or target.is_dir():
        raise ValidationError(f"{path!r} is a directory", field="path")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if append else "w", encoding="utf-8") as fh:
        fh.write(content)
    return {"path": str(target.relative_to(files_root(ctx))), "bytes": target.stat().st_size}


@tool(name="files.list", version="1.0.0", resource="path", tags=("files",))
def list_files(ctx: ToolContext, path: str = ".", pattern: str = "*") -> list[str]:
    """List files under a workspace folder (recursively, matching a glob).

    Args:
        path: folder relative to the workspace's files directory
        pattern: glob such as *.csv
    """
    root = files_root(ctx)
    base = jailed(ctx, path, must_exist=True)
    return sorted(str(p.relative_to(root)) for p in base.rglob(pattern) if p.is_file())


@tool(name="files.delete", version="1.0.0", side_effect=SideEffect.DESTRUCTIVE, resource="path", tags=("files",))
def delete(path: str, ctx: ToolContext) -> bool:
    """Delete one file from the workspace.

    Args:
        path: path relative to the workspace's files directory
    """
    target = jailed(ctx, path, must_exist=True)
    if target.is_dir():
        raise ValidationError(f"{path!r} is a directory; only files are deleted", field="path")
    target.unlink()
    return True


TOOLS = [read, write, list_files, delete]
