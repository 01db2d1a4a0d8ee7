"""Helpers shared by CLI modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # pragma: no cover
    from emergent.workstation import Workstation

HOME = typer.Option(None, "--home", help="workspace directory (default: EMERGENT_HOME)")
#: set by ``emergent --create ...``: a workspace directory that does not exist is created
CREATE = False


@contextmanager
def workstation(home: str | None, *, create: bool | None = None, **overrides: Any) -> Iterator[Workstation]:
    """Open the workspace at ``home`` (else EMERGENT_HOME); a missing one is an error unless
    ``create`` (``emergent --create`` or ``emergent init``)."""
    from emergent.workstation import Workstation

    ws = Workstation.open(home, create=CREATE if create is None else create, **overrides)
    try:
        yield ws
    finally:
        ws.close()
