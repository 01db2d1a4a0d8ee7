"""The browser widgets driven as the front-end drives them (buttons clicked, an ipyevents click on the
screenshot), on a real Chromium and the DemoSite: the SelectorBuilder finds an element by text and by a
point of its screenshot, ranks its locators with live counts, tests one (outlined screenshot), uses it,
and steps actions into a recording; the AutomationDesigner composes, previews, saves and runs a
workflow. Errors show in the widget; a widget acts only as the principal it was given."""

from __future__ import annotations

from typing import Any

import pytest
from _surfaces import login_script, table_template

from emergent.browser.model import Target
from emergent.errors import PermissionDenied, PrincipalError
from emergent.ui.browser import AutomationDesigner, SelectorBuilder, png_size


@pytest.fixture(scope="module")
def saved(ws: Any, human: Any, site: Any) -> None:
    ws.browser.save_script(login_script(site), by=human)
    ws.browser.save_template(table_template(site), by=human)


@pytest.fixture(scope="module")
def builder(ws: Any, human: Any, site: Any) -> Any:
    b = SelectorBuilder(ws.browser, by=human, url=site.url("/login"))
    yield b
    b.close()


def test_the_builder_shows_the_page_and_finds_an_element_by_its_text(builder: Any) -> None:
    w, h = png_size(bytes(builder.image.value))
    vp = builder.session.page.viewport_size
    assert (w, h) == (vp["width"], vp["height"])
    builder.text_box.value = "Email"
    builder.find_button.click()
    assert builder.found is not None, builder.status.value
    assert builder.found.fingerprint.tag == "input"  # the field, not its <label> that shows the text too
    assert len(builder.matches.options) >= 2
    kinds = [c.kind for c in builder.found.candidates]
    assert "label" in kinds and kinds[-1] == "css"  # most robust first, CSS last
    assert builder.counts and all(n == 1 for n in builder.counts)  # every listed locator finds just it
    assert len(builder.choices.options) == len(builder.found.candidates)
    assert builder.found.fingerprint.attrs.get("name") == "email"


def test_a_click_on_the_screenshot_picks_the_element_under_it(builder: Any) -> None:
    box = builder.session.run(lambda p: p.locator("#submit-btn").bounding_box())
    builder.on_click_event({"type": "click", "arrayX": box["x"] + box["width"] / 2,
                            "arrayY": box["y"] + box["height"] / 2})
    assert builder.found.fingerprint.tag == "button"
    assert any(c.kind == "testid" and c.value == "sign-in" for c in builder.found.candidates)
    builder.text_box.value = "Email"
    builder.find_button.click()  # something else chosen meanwhile
    w, h = png_size(bytes(builder.image.value))  # the screenshot shown at half its size, without arrayX/Y
    builder.on_click_event({"type": "click", "relativeX": (box["x"] + box["width"] / 2) / 2,
                            "relativeY": (box["y"] + box["height"] / 2) / 2,
                            "boundingRectWidth": w / 2, "boundingRectHeight": h / 2})
    assert builder.found.fingerprint.attrs.get("data-testid") == "sign-in"
    builder.x_box.value, builder.y_box.value = 1270, 790  # an empty corner of the page
    builder.pick_button.click()
    assert builder.found is None or builder.found.fingerprint.tag in ("body", "html")


def test_test_counts_live_and_outlines_and_use_sets_the_target(builder: Any) -> None:
    builder.text_box.value = "Password"
    builder.find_button.click()
    plain = bytes(builder.image.value)
    builder.choices.value = 0
    builder.test_button.click()
    assert "matches exactly one element" in builder.status.value
    assert bytes(builder.image.value) != plain  # the outlined screenshot
    builder.use_button.click()
    assert isinstance(builder.target, Target)
    assert builder.target.candidates[0] == builder.found.candidates[0]
    assert builder.target.fingerprint == builder.found.fingerprint
    assert builder.session.count(builder.target) == 1


def test_errors_show_in_the_widget_never_raise(builder: Any) -> None:
    builder.text_box.value = "   "
    builder.find_button.click()
    assert "ValidationError" in builder.status.value and "hint:" in builder.status.value
    builder.url_box.value = "http://example.org/"
    builder.go_button.click()  # off the allow-list: refused, shown
    assert "PermissionDenied" in builder.status.value
    assert builder.session.page.url.endswith("/login")  # the page it was on stays


def test_stepping_actions_from_the_widget_records_a_script(ws: Any, human: Any, site: Any) -> None:
    session = ws.browser.open(site.url("/login"), by=human, record="widget-login")
    b = SelectorBuilder(ws.browser, by=human, session=session)
    try:
        for text, action, value in (("Email", "fill", "step@example.org"), ("Project code", "fill", "P-7"),
                                    ("Sign in", "click", "")):
            b.text_box.value = text
            b.find_button.click()
            b.use_button.click()
            b.action.value, b.value_box.value = action, value
            b.do_button.click()
            assert "done" in b.status.value, b.status.value
        script = session.stop(save=False)
    finally:
        b.close()
        session.close()
    kinds = [a.kind for a in script.actions if a.kind != "navigate"]
    assert kinds[:3] == ["fill", "fill", "click"]
    assert site.submissions[-1]["email"] == "step@example.org"


def test_a_widget_acts_only_as_its_principal(ws: Any, human: Any, agent: Any, site: Any) -> None:
    with pytest.raises(PrincipalError):
        SelectorBuilder(ws.browser, by=human.key, url=site.url("/login"))  # type: ignore[arg-type]
    mine = ws.browser.open(site.url("/login"), by=human)
    try:
        with pytest.raises(PermissionDenied):
            SelectorBuilder(ws.browser, by=agent, session=mine.id)
    finally:
        mine.close()


def test_the_designer_composes_previews_saves_and_runs_a_workflow(ws: Any, human: Any, saved: None) -> None:
    d = AutomationDesigner(ws.browser, ws.workflows, by=human)
    assert "portal-login" in d.scripts.options and "assays" in d.templates.options
    d.name_box.value = "designed"
    d.scripts.value = "portal-login"
    d.add_script_button.click()
    d.templates.value = "assays"
    d.pages_box.value = 2
    d.add_template_button.click()
    d.steps.value = 1
    d.up_button.click()  # extraction first, then the login
    assert [label for label, _ in d.steps.options] == ["1. extract assays", "2. replay portal-login"]
    d.down_button.click()
    d.preview_button.click()
    assert "browser.replay" in d.yaml.value and "browser.extract" in d.yaml.value
    d.save_button.click()
    assert "saved workflow designed" in d.status.value, d.status.value
    assert [s.tool for s in ws.workflows.named("designed").steps] == ["browser.replay", "browser.extract"]
    d.inputs_box.value = "email=designer@example.org"
    d.run_button.click()
    assert d.last_run is not None and d.last_run.status == "completed", d.status.value
    assert len(d.last_run.outputs["assays"]) == 20  # two pages, as asked
    d.inputs_box.value = "not a pair"
    d.run_button.click()
    assert "ValidationError" in d.status.value


def test_the_designer_shows_a_missing_choice_as_an_error(ws: Any, human: Any) -> None:
    d = AutomationDesigner(ws.browser, ws.workflows, by=human)
    d.scripts.options = []
    d.add_script_button.click()
    assert "no script chosen" in d.status.value
    d.preview_button.click()
    assert "needs at least one" in d.status.value
