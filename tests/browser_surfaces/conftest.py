"""Fixtures of the browser surfaces' tests: one DemoSite and one workspace per module (its BrowserService
owns one Chromium, launched on first use), the person at the keyboard and an agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _surfaces import PASSWORD

from emergent.browser.demo import DemoSite


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as s:
        yield s


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ws") / "ws"


@pytest.fixture(scope="module")
def ws(site: DemoSite, home: Path) -> Iterator[Any]:
    from emergent import Workstation

    w = Workstation.open(home, embedder="hashing",
                         browser={"allow_hosts": [site.host], "trace": False, "timeout_ms": 3000,
                                  "secrets": {"portal_password": PASSWORD}})
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def human(ws: Any) -> Any:
    return ws.principal


@pytest.fixture(scope="module")
def agent(ws: Any) -> Any:
    return ws.principals.agent("scout", created_by=ws.principal)
