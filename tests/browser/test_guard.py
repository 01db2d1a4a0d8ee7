"""The host allow-list: URL decisions (ports, wildcards, IDNA, userinfo tricks) and, on real Chromium, the
blocks Playwright's routing alone would miss (redirect hops) beside sub-resources, pop-ups, iframes and
WebSockets — each audited browser.blocked under the principal whose session it was."""

from __future__ import annotations

from typing import Any

import pytest

from emergent.browser.demo import DemoSite
from emergent.browser.guard import attachment_name, host_allowed
from emergent.errors import PermissionDenied


@pytest.mark.parametrize(("url", "ok"), [
    ("http://example.org/a", True),
    ("https://EXAMPLE.org./a", True),
    ("http://sub.lab.org/x", True),
    ("http://lab.org/x", False),  # *.lab.org is sub-domains only
    ("http://127.0.0.1:8080/", True),
    ("http://127.0.0.1:8081/", False),
    ("http://127.0.0.1@evil.org/", False),  # userinfo: the host is evil.org
    ("http://example.org@127.0.0.1:8080/", True),
    ("http://bücher.de/", True),  # IDNA on both sides
    ("http://xn--bcher-kva.de/", True),
    ("ftp://example.org/", False),
    ("file:///etc/passwd", False),
    ("javascript:alert(1)", False),
    ("about:blank", True),
    ("about:config", False),
    ("data:text/html,hi", True),
    ("blob:http://example.org/uuid", True),
    ("blob:http://evil.org/uuid", False),
    ("http://[::1]:9000/", True),
    ("http://[::1]:9001/", False),
    ("http:///nohost", False),
    ("http://evil.org\\@example.org/", False),  # a browser reads the backslash as '/': the host is evil.org
    ("http://ex\tample.org/", True),  # tabs and newlines are dropped, as a browser does
    (" http://evil.org/", False),
])
def test_host_allowed(url: str, ok: bool) -> None:
    patterns = ["example.org", "*.lab.org", "127.0.0.1:8080", "BÜCHER.de", "[::1]:9000"]
    assert host_allowed(url, patterns) is ok


def test_attachment_names() -> None:
    assert attachment_name("attachment; filename=export.csv") == "export.csv"
    assert attachment_name('attachment; filename="a b.csv"') == "a b.csv"
    assert attachment_name("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf") == "résumé.pdf"
    assert attachment_name("inline; filename=x.pdf") is None and attachment_name(None) is None


def blocked(ws: Any, sid: str) -> list[dict[str, Any]]:
    return [e.data for e in ws.audit.entries(kind="browser.blocked") if e.data.get("session") == sid]


def test_an_off_list_redirect_is_blocked_though_playwright_does_not_route_redirect_hops(
        ws: Any, agent: Any, site: DemoSite) -> None:
    s = ws.browser.open(by=agent)
    try:
        n = len(site.requests)
        with pytest.raises(PermissionDenied, match="redirect: host not on the browser allow-list"):
            s.goto(site.url("/redirect-out"))
        assert not any(r.startswith("GET localhost") for r in site.requests[n:])  # never reached
        (b,) = blocked(ws, s.id)
        assert b["url"] == site.other + "/popup-target" and b["requested"] == site.url("/redirect-out")
        assert b["frame"] == "main" and b["resource_type"] == "document"
        actors = {e.actor for e in ws.audit.entries(kind="browser.blocked") if e.data.get("session") == s.id}
        assert actors == {agent.key}
        assert s.goto(site.url("/login"))["title"] == "Sign in"  # the session goes on
    finally:
        s.close()


def test_off_list_sub_resources_are_blocked_and_the_page_still_loads(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(by=human)
    try:
        n = len(site.requests)
        out = s.goto(site.url("/subresource"))
        assert out["title"] == "Tracker"  # the tracker script (it retitles the page to "tracked") never ran
        assert s.run(lambda p: p.locator("#ok").inner_text()) == "content"
        got = {(b["url"], b["resource_type"]) for b in blocked(ws, s.id)}
        assert got == {(site.other + "/pixel.gif", "image"), (site.other + "/tracker.js", "script")}
        assert not any("localhost" in r for r in site.requests[n:])
    finally:
        s.close()


def test_an_off_list_pop_up_is_closed_and_an_allowed_one_kept(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/popup"), by=human)
    try:
        async def open_elsewhere(page: Any) -> Any:
            async with page.context.expect_page() as info:
                await page.get_by_role("button", name="Open elsewhere").click()
            pop = await info.value
            await pop.wait_for_event("close", timeout=5000)
            return pop.is_closed()

        assert s.run(open_elsewhere) is True
        (b,) = blocked(ws, s.id)
        assert b["url"] == site.other + "/popup-target" and b["frame"] == "popup"

        async def open_details(page: Any) -> Any:
            async with page.context.expect_page() as info:
                await page.get_by_role("link", name="Open details").click()
            pop = await info.value
            await pop.wait_for_load_state()
            return pop.url

        assert s.run(open_details) == site.url("/popup-target")
        assert len(s.pages) == 2
        s.switch(1)
        assert s.run(lambda p: p.locator("h1").inner_text()) == "Details"
        assert len(blocked(ws, s.id)) == 1
    finally:
        s.close()


def test_an_off_list_iframe_and_websocket_are_blocked(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    try:
        async def embed(page: Any) -> Any:
            await page.evaluate("""(src) => { const f = document.createElement('iframe'); f.id = 'x';
                                   f.src = src; document.body.appendChild(f); }""", site.other + "/frame-inner")
            await page.wait_for_timeout(50)
            ws_state = await page.evaluate("""(u) => new Promise((done) => { const w = new WebSocket(u);
                w.onopen = () => done('open'); w.onclose = () => done('closed'); w.onerror = () => done('error'); })""",
                                           "ws://" + site.other.split("://")[1] + "/socket")
            return ws_state

        assert s.run(embed) in ("closed", "error")
        got = blocked(ws, s.id)
        frames = [b for b in got if b["resource_type"] == "document"]
        assert frames and frames[0]["url"] == site.other + "/frame-inner" and frames[0]["frame"] == "sub"
        assert [b["url"] for b in got if b["resource_type"] == "websocket"] == [
            "ws://" + site.other.split("://")[1] + "/socket"]
    finally:
        s.close()


def test_a_data_url_is_not_opened_as_a_page(ws: Any, agent: Any, site: DemoSite) -> None:
    from emergent.errors import ValidationError

    s = ws.browser.open(by=agent)
    try:
        with pytest.raises(ValidationError, match="not http"):
            submit = site.url("/submit")
            s.goto(f"data:text/html,<form method=post action='{submit}'></form>")
        with pytest.raises(ValidationError):
            s.goto("file:///etc/passwd")
    finally:
        s.close()
