"""What a browser automation is, as data: locators, recorded scripts, extraction templates, replay results.

Everything here is a pydantic model with no behaviour that needs a browser, so a script or a template
can be written, read, validated, diffed and stored without Chromium. The live parts are
:mod:`emergent.browser.locators` (candidates of an element, resolving a target on a page),
:mod:`emergent.browser.replay` and :mod:`emergent.browser.extract`.

A **target** is an element described several ways at once (the *candidates*, most robust first:
role and accessible name, label, placeholder, text, test id, then CSS) plus a *fingerprint* of what
the element looked like when it was recorded (tag, role, name, text, a few attributes, its label
and the heading above it); the fingerprint is what self-healing compares a changed page against.

Values in a script may hold ``${params.NAME}`` (a parameter of the script) and ``${secrets.NAME}``
(a secret the workstation is configured with, resolved only at replay, never stored).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, cast

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from emergent.errors import ValidationError

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
REF = re.compile(r"\$\{(params|secrets)\.([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_REF = re.compile(r"\$\{([^}]*)\}")

LocatorKind = Literal["role", "label", "placeholder", "text", "testid", "alt", "title", "css"]
#: robustness order: the kinds a person would name the element by come first, CSS last
KIND_ORDER: tuple[str, ...] = ("testid", "role", "label", "placeholder", "alt", "title", "text", "css")
ActionKind = Literal["navigate", "click", "fill", "select", "check", "uncheck", "upload", "press", "wait",
                     "extract"]
#: actions that change what the page holds (a click may submit; ``submits`` says so)
WRITES = frozenset({"click", "fill", "select", "check", "uncheck", "upload", "press"})
FieldType = Literal["str", "int", "float", "bool", "date", "datetime"]


def _name(value: str, what: str) -> str:
    if not NAME.match(value or ""):
        raise ValueError(f"{what} {value!r} must be lower-case letters, digits, '_' or '-', starting with a letter")
    return value


def _semver(value: str) -> str:
    if not SEMVER.match(value or ""):
        raise ValueError(f"version {value!r} is not MAJOR.MINOR.PATCH")
    return value


class Candidate(BaseModel):
    """One way to find an element. ``kind`` says which Playwright locator it is:

    - ``role``: ``page.get_by_role(value, name=name, exact=exact)`` (value is an ARIA role)
    - ``label`` / ``placeholder`` / ``text`` / ``alt`` / ``title``: ``page.get_by_<kind>(value, exact=exact)``
    - ``testid``: ``page.get_by_test_id(value)``
    - ``css``: ``page.locator(value)``

    ``nth`` picks one when the locator matches several (recorded when it did); ``frame`` is the CSS of
    the ``<iframe>`` holding the element (None: the page itself).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: LocatorKind
    value: str = Field(min_length=1, max_length=2000)
    name: str | None = Field(None, max_length=2000)
    exact: bool = True
    nth: int | None = Field(None, ge=0)
    frame: str | None = Field(None, max_length=2000)
    score: float = 0.0

    def describe(self) -> str:
        nth = f" #{self.nth}" if self.nth is not None else ""
        inside = f" in {self.frame}" if self.frame else ""
        if self.kind == "role":
            shown = f'{self.value} "{self.name}"' if self.name else self.value
            return f"role {shown}{nth}{inside}"
        return f"{self.kind} {self.value!r}{nth}{inside}"


class Fingerprint(BaseModel):
    """What the element looked like when recorded: what healing compares candidates on a changed page to."""

    model_config = ConfigDict(extra="forbid")
    tag: str = ""
    role: str | None = None
    name: str | None = None  # accessible name
    text: str | None = None  # visible text, trimmed (≤ 200 chars)
    label: str | None = None  # text of its <label> / aria-labelledby
    heading: str | None = None  # the nearest heading or legend before it
    attrs: dict[str, str] = Field(default_factory=dict)  # id, name, type, placeholder, href, value, title, alt, ...
    path: str | None = None  # a CSS path from the nearest id'd ancestor (last-resort, brittle)
    index: int | None = None  # its position among elements of the same role on the page


class Target(BaseModel):
    """An element to act on: candidates (best first) and its fingerprint."""

    model_config = ConfigDict(extra="forbid")
    candidates: list[Candidate] = Field(min_length=1, max_length=20)
    fingerprint: Fingerprint | None = None
    description: str = ""

    @classmethod
    def of(cls, selector: str | Candidate | Target) -> Target:
        """A target from a Playwright selector string (``css``, or ``role=button[name="Save"]``,
        ``text=Save``, ``label=Email``, ``testid=save``, ``placeholder=...``), a candidate, or a target."""
        if isinstance(selector, Target):
            return selector
        if isinstance(selector, Candidate):
            return cls(candidates=[selector], description=selector.describe())
        if not isinstance(selector, str) or not selector.strip():
            raise ValidationError(f"a target must be a selector string, a Candidate or a Target, got {selector!r}",
                                  hint='write "label=Email", \'role=button[name="Save"]\', "text=Next" or CSS',
                                  field="target")
        cand = parse_selector(selector.strip())
        return cls(candidates=[cand], description=cand.describe())

    def describe(self) -> str:
        return self.description or self.candidates[0].describe()


