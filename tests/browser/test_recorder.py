"""Recording on real Chromium: through the session API and from events a person makes in the page
(page.mouse / page.keyboard), secrets kept out of the script, the recorded script replayed by the service
(unchanged, then on the redesigned site: healed, proposed as a new version a person accepts), with a trace."""

from __future__ import annotations

import zipfile
from typing import Any

import pytest

from emergent.browser.demo import DemoSite
from emergent.browser.model import Action
from emergent.browser.recorder import Recorder
from emergent.errors import PermissionDenied, ValidationError

PASSWORD = "hunter2-Zq9-conftest"  # tests/browser/conftest.py configures it as portal_password


def test_recording_through_the_api_makes_a_parameterised_script_without_the_secret(
        ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/login"), by=human, record="portal-login")
    try:
        s.fill("label=Email", "ada@example.org", param="email")
        s.fill("label=Password", PASSWORD)  # the configured secret's value, typed: becomes a reference
        s.select("label=Country", "Brazil", param="country")
        s.check("label=I agree to the terms")
        s.click("#submit-btn")
        script = s.stop(description="sign in to the portal")
    finally:
        s.close()
    assert [a.kind for a in script.actions] == ["navigate", "fill", "fill", "select", "check", "click"]
    assert script.actions[1].value == "${params.email}" and script.actions[2].value == "${secrets.portal_password}"
    assert {p.name: p.default for p in script.params} == {"email": "ada@example.org", "country": "Brazil"}
    assert script.secrets == ["portal_password"] and script.side_effect == "external"
    assert script.actions[-1].submits is True
    assert script.actions[-1].target is not None and script.actions[-1].target.candidates[0].kind == "testid"
    assert PASSWORD not in script.to_yaml() and PASSWORD not in repr(ws.audit.entries())
    stored = ws.browser.script("portal-login")
    assert stored.digest() == script.digest()
    assert ws.audit.entries(kind="browser.save")[-1].data["name"] == "portal-login"


def test_a_password_field_becomes_a_secret_named_after_its_label() -> None:
    from emergent.browser.model import Fingerprint, Target

    pw = Target.of("#pw").model_copy(update={"fingerprint": Fingerprint(tag="input", label="Lab password",
                                                                        attrs={"type": "password"})})
    r = Recorder("x", {"portal_password": "not-this"})
    act = r.add(Action(kind="fill", target=pw, value="typed-by-hand-123"))
    assert act.value == "${secrets.lab_password}" and r.secrets == ["lab_password"]
    assert "typed-by-hand-123" not in repr(r.__dict__) and "typed-by-hand-123" not in r.script().to_yaml()
    with pytest.raises(ValidationError, match="reference"):
        r.add(Action(kind="fill", target=Target.of("#q"), value="${oops}x".replace("${oops}", "$" + "{x")))
    with pytest.raises(ValidationError):
        Recorder("Bad Name")


def test_a_recorded_script_replays_and_heals_on_the_redesign(ws_factory: Any, site: DemoSite) -> None:
    w = ws_factory(trace=True)
    me = w.principal
    s = w.browser.open(site.url("/login"), by=me, record="login-heal")
    s.fill("label=Email", "grace@example.org", param="email")
    s.fill("#password", "${secrets.portal_password}")
    s.click('role=button[name="Sign in"]')
    script = s.stop()
    s.close()
    n = len(site.submissions)
    r1 = w.browser.replay("login-heal", {"email": "linus@example.org"}, by=me)
    assert r1.status == "completed", r1.error
    assert site.submissions[n]["email"] == "linus@example.org" and site.submissions[n]["password"] == PASSWORD
    assert r1.trace == f"browser/traces/{r1.run_id}.zip"
    assert "trace.trace" in zipfile.ZipFile(w.path / r1.trace).namelist()
    with zipfile.ZipFile(w.path / r1.trace) as z:  # the typed secret is not in any part of the trace
        assert not [m for m in z.namelist() if PASSWORD.encode() in z.read(m)]
    steps = [e.data for e in w.audit.entries(kind="browser.action") if e.data.get("run") == r1.run_id]
    assert [d["action"] for d in steps] == ["navigate", "fill", "fill", "click"]
    site.mutate(True)
    try:
        r2 = w.browser.replay("login-heal", by=me, trace=False)
    finally:
        site.mutate(False)
    assert r2.status == "completed", r2.error
    assert r2.healed >= 1 and r2.proposed_version == "1.1.0" and r2.trace is None
    assert site.submissions[-1]["email"] == "grace@example.org"  # the parameter's recorded default
    proposed = w.browser.script("login-heal", "1.1.0")
    assert proposed.healed_from == script.version
    assert w.browser.script("login-heal").version == "1.0.0"  # still the active one
    agent = w.principals.agent("helper", created_by=me)
    with pytest.raises(PermissionDenied, match="only a person"):
        w.browser.accept("script", "login-heal", "1.1.0", by=agent)
    with pytest.raises(PermissionDenied, match="proposed"):  # an agent cannot run the unreviewed version
        w.browser.replay("login-heal", version="1.1.0", by=agent)
    with pytest.raises(PermissionDenied, match="may not save an active version"):
        w.browser.save_script(script.model_copy(update={"version": "9.0.0"}), by=agent)
    w.browser.accept("script", "login-heal", "1.1.0", by=me)
    assert w.browser.script("login-heal").version == "1.1.0"
    runs = w.browser.runs(script="login-heal")
    assert {r["status"] for r in runs} == {"completed"} and len(runs) == 2
    with pytest.raises(ValidationError, match="no parameter"):
        w.browser.replay("login-heal", {"nope": "x"}, by=me)


def test_a_person_driving_the_page_is_recorded_once_per_action(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    s.record("by-hand")
    s.fill("label=Email", "api@example.org")  # through the API: recorded once, not echoed from the page

    async def drive(page: Any) -> None:
        box = await page.locator("#project").bounding_box()
        await page.mouse.click(box["x"] + 5, box["y"] + 5)
        await page.keyboard.type("PRJ-7")
        await page.locator("#password").focus()
        await page.keyboard.type(PASSWORD)
        cb = await page.locator("#agree").bounding_box()
        await page.mouse.click(cb["x"] + 3, cb["y"] + 3)
        await page.wait_for_timeout(100)
        b = await page.locator("#submit-btn").bounding_box()
        await page.mouse.click(b["x"] + 5, b["y"] + 5)
        await page.wait_for_load_state()
        await page.wait_for_timeout(100)

    s.run(drive)
    script = s.stop(save=False)
    s.close()
    kinds = [(a.kind, a.value) for a in script.actions]
    assert kinds == [("navigate", site.url("/login")), ("fill", "api@example.org"), ("fill", "PRJ-7"),
                     ("fill", "${secrets.portal_password}"), ("check", None), ("click", None)]
    assert script.actions[-1].submits is True
    proj = script.actions[2].target
    assert proj is not None and [(c.kind, c.value) for c in proj.candidates[:2]] == [
        ("role", "textbox"), ("placeholder", "Project code")]
    assert PASSWORD not in script.to_yaml()
