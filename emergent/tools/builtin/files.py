"""``files.*``: read, write, list and delete files jailed to ``<workspace>/files``.

Paths are relative to that directory and written in canonical form (no ``..``, no ``.`` or empty
parts, not absolute): the gate matches its path rules against the path as written, so it must be
the file touched. Symbolic links are never followed and hard-linked files are refused (see
:mod:`emergent.tools.builtin._common`).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from emergent.errors import ValidationError
from emergent.tools.builtin._common import open_dir, read_bytes, rel_parts, walk_files, write_bytes
from emergent.tools.spec import SideEffect, ToolContext, tool

MAX_READ = 5_000_000


@tool(name="files.read", version="1.0.0", resource="path", resource_kind="path", tags=("files",))
def read(path: str, ctx: ToolContext) -> str:
    """Read a text file from the workspace (symbolic links are not followed).

    Args:
        path: path relative to the workspace's files directory, e.g. notes/a.txt
    """
    data = read_bytes(ctx, path, limit=MAX_READ)
    if len(data) > MAX_READ:
        raise ValidationError(f"{path!r} is larger than {MAX_READ} bytes", hint="query it with the sql tool",
                              field="path")
    return data.decode("utf-8", errors="replace")


@tool(name="files.write", version="1.0.0", side_effect=SideEffect.WRITE, resource="path", resource_kind="path",
      tags=("files",))
def write(path: str, content: str, ctx: ToolContext, append: bool = False) -> dict[str, Any]:
    """Write (or append) text to a file in the workspace, creating folders as needed.

    Args:
        path: path relative to the workspace's files directory, e.g. notes/a.txt
        content: the text to write
        append: add to the end instead of replacing
    """
    size = write_bytes(ctx, path, content.encode("utf-8"), append=append)
    return {"path": path, "bytes": size}


@tool(name="files.list", version="1.0.0", resource="path", resource_kind="path", tags=("files",))
def list_files(ctx: ToolContext, path: str = ".", pattern: str = "*") -> list[str]:
    """List regular files under a workspace folder (recursively, matching a glob; links are skipped).

    Args:
        path: folder relative to the workspace's files directory ("." for all of it)
        pattern: glob matched against the end of each path below the folder, such as *.csv or
            reports/*.md (no '..', not absolute)
    """
    return walk_files(ctx, rel_parts(path, allow_root=True), pattern)


@tool(name="files.delete", version="1.0.0", side_effect=SideEffect.DESTRUCTIVE, resource="path",
      resource_kind="path", tags=("files",))
def delete(path: str, ctx: ToolContext) -> bool:
    """Delete one file from the workspace (a symbolic link is removed itself, never its target).

    Args:
        path: path relative to the workspace's files directory
    """
    parts = rel_parts(path)
    with open_dir(ctx, parts[:-1], shown=path) as dfd:
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            raise ValidationError(f"no file {path!r} in the workspace", hint="`files.list` shows what is there",
                                  field="path") from None
        if stat.S_ISDIR(st.st_mode):
            raise ValidationError(f"{path!r} is a directory; only files are deleted", field="path")
        try:
            os.unlink(parts[-1], dir_fd=dfd)
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.EPERM):
                raise ValidationError(f"{path!r} is a directory; only files are deleted", field="path") from None
            raise
    return True


TOOLS = [read, write, list_files, delete]