_ROLE_SEL = re.compile(r'^role=([a-z]+)(?:\[name=(["\'])(.*)\2\])?$', re.S)


def parse_selector(selector: str) -> Candidate:
    """``kind=value`` for role/label/placeholder/text/testid/alt/title, anything else is CSS."""
    m = _ROLE_SEL.match(selector)
    if m:
        return Candidate(kind="role", value=m.group(1), name=m.group(3))
    kind, sep, rest = selector.partition("=")
    if sep and kind in ("label", "placeholder", "text", "testid", "alt", "title") and rest:
        exact = len(rest) >= 2 and rest[0] == rest[-1] == '"'
        return Candidate(kind=kind, value=rest[1:-1] if exact else rest, exact=exact)  # type: ignore[arg-type]
    if selector.startswith("role="):
        raise ValidationError(f"selector {selector!r} is not role=ROLE or role=ROLE[name=\"NAME\"]",
                              hint='write role=button[name="Save"]', field="target")
    return Candidate(kind="css", value=selector)


class Action(BaseModel):
    """One step of a script. ``value``: the URL (navigate), the text (fill), the option (select), the
    workspace file path under ``files/`` (upload), the key (press), the state to wait for (wait:
    visible, hidden, attached, detached, load, networkidle) or the template name (extract)."""

    model_config = ConfigDict(extra="forbid")
    kind: ActionKind
    target: Target | None = None
    value: str | None = Field(None, max_length=100_000)
    timeout_ms: int | None = Field(None, ge=1, le=600_000)
    submits: bool = False  # a click or key press that submits a form (side effect: external)
    output: str | None = None  # extract: the name its rows are returned under
    note: str = ""

    @pydantic.model_validator(mode="after")
    def _check(self) -> Action:
        needs_target = self.kind in WRITES
        if needs_target and self.target is None:
            raise ValueError(f"a {self.kind} action needs a target")
        if self.kind in ("navigate", "fill", "select", "upload", "press", "extract") and self.value is None:
            raise ValueError(f"a {self.kind} action needs a value")
        for ref in _ANY_REF.findall(self.value or ""):
            if not REF.fullmatch("${" + ref + "}"):
                raise ValueError(f"reference ${{{ref}}} is not ${{params.NAME}} or ${{secrets.NAME}}")
        return self

    def describe(self) -> str:
        what = self.target.describe() if self.target else ""
        val = f" {self.value!r}" if self.value is not None and "${secrets." not in (self.value or "") else (
            " (secret)" if self.value else "")
        return f"{self.kind} {what}{val}".strip()


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    default: str | None = None
    description: str = ""


class _Document(BaseModel):
    """A saved, versioned document (a script, a template): YAML in and out, and a digest of its content
    (the version and the fields in ``_unhashed`` left out, so a re-save of the same content is a no-op)."""

    _what: ClassVar[str] = "document"
    _unhashed: ClassVar[frozenset[str]] = frozenset({"version"})

    def digest(self) -> str:
        body = self.model_dump(mode="json", exclude=set(self._unhashed))
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True), sort_keys=False,
                              allow_unicode=True)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Self:
        return cls.parse(_load_yaml(text_or_path, cls._what))

    @classmethod
    def parse(cls, data: Any) -> Self:
        return cast(Self, _parse(cls, data, cls._what))


class Script(_Document):
    """A recorded, replayable, parameterised browser session."""

    _what: ClassVar[str] = "script"
    _unhashed: ClassVar[frozenset[str]] = frozenset({"version", "healed_from"})
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1.0.0"
    description: str = ""
    params: list[Param] = Field(default_factory=list)
    actions: list[Action] = Field(min_length=1, max_length=10_000)
    healed_from: str | None = None  # the version this one was healed from

    _v_name = pydantic.field_validator("name")(lambda cls, v: _name(v, "script name"))
    _v_version = pydantic.field_validator("version")(lambda cls, v: _semver(v))

    @pydantic.model_validator(mode="after")
    def _refs(self) -> Script:
        declared = {p.name for p in self.params}
        if len(declared) != len(self.params):
            raise ValueError("parameter names must be unique")
        for i, a in enumerate(self.actions):
            for kind, name in REF.findall(a.value or ""):
                if kind == "params" and name not in declared:
                    raise ValueError(f"action {i} ({a.kind}) refers to ${{params.{name}}}, which is not a parameter "
                                     f"(declared: {sorted(declared) or 'none'})")
        return self

    @property
    def secrets(self) -> list[str]:
        """The names of the secrets a replay needs."""
        return sorted({n for a in self.actions for k, n in REF.findall(a.value or "") if k == "secrets"})

    @property
    def side_effect(self) -> str:
        """external when an action submits or uploads, write when one changes the page, else read."""
        if any(a.submits or a.kind == "upload" for a in self.actions):
            return "external"
        if any(a.kind in WRITES for a in self.actions):
            return "write"
        return "read"



