"""Replaying recorded scripts on real Chromium against the demo site: unchanged, redesigned (healing),
ambiguous or absent elements (never a wrong click), the model's pick, parameters and secrets, late content."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from _driver import Driver

from emergent.browser import locators
from emergent.browser.demo import DemoSite
from emergent.browser.model import Action, Candidate, Fingerprint, Param, Script, Target
from emergent.browser.replay import replay_script
from emergent.errors import ValidationError
from emergent.providers.llm import OpenAIChatModel
from emergent.providers.local_openai import LocalOpenAIServer

SECRET = "hunter2-Zq9"
NAV_MS = 15_000  # navigations keep a long timeout: the short ones under test are the elements' (a loaded CI box)


async def _record(page: Any, url: str, selectors: list[str]) -> list[Target]:
    """What the recorder keeps for each element: ``describe`` of it on the live page."""
    await page.goto(url)
    return [await locators.describe(page.locator(sel)) for sel in selectors]


LOGIN_FIELDS = ["#email", "#password", "#country", "#agree", "#project", "#submit-btn"]


def _login_script(site: DemoSite, targets: list[Target]) -> Script:
    email, password, country, agree, project, submit = targets
    return Script(name="login", params=[Param(name="email"), Param(name="project", default="P-7")], actions=[
        Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
        Action(kind="fill", target=email, value="${params.email}"),
        Action(kind="fill", target=password, value="${secrets.lab_pw}"),
        Action(kind="select", target=country, value="Denmark"),
        Action(kind="check", target=agree),
        Action(kind="fill", target=project, value="${params.project}"),
        Action(kind="click", target=submit, submits=True),
    ])


EXPECTED = {"email": "ada@lab.org", "password": SECRET, "country": "de", "agree": "on", "project": "P-7",
            "report": ""}


def _sent(site: DemoSite, before: int) -> list[dict[str, Any]]:
    return site.submissions[before:]


def _replay(drv: Driver, page: Any, script: Script, *, params: dict[str, str] | None = None,
            secrets: dict[str, str] | None = None, timeout_ms: int = 3000, **kw: Any) -> Any:
    return drv.run(replay_script(page, script, params=params or {}, secrets=secrets or {"lab_pw": SECRET},
                                 timeout_ms=timeout_ms, **kw))


def test_a_twenty_action_script_replays_on_the_unchanged_site(drv: Driver, page: Any, site: DemoSite) -> None:
    login = drv.run(_record(page, site.url("/login"), LOGIN_FIELDS))
    nxt = drv.run(_record(page, site.url("/table"), ["a.next"]))[0]
    late = Target(candidates=[Candidate(kind="role", value="button", name="Load results")])
    number = Target(candidates=[Candidate(kind="label", value="Number", frame="#tool")])
    double = Target(candidates=[Candidate(kind="role", value="button", name="Double", frame="#tool")])
    actions = [*_login_script(site, login).actions,
               Action(kind="click", target=Target.of("role=link[name=\"Results\"]")),      # 8
               Action(kind="click", target=nxt), Action(kind="click", target=nxt),        # 10
               Action(kind="click", target=nxt),
               Action(kind="wait", target=Target.of("text=Page 4 of 6")),                   # 12
               Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/frame")),
               Action(kind="fill", target=number, value="21"),                              # 14
               Action(kind="click", target=double),
               Action(kind="wait", target=Target(candidates=[Candidate(kind="text", value="42", frame="#tool")])),
               Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/late?ms=300")),                     # 17
               Action(kind="click", target=late),
               Action(kind="wait", target=Target.of("text=Loaded and clicked")),
               Action(kind="press", target=Target.of("#slot button"), value="Tab")]          # 20
    script = Script(name="tour", params=[Param(name="email"), Param(name="project", default="P-7")],
                    actions=actions)
    assert len(script.actions) == 20
    seen: list[tuple[int, str]] = []
    before = len(site.submissions)
    outcomes, outputs, healed = _replay(drv, page, script, params={"email": "ada@lab.org"},
                                        on_step=lambda i, a, text: seen.append((i, text)))
    assert [o.status for o in outcomes] == ["ok"] * 20, [o.error for o in outcomes if o.error]
    assert healed is None and outputs == {}
    assert _sent(site, before) == [EXPECTED]
    assert [i for i, _ in seen] == list(range(20))
    assert seen[2][1] == "fill " + login[1].describe() + " '(secret lab_pw)'"
    assert drv.run(page.get_by_role("button").text_content()) == "Loaded and clicked"
    assert all(o.used is not None for o in outcomes if o.kind not in ("navigate",))


def test_the_redesigned_login_heals_to_the_right_fields_and_the_healed_script_leads_with_what_worked(
        drv: Driver, page: Any, site: DemoSite) -> None:
    script = _login_script(site, drv.run(_record(page, site.url("/login"), LOGIN_FIELDS)))
    site.mutate(True)
    before = len(site.submissions)
    outcomes, _, healed = _replay(drv, page, script, params={"email": "ada@lab.org"})
    assert [o.status for o in outcomes if o.status == "failed"] == [], [o.error for o in outcomes]
    by = {o.index: o.healed_by for o in outcomes}
    assert by[0] is None  # navigate
    # the email field's label became "E-mail address" and its id, class changed: similarity
    assert outcomes[1].status == "healed" and by[1] in ("alternative", "similarity")
    assert outcomes[6].status == "healed"  # the button: test id and text changed ("Sign in now")
    assert _sent(site, before) == [EXPECTED]  # every value went into the right field
    assert healed is not None and healed.version == script.version and healed.name == script.name
    for o in outcomes:
        if o.status == "healed":
            new_first = healed.actions[o.index].target.candidates[0]  # type: ignore[union-attr]
            assert new_first != script.actions[o.index].target.candidates[0]  # type: ignore[union-attr]
            kept = script.actions[o.index].target.candidates  # type: ignore[union-attr]
            assert set(kept) <= set(healed.actions[o.index].target.candidates)  # type: ignore[union-attr]
    # the healed script replays on the redesign without healing anything
    outcomes2, _, healed2 = _replay(drv, page, healed, params={"email": "bob@lab.org"})
    assert [o.status for o in outcomes2] == ["ok"] * 7 and healed2 is None
    assert site.submissions[-1]["email"] == "bob@lab.org"


def test_without_healing_the_redesign_fails_at_the_first_broken_field(drv: Driver, page: Any,
                                                                      site: DemoSite) -> None:
    targets = drv.run(_record(page, site.url("/login"), ["#email"]))
    script = Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
                                       Action(kind="fill", target=Target(candidates=[targets[0].candidates[-1]],
                                                                         fingerprint=targets[0].fingerprint),
                                              value="a@b.org")])
    site.mutate(True)
    outcomes, _, healed = _replay(drv, page, script, heal=False, timeout_ms=500)
    assert [o.status for o in outcomes] == ["ok", "failed"] and healed is None
    assert 450 <= outcomes[1].ms < 2000  # waited its timeout, no longer
    outcomes, _, healed = _replay(drv, page, script, timeout_ms=2000)
    assert outcomes[1].status == "healed" and outcomes[1].healed_by == "similarity"


def test_broken_css_and_test_id_candidates_heal_by_the_recorded_alternatives(drv: Driver, page: Any,
                                                                             site: DemoSite) -> None:
    password = Target(candidates=[Candidate(kind="css", value="#password"), Candidate(kind="label", value="Password")])
    submit = Target(candidates=[Candidate(kind="testid", value="sign-in"),
                                Candidate(kind="role", value="button", name="Sign in", exact=False)])
    script = Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
                                       Action(kind="fill", target=password, value="pw"),
                                       Action(kind="click", target=submit, submits=True)])
    site.mutate(True)
    before = len(site.submissions)
    outcomes, _, healed = _replay(drv, page, script)
    assert [(o.status, o.healed_by) for o in outcomes] == [("ok", None), ("healed", "alternative"),
                                                          ("healed", "alternative")]
    assert site.submissions[before:][0]["password"] == "pw"
    assert healed is not None
    assert healed.actions[1].target.candidates == [password.candidates[1], password.candidates[0]]  # type: ignore[union-attr]
    assert [c.kind for c in healed.actions[2].target.candidates] == ["role", "testid"]  # type: ignore[union-attr]


DUPLICATES = """<h1>Results</h1>
<table><tr><td>CMP-1</td><td><button type='button' onclick="window.clicks.push(1)">Delete</button></td></tr>
<tr><td>CMP-2</td><td><button type='button' onclick="window.clicks.push(2)">Delete</button></td></tr></table>
<script>window.clicks = []</script>"""


def test_an_ambiguous_element_is_not_healed_and_nothing_is_clicked(drv: Driver, page: Any, site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table")))
    drv.run(page.set_content(DUPLICATES))
    fp = Fingerprint(tag="button", role="button", name="Delete", text="Delete", heading="Results",
                     attrs={"type": "button", "id": "del-2"}, index=1)
    target = Target(candidates=[Candidate(kind="css", value="#del-2")], fingerprint=fp)
    script = Script(name="x", actions=[Action(kind="click", target=target), Action(kind="click", target=target)])
    outcomes, _, healed = _replay(drv, page, script, timeout_ms=800)
    assert [o.status for o in outcomes] == ["failed", "skipped"] and healed is None
    err = outcomes[0].error or ""
    assert "css '#del-2'" in err and "ambiguous" in err, err
    assert drv.run(page.evaluate("window.clicks")) == []


def test_an_absent_element_fails_with_a_message_naming_what_was_tried(drv: Driver, page: Any,
                                                                      site: DemoSite) -> None:
    target = Target(candidates=[Candidate(kind="testid", value="delete-all"),
                                Candidate(kind="role", value="button", name="Delete everything")],
                    fingerprint=Fingerprint(tag="button", role="button", name="Delete everything",
                                            text="Delete everything", heading="Danger zone",
                                            attrs={"type": "submit"}))
    script = Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
                                       Action(kind="click", target=target, submits=True)])
    before = len(site.submissions)
    outcomes, _, healed = _replay(drv, page, script, timeout_ms=800)
    assert [o.status for o in outcomes] == ["ok", "failed"] and healed is None
    err = outcomes[1].error or ""
    assert err.startswith("step 1 (click ")
    assert "testid 'delete-all'" in err and 'role button "Delete everything"' in err
    assert "similarity: no element is similar enough" in err and "model: no model configured" in err
    assert len(site.submissions) == before  # "Sign in" was NOT clicked instead


def _pick(text: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A model that reads the numbered elements in the prompt and answers the one whose line has ``text``."""
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        listing = body["messages"][-1]["content"]
        for line in listing.splitlines():
            m = re.match(r"^(\d+): (.*)$", line)
            if m and text in m.group(2):
                return {"content": json.dumps({"index": int(m.group(1)), "reason": "same purpose"})}
        return {"content": json.dumps({"index": None, "reason": "not there"})}
    return answer


