"""Browser sessions on real Chromium through a real workspace: isolation per principal, audit before every
action (a failed audit write stops it), policy on navigation, downloads and uploads inside the workspace,
late content, iframes, pop-ups, the notebook case (a blocking call from inside a running event loop)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from emergent.browser.demo import DemoSite
from emergent.browser.model import Candidate, Target
from emergent.errors import (
    AuditWriteError,
    NotFoundError,
    PermissionDenied,
    PrincipalError,
    StateConflictError,
    ValidationError,
)


def kinds(ws: Any, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in ws.audit.entries(kind=kind)]


def test_a_session_fills_and_submits_the_form_and_every_step_is_audited_first(ws: Any, human: Any,
                                                                              site: DemoSite) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    try:
        s.fill("label=Email", "ada@example.org")
        s.fill("label=Password", "${secrets.portal_password}")
        s.select("label=Country", "Canada")
        s.check("#agree")
        out = s.click('role=button[name="Sign in"]')
        assert out["submits"] is True and out["title"] == "Welcome"
        assert site.submissions[-1]["country"] == "ca" and site.submissions[-1]["agree"] == "on"
        acts = [d for d in kinds(ws, "browser.action") if d["session"] == s.id]
        assert [a["action"] for a in acts] == ["fill", "fill", "select", "check", "click"]
        assert acts[1]["value"] == "(secret portal_password)"
        assert kinds(ws, "browser.navigate")[-1]["url"] == site.url("/login")
        every = [e.to_dict() for e in ws.audit.entries()]
        assert "hunter2-Zq9-conftest" not in repr(every)  # the secret's value is never audited
    finally:
        s.close()
    assert kinds(ws, "browser.close")[-1]["session"] == s.id


def test_an_agent_cannot_use_a_humans_session(ws: Any, human: Any, agent: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    try:
        with pytest.raises(PermissionDenied, match="belongs to human"):
            ws.browser.session(s.id, by=agent)
        assert ws.browser.session(s.id, by=human) is s
        assert [x["id"] for x in ws.browser.sessions(by=agent)] == []
        assert s.id in [x["id"] for x in ws.browser.sessions(by=human)]
        with pytest.raises(NotFoundError):
            ws.browser.session("nope", by=human)
        with pytest.raises(PrincipalError):
            ws.browser.open(site.url("/login"), by="human:me")  # a name is not a principal
        from emergent.principals import Principal

        with pytest.raises(PrincipalError):  # hand-built, unsealed: not issued by the directory
            ws.browser.session(s.id, by=Principal("human", human.id))
        with pytest.raises(PermissionDenied, match="may not close"):
            ws.browser.close_session(s.id, by=agent)
    finally:
        s.close()
    mine = ws.browser.open(by=agent)
    ws.browser.close_session(mine.id, by=human)  # a person may close anyone's
    assert mine.id not in [x["id"] for x in ws.browser.sessions()]
    closed = [e for e in ws.audit.entries(kind="browser.close") if e.data["session"] == mine.id]
    assert [(e.actor, e.data["owner"]) for e in closed] == [(human.key, agent.key)]


def test_navigation_off_the_list_and_a_policy_deny_rule_are_refused_and_audited(ws: Any, human: Any,
                                                                                agent: Any, site: DemoSite) -> None:
    s = ws.browser.open(by=agent)
    try:
        with pytest.raises(PermissionDenied, match="allow-list") as err:
            s.goto(site.other + "/login")
        assert "ALLOW_HOSTS" in (err.value.hint or "")
        rule = ws.autonomy.add_rule("agent:*", "browser.navigate", "deny", resource=site.url("/table*"), by=human)
        try:
            with pytest.raises(PermissionDenied, match="policy deny") as err:
                s.goto(site.url("/table?page=2"))
            assert rule.id in str(err.value)
            assert s.goto(site.url("/login"))["title"] == "Sign in"  # other pages still open
        finally:
            ws.autonomy.remove_rule(rule.id, by=human)
        assert s.goto(site.url("/table?page=2"))["title"] == "Results, page 2"
        blocked = [d for d in kinds(ws, "browser.blocked") if d["session"] == s.id]
        assert [b["url"] for b in blocked] == [site.other + "/login", site.url("/table?page=2")]
    finally:
        s.close()


def test_a_failed_audit_write_stops_the_action(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    before = len(site.submissions)
    try:
        s.fill("label=Email", "nobody@example.org")
        with ws.sql.begin() as conn:  # the audit table becomes unwritable
            conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
        ws.audit.busy_retry_s = 0.2
        try:
            with pytest.raises(AuditWriteError):
                s.click('role=button[name="Sign in"]')
            with pytest.raises(AuditWriteError):
                s.goto(site.url("/table"))
        finally:
            with ws.sql.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE audit_log_gone RENAME TO audit_log")
        assert len(site.submissions) == before  # the click never happened
        assert s.page.url == site.url("/login")  # nor the navigation
    finally:
        s.close()


def test_a_blocking_call_works_from_inside_a_running_event_loop(ws: Any, human: Any, site: DemoSite) -> None:
    async def cell() -> tuple[str, str]:
        asyncio.get_running_loop()  # as in a notebook cell: a loop is running in this thread
        s = ws.browser.open(site.url("/login"), by=human)
        try:
            title = s.goto(site.url("/table"))["title"]
        finally:
            s.close()
        s2 = await ws.browser.aopen(site.url("/login"), by=human)  # the async twin
        try:
            return title, s2.page.url
        finally:
            s2.close()

    title, url = asyncio.run(cell())
    assert title == "Results, page 1" and url == site.url("/login")


def test_late_content_is_waited_for_and_an_iframe_button_is_clicked(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/late?ms=600"), by=human)
    try:
        assert s.click('role=button[name="Load results"]')["action"] == "click"
        assert s.run(lambda p: p.get_by_role("button").inner_text()) == "Loaded and clicked"
        s.goto(site.url("/frame"))
        s.fill(Candidate(kind="label", value="Number", frame="#tool"), "21")
        s.click(Target(candidates=[Candidate(kind="css", value="#gone"),
                                   Candidate(kind="role", value="button", name="Double", frame="#tool")]))
        assert s.run(lambda p: p.frame_locator("#tool").locator("#out").inner_text()) == "42"
        with pytest.raises(NotFoundError, match="#missing"):
            s.click("#missing")
    finally:
        s.close()


def test_a_download_lands_in_the_workspace_and_is_audited(ws: Any, human: Any, site: DemoSite) -> None:
    s = ws.browser.open(site.url("/download"), by=human)
    try:
        s.click("text=Export CSV")
        (rel,) = s.downloads()
        assert rel == f"downloads/{s.id}/export.csv"
        text = (ws.path / "files" / rel).read_text()
        assert text.startswith("compound,assay,ic50_nm") and len(text.splitlines()) == 58
        assert s.page.url == site.url("/download")  # the page stays
        audited = [d for d in kinds(ws, "browser.download") if d["session"] == s.id]
        assert audited == [{"session": s.id, "url": site.url("/export.csv"), "file": rel, "bytes": len(text)}]
    finally:
        s.close()


def test_uploads_read_workspace_files_only(ws: Any, human: Any, site: DemoSite, tmp_path: Any) -> None:
    files = ws.path / "files"
    (files / "reports").mkdir(parents=True, exist_ok=True)
    (files / "reports" / "r.txt").write_bytes(b"assay report v1")
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    os.symlink(outside, files / "reports" / "link.txt")
    s = ws.browser.open(site.url("/login"), by=human)
    try:
        for bad in ("/etc/passwd", "../outside.txt", "reports/../../x", "reports/link.txt"):
            with pytest.raises(ValidationError):
                s.upload("label=Report", bad)
        s.upload("label=Report", "reports/r.txt")
        s.click('role=button[name="Sign in"]')
        assert site.uploads[-1]["head"] == b"assay report v1"
        assert all(u["head"] != b"private" for u in site.uploads)
    finally:
        s.close()


def test_more_sessions_than_the_limit_are_refused(ws_factory: Any, site: DemoSite) -> None:
    w = ws_factory(max_sessions=2)
    a = w.browser.open(by=w.principal)
    b = w.browser.open(by=w.principal)
    with pytest.raises(StateConflictError, match="close one"):
        w.browser.open(by=w.principal)
    a.close()
    c = w.browser.open(by=w.principal)
    assert {x["id"] for x in w.browser.sessions()} == {b.id, c.id}
    w.browser.close()
    with pytest.raises(StateConflictError):
        b.goto(site.url("/login"))


def results_template(site: DemoSite) -> Any:
    from emergent.browser.model import ExtractionTemplate, FieldSpec, Pagination

    return ExtractionTemplate(
        name="results", url=site.url("/table"), rows="tr.result-row",
        fields=[FieldSpec(name="compound", selector=".c-compound"), FieldSpec(name="ic50", selector=".c-ic50",
                                                                               type="float")],
        pagination=Pagination(kind="next", next=Target.of("a.next")))


def test_extraction_through_the_service_and_in_a_session_is_audited(ws: Any, human: Any, agent: Any,
                                                                    site: DemoSite) -> None:
    t = ws.browser.save_template(results_template(site), by=human)
    df = ws.browser.extract("results", by=agent, max_pages=2)
    assert df.height == 20 and df.columns == ["compound", "ic50"] and df["compound"][0] == "CMP-0001"
    s = ws.browser.open(site.url("/table?page=6"), by=agent)
    try:
        assert s.extract(t).height == 7  # the last page: 57 rows, 10 a page
        assert ws.browser.extract("results", by=agent, session=s.id)["compound"][-1] == "CMP-0057"
        with pytest.raises(PermissionDenied):
            ws.browser.extract("results", by=human, session=s.id)  # not the human's session either
    finally:
        s.close()
    extracts = [e for e in ws.audit.entries(kind="browser.action") if e.data.get("action") == "extract"]
    assert len(extracts) == 3 and {e.actor for e in extracts} == {agent.key}
