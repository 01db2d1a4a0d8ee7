"""Locators on real Chromium against the demo site: describe ranks verified candidates, resolve waits for
late content and says what each candidate found, iframes, points, text search, the inventory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _driver import Driver

from emergent.browser import locators
from emergent.browser.demo import DemoSite
from emergent.browser.model import Candidate, Target
from emergent.errors import NotFoundError


class PageDriver(Driver):
    """The module's Chromium with one page the tests navigate."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = self.run(self.browser.new_context())
        self.page = self.run(self.ctx.new_page())

    def goto(self, url: str) -> Any:
        self.run(self.page.goto(url))
        return self.page

    def close(self) -> None:
        self.run(self.ctx.close())
        super().close()


@pytest.fixture(scope="module")
def drv() -> Iterator[PageDriver]:
    d = PageDriver()
    yield d
    d.close()


def test_describe_ranks_testid_role_then_css_and_each_finds_the_element(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/login"))
    t = drv.run(locators.describe(page.locator("#submit-btn")))
    kinds = [c.kind for c in t.candidates]
    assert kinds[0] == "testid" and t.candidates[0].value == "sign-in"
    assert ("role", "button", "Sign in") in [(c.kind, c.value, c.name) for c in t.candidates]
    assert kinds[-1] == "css"
    for c in t.candidates:  # every candidate finds exactly that element
        assert drv.run(locators.locator_for(page, c).get_attribute("id")) == "submit-btn"
        assert drv.run(locators.locator_for(page, c).count()) == 1
    assert t.fingerprint is not None and t.fingerprint.tag == "button" and t.fingerprint.role == "button"
    assert t.fingerprint.heading == "Sign in to the lab portal"
    email = drv.run(locators.describe(page.get_by_label("Email")))
    assert ("label", "Email") in [(c.kind, c.value) for c in email.candidates]
    assert email.fingerprint is not None and email.fingerprint.attrs["name"] == "email"


def test_describe_never_keeps_a_typed_value_in_the_fingerprint(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/login"))
    drv.run(page.fill("#password", "s3cret-value-x"))
    t = drv.run(locators.describe(page.locator("#password")))
    assert "s3cret-value-x" not in t.model_dump_json()


def test_resolve_takes_the_first_unique_candidate_and_reports_its_index(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/login"))
    target = Target(candidates=[Candidate(kind="css", value="#gone"), Candidate(kind="css", value="input"),
                                Candidate(kind="label", value="Password")])
    loc, cand, idx = drv.run(locators.resolve(page, target, timeout_ms=500))
    assert idx == 2 and cand.kind == "label"
    assert drv.run(loc.get_attribute("id")) == "password"


def test_resolve_says_what_each_candidate_found_when_none_matches(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/login"))
    target = Target(candidates=[Candidate(kind="css", value="#gone"), Candidate(kind="css", value="input")])
    with pytest.raises(NotFoundError) as err:
        drv.run(locators.resolve(page, target, timeout_ms=300))
    assert "#gone" in str(err.value) and "0 matches" in str(err.value)
    assert "matches" in str(err.value).split("input")[-1]


def test_resolve_waits_for_late_content(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/late?ms=700"))
    t0 = drv.loop.time()
    loc, _, _ = drv.run(locators.resolve(page, Target.of('role=button[name="Load results"]'), timeout_ms=5000))
    waited = drv.loop.time() - t0
    assert 0.4 < waited < 3.0
    drv.run(loc.click())
    assert drv.run(page.get_by_role("button").inner_text()) == "Loaded and clicked"


def test_an_element_in_an_iframe_is_described_with_its_frame_and_resolves(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/frame"))
    drv.run(page.frame_locator("#tool").get_by_label("Number").wait_for())
    t = drv.run(locators.describe(page.frame_locator("#tool").get_by_role("button", name="Double")))
    assert all(c.frame == "#tool" for c in t.candidates)
    drv.run(locators.locator_for(page, Candidate(kind="label", value="Number", frame="#tool")).fill("21"))
    loc, cand, _ = drv.run(locators.resolve(page, t, timeout_ms=2000))
    drv.run(loc.click())
    assert drv.run(page.frame_locator("#tool").locator("#out").inner_text()) == "42"


def test_describe_at_a_point_finds_the_actionable_element(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/login"))
    box = drv.run(page.locator("#submit-btn").bounding_box())
    assert box is not None
    t = drv.run(locators.describe_at(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
    assert t.fingerprint is not None and t.fingerprint.attrs.get("id") == "submit-btn"


def test_find_by_text_matches_labels_and_placeholders(drv: PageDriver, site: DemoSite) -> None:
    page = drv.goto(site.url("/login"))
    found = drv.run(locators.find_by_text(page, "project code"))
    assert [t.fingerprint.attrs.get("id") for t in found if t.fingerprint] == ["project"]
    terms = drv.run(locators.find_by_text(page, "agree"))
    ids = {t.fingerprint.attrs.get("id") or t.fingerprint.attrs.get("for") for t in terms if t.fingerprint}
    assert "agree" in ids


def test_inventory_lists_elements_with_unique_css_including_same_origin_iframes(drv: PageDriver,
                                                                                  site: DemoSite) -> None:
    page = drv.goto(site.url("/frame"))
    drv.run(page.frame_locator("#tool").get_by_label("Number").wait_for())
    inv = drv.run(locators.inventory(page))
    inner = [(fp, c) for fp, c in inv if c.frame == "#tool"]
    assert any(fp.role == "button" and fp.name == "Double" for fp, _ in inner)
    for _, c in inv:
        assert drv.run(locators.locator_for(page, c).count()) == 1
    page = drv.goto(site.url("/table"))
    inv = drv.run(locators.inventory(page))
    cells = [fp for fp, _ in inv if fp.tag == "td"]
    assert len(cells) == 50
    assert any(fp.role == "link" and fp.name == "Next" for fp, _ in inv)


LYING = """<script>(() => {
const sw = (v) => v === 'go' ? 'del' : v === 'del' ? 'go' : v === 'Go now' ? 'Delete everything'
  : v === 'Delete everything' ? 'Go now' : v;
const g = Element.prototype.getAttribute;
Element.prototype.getAttribute = function (n) { return sw(g.call(this, n)); };
const d = Object.getOwnPropertyDescriptor(HTMLElement.prototype, 'innerText');
Object.defineProperty(HTMLElement.prototype, 'innerText', {configurable: true, get() {
  const v = d.get.call(this); return sw(v.trim()); }});
Array.prototype.indexOf = function () { return 0; };
})();</script><button id='go' data-testid='go'>Go now</button><button id='del' data-testid='del'>Delete everything</button>"""


def test_a_page_lying_through_its_dom_apis_cannot_make_a_candidate_point_elsewhere(drv: PageDriver) -> None:
    page = drv.page
    drv.run(page.set_content(LYING))
    t = drv.run(locators.describe(page.locator("#go")))
    for c in t.candidates:  # every kept candidate finds the Go button in Playwright's own (isolated) engine
        loc = locators.locator_for(page, c)
        assert drv.run(loc.count()) == 1 and drv.run(loc.inner_text()) == "Go now", c
    assert "del" not in [c.value for c in t.candidates]
