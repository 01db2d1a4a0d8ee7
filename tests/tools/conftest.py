"""Fixtures for the tools tests: a SQL store and a bare registry/runner on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emergent.stores.sql import SQLStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    s = SQLStore(f"sqlite:///{tmp_path / 'tools.db'}")
    yield s
    s.dispose()
