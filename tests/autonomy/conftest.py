"""Fixtures for the autonomy tests: a SQL store, a fake clock and the gate on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emergent.clock import FakeClock
from emergent.stores.sql import SQLStore


@pytest.fixture
def store(sql_url: str) -> Iterator[SQLStore]:
    s = SQLStore(sql_url)
    yield s
    s.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gate(store: SQLStore, clock: FakeClock) -> Iterator[object]:
    from emergent.autonomy.service import Autonomy

    a = Autonomy(store, clock=clock)
    yield a
    a.close()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def human(gate: object) -> object:
    """The OS user, issued by the gate's principal directory."""
    return gate.principals.os_user()  # type: ignore[attr-defined]


@pytest.fixture
def bot(gate: object, human: object) -> object:
    """agent:a, created by the human."""
    return gate.principals.agent("a", created_by=human)  # type: ignore[attr-defined]
