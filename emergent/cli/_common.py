"""Helpers shared by CLI modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

HOME = typer.Option(None, "--home", help="workspace directory (default: EMERGENT_HOME)")


@contextmanager
def workstation(home: str | None, **overrides: Any) -> Iterator[Any]:
    from emergent.workstation import Workstation

    ws = Workstation.open(home, **overrides)
    try:
        yield ws
    finally:
        ws.close()
