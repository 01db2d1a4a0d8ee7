"""Fixtures of the browser tests: one DemoSite per module, one workspace per module (its BrowserService owns
one Chromium, launched on first use, shared by the module's tests), the person at the keyboard and an agent.

The workspace's allow-list is the demo site's host (``site.host``, i.e. 127.0.0.1:PORT): ``site.other``
(localhost:PORT, the same server under another name) is off the list, which is what the guard tests use.
Traces are off unless a test asks (``ws_factory(trace=True)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _driver import Driver

from emergent.browser.demo import DemoSite

PASSWORD = "hunter2-Zq9-conftest"


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as s:
        yield s


@pytest.fixture(scope="module")
def ws_factory(site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Open extra workspaces (closed at the end of the module): ``ws_factory(trace=True, timeout_ms=...)``
    sets ``browser`` settings over the defaults (allow-list: the demo site; a ``portal_password`` secret)."""
    from emergent import Workstation

    opened: list[Any] = []

    def make(**browser: Any) -> Any:
        conf: dict[str, Any] = {"allow_hosts": [site.host], "trace": False, "timeout_ms": 3000,
                                "secrets": {"portal_password": PASSWORD}}
        conf.update(browser)
        home: Path = tmp_path_factory.mktemp("ws") / "ws"
        w = Workstation.open(home, embedder="hashing", browser=conf)
        opened.append(w)
        return w

    yield make
    for w in reversed(opened):
        w.close()


@pytest.fixture(scope="module")
def ws(ws_factory: Callable[..., Any]) -> Any:
    """A workspace for the module (closed at its end)."""
    return ws_factory()


@pytest.fixture(scope="module")
def human(ws: Any) -> Any:
    return ws.principal


@pytest.fixture(scope="module")
def agent(ws: Any) -> Any:
    return ws.principals.agent("scout", created_by=ws.principal)


@pytest.fixture(scope="module")
def drv() -> Iterator[Driver]:
    """A bare Chromium for tests of the engine functions on a raw Playwright page."""
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def page(drv: Driver, site: DemoSite) -> Iterator[Any]:
    """A fresh context's page; the demo site is back to its original design afterwards."""
    ctx = drv.run(drv.browser.new_context())
    pg = drv.run(ctx.new_page())
    yield pg
    site.mutate(False)
    drv.run(ctx.close())
