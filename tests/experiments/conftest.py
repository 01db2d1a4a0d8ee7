"""Fixtures: LoCoMo-shaped conversations written by tests/fixtures/locomo_like.py (no test reads a
LoCoMo file from outside the repository)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _locomo_like() -> ModuleType:
    if "locomo_like" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "fixtures" / "locomo_like.py"
        spec = importlib.util.spec_from_file_location("locomo_like", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["locomo_like"] = module
        spec.loader.exec_module(module)
    return sys.modules["locomo_like"]


@pytest.fixture(scope="session")
def locomo_like() -> ModuleType:
    """The generator module (``generate``, ``write``, ``Account``)."""
    return _locomo_like()


@pytest.fixture(scope="module")
def locomo_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A LoCoMo-format file of 4 generated conversations and the generator's account of it."""
    path = tmp_path_factory.mktemp("locomo") / "locomo-like.json"
    return path, _locomo_like().write(path, 4)
