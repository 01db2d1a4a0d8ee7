"""Helpers shared by the built-in tools: the workspace jail and the sandbox a call uses.

The jail is ``<workspace>/files``. A path given to a tool is relative to it and written in
canonical form (no ``..``, ``.``, empty or absolute parts), so that the path the gate matches its
rules against is the file the tool touches. Files are opened one directory at a time with
``O_NOFOLLOW`` relative to the directory above (``openat``): a symbolic link anywhere on the way is
refused (one pointing outside is reported as leaving the jail), and a link swapped in between a
check and the open cannot redirect it. Hard-linked files (a second name that may live outside the
jail) are refused too.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any

from emergent.errors import ConfigError, ValidationError
from emergent.tools.spec import ToolContext

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO must not hang the open
_HINT = "use a path relative to the workspace's files directory, such as 'notes/a.txt'"


def files_root(ctx: ToolContext) -> Path:
    """``<workspace>/files``: the only directory the file, sql and notebook tools touch."""
    if ctx.workspace is None:
        raise ConfigError("this tool needs a workspace", hint="run it through Workstation.tools.call(...)")
    root = (Path(ctx.workspace) / "files").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def workspace_tmp(ctx: ToolContext, name: str) -> Path:
    """``<workspace>/tmp/<name>``: scratch space of a tool, outside the files jail (mode 0700)."""
    if ctx.workspace is None:
        raise ConfigError("this tool needs a workspace", hint="run it through Workstation.tools.call(...)")
    path = Path(ctx.workspace).resolve() / "tmp" / name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def rel_parts(path: str, *, field: str = "path", allow_root: bool = False) -> tuple[str, ...]:
    """The components of a canonical relative path (the empty tuple is the files root itself)."""
    if "\x00" in path:
        raise ValidationError(f"{field} contains a NUL byte", hint=_HINT, field=field)
    if path in ("", "."):
        if allow_root:
            return ()
        raise ValidationError(f"{field} {path!r} names the files directory itself, not a file", hint=_HINT,
                              field=field)
    if path.startswith("/"):
        raise ValidationError(f"{field} {path!r} leaves the workspace's files directory (absolute paths are not "
                              "accepted)", hint=_HINT, field=field, path=path)
    parts = path.split("/")
    if ".." in parts:
        raise ValidationError(f"{field} {path!r} leaves the workspace's files directory ('..' is not accepted)",
                              hint=_HINT + ", without '..'", field=field, path=path)
    if any(p in ("", ".") for p in parts):
        canonical = str(PurePosixPath(path))
        raise ValidationError(f"{field} {path!r} is not in canonical form (empty or '.' parts)",
                              hint=f"write it as {canonical!r}: the policy's path rules match the path as written",
                              field=field, path=path)
    return tuple(parts)


def _refuse_link(dir_fd: int, name: str, shown: str, root: Path, field: str) -> None:
    """Raise the right error when ``name`` under ``dir_fd`` is a symbolic link (else return)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    if not stat.S_ISLNK(st.st_mode):
        return
    target = Path(os.readlink(name, dir_fd=dir_fd))
    where = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) if Path("/proc/self/fd").exists() else root
    resolved = (where / target).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise ValidationError(f"{field} {shown!r} leaves the workspace's files directory through the symbolic "
                              f"link {name!r} (to {str(target)!r})",
                              hint="the file tools never follow links; copy the file into the workspace instead",
                              field=field, path=shown)
    raise ValidationError(f"{field} {shown!r} goes through the symbolic link {name!r}; the file tools never follow "
                          "links (a link would let a path slip past the policy's path rules)",
                          hint=f"use the link's target path ({str(target)!r}) instead", field=field, path=shown)