def _unrecognisable_submit() -> Target:
    """The sign-in button recorded under a name similarity cannot connect to the redesign's "Sign in now"."""
    return Target(candidates=[Candidate(kind="testid", value="sign-in")],
                  fingerprint=Fingerprint(tag="button", role="button", name="Log on", text="Log on",
                                          attrs={"type": "submit"}))


def _submit_script(site: DemoSite) -> Script:
    return Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
                                     Action(kind="click", target=_unrecognisable_submit(), submits=True)])


def test_the_model_heals_what_similarity_cannot(drv: Driver, page: Any, site: DemoSite) -> None:
    site.mutate(True)
    before = len(site.submissions)
    with LocalOpenAIServer(default=_pick("Sign in now")) as server:
        model = OpenAIChatModel("local-model", base_url=server.base_url, max_retries=0)
        outcomes, _, healed = _replay(drv, page, _submit_script(site), timeout_ms=1500, model=model)
        asked = server.requests
    assert [o.status for o in outcomes] == ["ok", "healed"] and outcomes[1].healed_by == "model"
    assert len(asked) == 1 and "Log on" in asked[0]["body"]["messages"][-1]["content"]
    assert len(site.submissions) == before + 1
    assert healed is not None
    first = healed.actions[1].target.candidates[0]  # type: ignore[union-attr]
    assert first != Candidate(kind="testid", value="sign-in")


