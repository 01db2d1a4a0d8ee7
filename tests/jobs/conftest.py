"""Fixtures for the jobs tests: small real notebooks and a jobs service on a tmp workspace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest


def write_notebook(path: Path, *cells: str, params: str | None = None, kernel: str = "python3") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    if params is not None:
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def make_nb(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, *cells: str, params: str | None = None, kernel: str = "python3") -> Path:
        return write_notebook(tmp_path / "nbs" / f"{name}.ipynb", *cells, params=params, kernel=kernel)

    return make


@pytest.fixture
def jobs(ws: Any) -> Iterator[Any]:
    """ws.jobs on the tmp workspace, with a short lease so recovery tests do not wait long."""
    service = ws.jobs
    service.lease_s = 3.0
    yield service