class FieldSpec(BaseModel):
    """One column of an extraction: found inside each row by ``selector`` (a Playwright selector
    relative to the row; None: the row itself), read as text or an attribute, cut by ``pattern``
    (its first group, or the whole match), converted to ``type``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    selector: str | None = None
    attribute: str | None = None  # None: the element's visible text
    type: FieldType = "str"
    pattern: str | None = None
    required: bool = True

    @pydantic.field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern {v!r} is not a regular expression: {exc}") from None
        return v


class Pagination(BaseModel):
    """``none``; ``next``: click ``next`` until it is gone or disabled; ``scroll``: scroll to the end until
    no new rows appear (infinite scroll). At most ``max_pages`` pages (or scrolls)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["none", "next", "scroll"] = "none"
    next: Target | None = None
    max_pages: int = Field(50, ge=1, le=10_000)
    wait_ms: int = Field(5000, ge=0, le=120_000)  # how long to wait for the page to change after a click/scroll

    @pydantic.model_validator(mode="after")
    def _check(self) -> Pagination:
        if self.kind == "next" and self.next is None:
            raise ValueError("pagination 'next' needs the next-page target")
        return self


class ExtractionTemplate(_Document):
    """Declarative extraction: a row locator, the fields of a row (a pydantic model is built from them
    and validates every row), pagination; saved, versioned and reused by name."""

    _what: ClassVar[str] = "template"
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1.0.0"
    description: str = ""
    url: str | None = None  # where it applies (extract may open it)
    rows: str = Field(min_length=1)  # a Playwright selector matching each row
    fields: list[FieldSpec] = Field(min_length=1, max_length=500)
    pagination: Pagination = Field(default_factory=Pagination)
    learned_from: dict[str, Any] | None = None  # the example a learned template came from

    _v_name = pydantic.field_validator("name")(lambda cls, v: _name(v, "template name"))
    _v_version = pydantic.field_validator("version")(lambda cls, v: _semver(v))

    @pydantic.model_validator(mode="after")
    def _unique(self) -> ExtractionTemplate:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        return self



class StepOutcome(BaseModel):
    index: int
    kind: str
    status: Literal["ok", "healed", "failed", "skipped"]
    used: Candidate | None = None  # the candidate that found the element
    healed_by: Literal["alternative", "similarity", "model"] | None = None
    ms: float = 0.0
    error: str | None = None


class ReplayResult(BaseModel):
    run_id: str
    script: str
    version: str
    status: Literal["completed", "failed"]
    steps: list[StepOutcome] = Field(default_factory=list)
    outputs: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)  # extract actions' rows
    proposed_version: str | None = None  # a healed script saved as a proposal
    trace: str | None = None  # the Playwright trace (workspace-relative path)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def healed(self) -> int:
        return sum(1 for s in self.steps if s.status == "healed")


#: the largest script or template document read (a recorded script of 10,000 actions is ~3 MB)
YAML_MAX_BYTES = 8 * 1024 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without aliases: ``*name`` shares a node, so a few hundred bytes of nested aliases
    expand to millions of nodes when the model is dumped, hashed or saved (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted here", mark)
        return super().compose_node(parent, index)


def _load_yaml(text_or_path: str | Path, what: str) -> Any:
    text = str(text_or_path)
    if isinstance(text_or_path, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
        try:
            text = Path(text_or_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read {what} file {str(text_or_path)!r}: {exc}",
                                  hint="give the path of a UTF-8 YAML file") from None
    if len(text) > YAML_MAX_BYTES:
        raise ValidationError(f"the {what} is {len(text):,} characters; at most {YAML_MAX_BYTES:,} are read",
                              hint=f"split the {what}")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        hint = "write each value out instead of &anchor / *alias" if "aliases" in str(exc) else \
            "check the indentation"
        raise ValidationError(f"the {what} is not valid YAML: {exc}", hint=hint) from None
    except RecursionError:
        raise ValidationError(f"the {what} YAML is nested too deep", hint="flatten it") from None


def _parse(cls: Any, data: Any, what: str) -> Any:
    if not isinstance(data, dict):
        raise ValidationError(f"a {what} must be a mapping, got {type(data).__name__}",
                              hint=f"start the {what} with name: and its fields")
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(whole)"
        raise ValidationError(f"{what} field {loc}: {err['msg']}", hint=f"fix {loc} and load the {what} again",
                              field=loc) from None