def test_the_model_is_asked_once_even_when_the_timeout_runs_out_first(drv: Driver, page: Any,
                                                                       site: DemoSite) -> None:
    site.mutate(True)
    with LocalOpenAIServer(default=_pick("Sign in now")) as server:
        model = OpenAIChatModel("local-model", base_url=server.base_url, max_retries=0)
        script = Script(name="x", actions=[
            Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
            Action(kind="click", target=_unrecognisable_submit(), submits=True, timeout_ms=100)])
        outcomes, _, _ = _replay(drv, page, script, model=model)
        assert len(server.requests) == 1
    assert [(o.status, o.healed_by) for o in outcomes] == [("ok", None), ("healed", "model")], outcomes[1].error


GARBAGE = [{"content": "none"}, {"content": json.dumps({"index": None})}, {"content": json.dumps({"index": 99})},
           {"content": "{\"index\": \"two\"}"}]


def test_a_model_answering_garbage_or_none_heals_nothing(drv: Driver, page: Any, site: DemoSite) -> None:
    site.mutate(True)
    before = len(site.submissions)
    for answer in GARBAGE:
        with LocalOpenAIServer(default=answer) as server:
            model = OpenAIChatModel("local-model", base_url=server.base_url, max_retries=0)
            outcomes, _, healed = _replay(drv, page, _submit_script(site), timeout_ms=600, model=model)
            assert server.requests, answer
        assert [o.status for o in outcomes] == ["ok", "failed"] and healed is None, answer
        err = outcomes[1].error or ""
        assert "model: " in err and "no model configured" not in err and "not asked" not in err, err
    assert len(site.submissions) == before


