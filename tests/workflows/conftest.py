"""Workflows tests: tools with observable side effects (lines appended to a file) registered on a real
workstation, so every tool step passes the real gate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emergent.tools import SideEffect, ToolContext, tool


@tool(name="test.append", version="1.0.0", side_effect=SideEffect.WRITE)
def append(line: str, ctx: ToolContext, file: str = "log.txt") -> dict:
    """Append a line to a file of the workspace (a side effect a test can count).

    Args:
        line: the line
        file: the file under the workspace
    """
    path = Path(ctx.workspace) / file
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return {"line": line, "file": file}


@tool(name="test.unappend", version="1.0.0", side_effect=SideEffect.WRITE)
def unappend(line: str, ctx: ToolContext, file: str = "log.txt") -> dict:
    """Append an undo marker for a line (compensation).

    Args:
        line: the line undone
        file: the file under the workspace
    """
    path = Path(ctx.workspace) / file
    with path.open("a", encoding="utf-8") as fh:
        fh.write("undo " + line + "\n")
    return {"undone": line}


@tool(name="test.wait", version="1.0.0", side_effect=SideEffect.READ)
def wait(seconds: float, value: Any = None) -> Any:
    """Sleep, then return the value (a slow, read-only step).

    Args:
        seconds: how long
        value: what to return
    """
    time.sleep(seconds)
    return value


@tool(name="test.boom", version="1.0.0", side_effect=SideEffect.READ)
def boom(message: str = "boom") -> dict:
    """Always fails.

    Args:
        message: the error
    """
    raise RuntimeError(message)


TOOLS = [append, unappend, wait, boom]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.fixture
def wsx(ws: Any) -> Iterator[Any]:
    """The workstation with the test tools."""
    ws.tools.add(*TOOLS)
    yield ws


@pytest.fixture
def sws(sql_url: str, tmp_path: Path) -> Iterator[Any]:
    """A workstation with the test tools on each SQL backend (``sql_url``: SQLite, PostgreSQL when set)."""
    from emergent import Workstation

    w = Workstation.open(tmp_path / "home", embedder="hashing", database_url=sql_url)
    w.tools.add(*TOOLS)
    yield w
    w.close()
