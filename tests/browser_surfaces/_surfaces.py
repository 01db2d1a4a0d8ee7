"""Scripts and templates the browser surfaces' tests replay and extract with (written by hand, as a
person may write YAML), and the secret they use."""

from __future__ import annotations

from emergent.browser.demo import DemoSite
from emergent.browser.model import Action, ExtractionTemplate, FieldSpec, Pagination, Param, Script, Target

PASSWORD = "hunter2-surfaces"


def login_script(site: DemoSite, name: str = "portal-login", *, first: str = "#email") -> Script:
    """Sign in: the email a parameter, the password a secret; the email field found by ``first`` (a CSS
    that may be broken on purpose) or its label."""
    return Script(name=name, params=[Param(name="email", default="ada@example.org")], actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="fill", target=Target(candidates=[Target.of(first).candidates[0],
                                                      Target.of("label=Email").candidates[0]]),
               value="${params.email}"),
        Action(kind="fill", target=Target.of("label=Password"), value="${secrets.portal_password}"),
        Action(kind="click", target=Target.of('role=button[name="Sign in"]'), submits=True),
        Action(kind="wait", target=Target.of("#who"), value="visible"),
    ])


def table_template(site: DemoSite, name: str = "assays") -> ExtractionTemplate:
    return ExtractionTemplate(
        name=name, url=site.url("/table"), rows="tr.result-row",
        fields=[FieldSpec(name="compound", selector="td.c-compound"),
                FieldSpec(name="ic50_nm", selector="td.c-ic50", type="float"),
                FieldSpec(name="measured", selector="td.c-date", type="date")],
        pagination=Pagination(kind="next", next=Target.of("a.next"), wait_ms=3000))