def test_missing_params_and_secrets_are_refused_before_anything_runs(drv: Driver, page: Any,
                                                                     site: DemoSite) -> None:
    script = _login_script(site, [Target.of(s) for s in LOGIN_FIELDS])
    steps: list[int] = []
    with pytest.raises(ValidationError) as err:
        drv.run(replay_script(page, script, params={}, secrets={}, timeout_ms=1000,
                              on_step=lambda i, a, t: steps.append(i)))
    assert "email" in err.value.message and "lab_pw" in err.value.message
    assert steps == [] and page.url == "about:blank"


def test_secret_values_never_appear_in_step_texts_outcomes_or_errors(drv: Driver, page: Any,
                                                                     site: DemoSite) -> None:
    script = Script(name="x", actions=[
        Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
        Action(kind="fill", target=Target.of("#password"), value="${secrets.lab_pw}"),
        Action(kind="select", target=Target.of("#country"), value="${secrets.lab_pw}", timeout_ms=600),
    ])
    texts: list[str] = []
    outcomes, _, _ = _replay(drv, page, script, on_step=lambda i, a, t: texts.append(t))
    assert [o.status for o in outcomes] == ["ok", "ok", "failed"]
    assert drv.run(page.locator("#password").input_value()) == SECRET  # it was typed
    dumped = json.dumps([o.model_dump() for o in outcomes]) + json.dumps(texts)
    assert SECRET not in dumped and "(secret lab_pw)" in dumped


def test_late_content_is_waited_for_within_the_timeout(drv: Driver, page: Any, site: DemoSite) -> None:
    late = Target(candidates=[Candidate(kind="role", value="button", name="Load results")])
    script = Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/late?ms=800")),
                                       Action(kind="click", target=late)])
    outcomes, _, _ = _replay(drv, page, script, timeout_ms=4000)
    assert [o.status for o in outcomes] == ["ok", "ok"] and outcomes[1].ms >= 500
    assert drv.run(page.get_by_role("button").text_content()) == "Loaded and clicked"
    outcomes, _, _ = _replay(drv, page, script.model_copy(update={"actions": [
        Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/late?ms=3000")), Action(kind="click", target=late,
                                                                         timeout_ms=400)]}), timeout_ms=4000)
    assert [o.status for o in outcomes] == ["ok", "failed"] and 350 <= outcomes[1].ms < 2000


def test_upload_and_extract_steps_use_the_given_file_resolver_and_extractor(drv: Driver, page: Any,
                                                                            site: DemoSite) -> None:
    from emergent.bench.browser import table_template
    from emergent.browser.extract import extract_rows

    templates = {"results": table_template()}
    opened: list[str] = []

    def files(path: str) -> tuple[str, bytes]:
        opened.append(path)
        return "report.csv", b"compound,ic50\nCMP-1,4.2\n"

    async def extract(pg: Any, name: str) -> list[dict[str, Any]]:
        return await extract_rows(pg, templates[name], timeout_ms=3000, max_pages=2)

    script = Script(name="x", actions=[
        Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
        Action(kind="upload", target=Target.of("label=Report"), value="reports/q3.csv"),
        Action(kind="click", target=Target.of("role=button[name=\"Sign in\"]"), submits=True),
        Action(kind="click", target=Target.of("role=link[name=\"Results\"]")),
        Action(kind="extract", value="results", output="first_pages"),
    ])
    before = len(site.uploads)
    with pytest.raises(ValidationError, match="file resolver"):
        drv.run(replay_script(page, script, params={}, secrets={}, timeout_ms=3000, extract=extract))
    outcomes, outputs, _ = _replay(drv, page, script, files=files, extract=extract)
    assert [o.status for o in outcomes] == ["ok"] * 5, [o.error for o in outcomes]
    assert opened == ["reports/q3.csv"]
    assert site.uploads[before:] == [{"field": "report", "size": 24, "head": b"compound,ic50\nCMP-1,4.2\n"}]
    rows = outputs["first_pages"]
    assert len(rows) == 20 and rows[0]["compound"] == "CMP-0001" and rows[19]["compound"] == "CMP-0020"


