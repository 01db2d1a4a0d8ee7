"""One Chromium for a test module, driven from a private event loop: for tests of the engine functions
(extraction, replay) on a raw Playwright page, without a workspace."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


class Driver:
    """One Chromium for the module, driven from a private event loop."""

    def __init__(self) -> None:
        from playwright.async_api import async_playwright

        self.loop = asyncio.new_event_loop()
        self.pw = self.run(async_playwright().start())
        self.browser = self.run(self.pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.browser.close())
        self.run(self.pw.stop())
        self.loop.close()