@contextmanager
def open_dir(ctx: ToolContext, parts: tuple[str, ...], *, create: bool = False, shown: str = "",
             field: str = "path") -> Iterator[int]:
    """A directory fd for ``parts`` under the files root, walked without following links
    (``create``: make missing folders)."""
    root = files_root(ctx)
    fd = os.open(root, _DIR)
    try:
        for i, name in enumerate(parts):
            try:
                nfd = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise ValidationError(f"no folder {'/'.join(parts[:i + 1])!r} in the workspace",
                                          hint="`files.list` shows what is there", field=field) from None
                with suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                try:
                    nfd = os.open(name, _DIR, dir_fd=fd)
                except OSError:
                    _refuse_link(fd, name, shown or "/".join(parts), root, field)
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    _refuse_link(fd, name, shown or "/".join(parts), root, field)
                    raise ValidationError(f"{'/'.join(parts[:i + 1])!r} is a file, not a folder",
                                          hint=_HINT, field=field) from None
                raise
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def _check_regular(fd: int, path: str, field: str, *, writing: bool) -> os.stat_result:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise ValidationError(f"{path!r} is a directory", hint="use files.list to see what is inside", field=field)
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(f"{path!r} is not a regular file", hint="the file tools handle regular files only",
                              field=field)
    if st.st_nlink > 1:
        raise ValidationError(f"{path!r} has {st.st_nlink} hard links; the file tools do not "
                              f"{'write' if writing else 'read'} hard-linked files (another name of the same file "
                              "may be outside the workspace)", hint="copy the file instead of linking it",
                              field=field)
    return st


def read_bytes(ctx: ToolContext, path: str, *, limit: int | None = None, field: str = "path") -> bytes:
    """The bytes of a regular file inside the jail (no links followed); at most ``limit`` + 1 bytes."""
    parts = rel_parts(path, field=field)
    with open_dir(ctx, parts[:-1], shown=path, field=field) as dfd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | _FILE, dir_fd=dfd)
        except FileNotFoundError:
            raise ValidationError(f"no file {path!r} in the workspace", hint="`files.list` shows what is there",
                                  field=field) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _refuse_link(dfd, parts[-1], path, files_root(ctx), field)
            raise
    with os.fdopen(fd, "rb") as fh:
        _check_regular(fh.fileno(), path, field, writing=False)
        return fh.read() if limit is None else fh.read(limit + 1)


def write_bytes(ctx: ToolContext, path: str, data: bytes, *, append: bool = False, field: str = "path") -> int:
    """Write (or append) ``data`` to a file inside the jail, creating folders; returns its size."""
    parts = rel_parts(path, field=field)
    with open_dir(ctx, parts[:-1], create=True, shown=path, field=field) as dfd:
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | _FILE | (os.O_APPEND if append else 0), 0o666,
                         dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _refuse_link(dfd, parts[-1], path, files_root(ctx), field)
            if exc.errno == errno.EISDIR:
                raise ValidationError(f"{path!r} is a directory", hint=_HINT, field=field) from None
            raise
    with os.fdopen(fd, "wb") as fh:
        _check_regular(fh.fileno(), path, field, writing=True)
        if not append:
            fh.truncate(0)
        fh.write(data)
        fh.flush()
        return os.fstat(fh.fileno()).st_size


def check_pattern(pattern: str) -> str:
    """A glob for files.list: relative, no ``..``; a leading ``**/`` is implied (the search is recursive)."""
    if not pattern or "\x00" in pattern:
        raise ValidationError("pattern must be a non-empty glob without NUL bytes", hint="for example '*.csv'",
                              field="pattern")
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise ValidationError(f"pattern {pattern!r} reaches outside the folder being listed",
                              hint="a pattern matches names under `path`, e.g. '*.csv' or 'reports/*.md' "
                                   "(no '..', not absolute)", field="pattern")
    while pattern.startswith("**/"):
        pattern = pattern[3:]
    return pattern or "*"


def walk_files(ctx: ToolContext, parts: tuple[str, ...], pattern: str) -> list[str]:
    """Regular files under folder ``parts`` (recursively, never through links) whose path below it
    matches ``pattern``, as paths relative to the files root."""
    pattern = check_pattern(pattern)
    out: list[str] = []
    with open_dir(ctx, parts, shown="/".join(parts) or ".") as dfd:
        for dirpath, _dirs, names, dirfd in os.fwalk(".", dir_fd=dfd, follow_symlinks=False):
            below = PurePosixPath(dirpath)
            for name in names:
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # links, FIFOs, sockets, devices
                rel = below / name
                if rel.match(pattern):
                    out.append(str(PurePosixPath(*parts, rel)))
    return sorted(out)


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