def test_an_on_step_error_stops_the_replay_before_that_action(drv: Driver, page: Any, site: DemoSite) -> None:
    script = Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
                                       Action(kind="fill", target=Target.of("#email"), value="a@b.org")])

    def audit(i: int, action: Action, text: str) -> None:
        if i == 1:
            raise OSError("audit log is read-only")

    with pytest.raises(OSError, match="read-only"):
        _replay(drv, page, script, on_step=audit)
    assert drv.run(page.locator("#email").input_value()) == ""


def test_navigation_goes_through_the_given_callback_and_a_refusal_fails_the_step(drv: Driver, page: Any,
                                                                                site: DemoSite) -> None:
    from emergent.errors import PermissionDenied

    visited: list[str] = []

    async def guarded(pg: Any, url: str) -> None:
        visited.append(url)
        if not url.startswith(site.base):
            raise PermissionDenied(f"navigation to {url} is blocked: host not allowed", hint="add it to allow_hosts")
        await pg.goto(url)

    script = Script(name="x", actions=[Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/table")),
                                       Action(kind="navigate", timeout_ms=NAV_MS, value=site.other + "/popup-target"),
                                       Action(kind="click", target=Target.of("a.next"))])
    outcomes, _, _ = _replay(drv, page, script, navigate=guarded)
    assert [o.status for o in outcomes] == ["ok", "failed", "skipped"]
    assert visited == [site.url("/table"), site.other + "/popup-target"]
    assert "blocked: host not allowed" in (outcomes[1].error or "") and page.url == site.url("/table")


def test_nothing_is_healed_from_a_page_that_is_being_replaced(drv: Driver, page: Any) -> None:
    """A click whose script navigates a moment later to a slow page; the next step's element is on the new
    page. Until it is there, the old page shows a very similar element ("Page 1 of 6"): healing must wait
    for the new page instead of picking it."""
    with DemoSite(latency_s=0.8) as slow:
        recorded = drv.run(_record(page, slow.url("/table?page=2"), ["span.page"]))[0]
        pager = Target(candidates=[Candidate(kind="text", value="Page 2 of 6")], fingerprint=recorded.fingerprint)
        drv.run(page.goto(slow.url("/table")))
        drv.run(page.evaluate("""() => { const b = document.createElement('button'); b.textContent = 'Go';
            b.onclick = () => setTimeout(() => { location.href = '/table?page=2' }, 5);
            document.body.appendChild(b); }"""))
        script = Script(name="x", actions=[Action(kind="click", target=Target.of("role=button[name=\"Go\"]")),
                                           Action(kind="wait", target=pager)])
        outcomes, _, healed = _replay(drv, page, script, timeout_ms=4000)
    assert [(o.status, o.healed_by) for o in outcomes] == [("ok", None)] * 2 and healed is None


def test_the_model_never_sees_a_secret_the_page_echoes(drv: Driver, page: Any, site: DemoSite) -> None:
    hidden = "zq9-hidden@lab.org"  # typed into the email field (a valid email, so the form submits)
    script = Script(name="x", actions=[
        Action(kind="navigate", timeout_ms=NAV_MS, value=site.url("/login")),
        Action(kind="fill", target=Target.of("#email"), value="${secrets.lab_pw}"),
        Action(kind="click", target=Target.of("#submit-btn"), submits=True),  # "Signed in as <the secret>"
        Action(kind="click", target=Target(candidates=[Candidate(kind="testid", value="logout")],
                                           fingerprint=Fingerprint(tag="button", role="button", name="Log out")))])
    with LocalOpenAIServer(default={"content": json.dumps({"index": None})}) as server:
        model = OpenAIChatModel("local-model", base_url=server.base_url, max_retries=0)
        outcomes, _, _ = _replay(drv, page, script, timeout_ms=600, model=model, secrets={"lab_pw": hidden})
        sent = json.dumps([r["body"] for r in server.requests])
    assert [o.status for o in outcomes] == ["ok", "ok", "ok", "failed"]
    assert hidden in drv.run(page.text_content("#who", timeout=2000))  # the page does echo it
    assert "Signed in as (secret lab_pw)" in sent and hidden not in sent


def test_a_model_pick_of_another_kind_of_element_is_refused(drv: Driver, page: Any, site: DemoSite) -> None:
    site.mutate(True)
    before = len(site.submissions)
    with LocalOpenAIServer(default=_pick('role=link name="Home"')) as server:
        model = OpenAIChatModel("local-model", base_url=server.base_url, max_retries=0)
        outcomes, _, healed = _replay(drv, page, _submit_script(site), timeout_ms=600, model=model)
        assert server.requests
    assert [o.status for o in outcomes] == ["ok", "failed"] and healed is None
    assert "not the kind of element recorded" in (outcomes[1].error or "")
    assert page.url == site.url("/login") and len(site.submissions) == before
