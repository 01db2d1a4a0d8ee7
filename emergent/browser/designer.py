"""A recorded automation is a workflow: compose saved scripts and extraction templates into one.

:func:`to_workflow` turns an ordered list of parts into a :class:`~emergent.workflows.spec.Workflow`
of tool steps: a :class:`ScriptStep` becomes a ``browser.replay`` step, an :class:`ExtractStep` a
``browser.extract`` step. Each step waits for the one before it (a login script runs before the
extraction that reads what it unlocked), so ``ws.workflows.run(wf, inputs, principal=...)`` runs them
in order, each through the gate as the principal who started the run (``browser.replay`` is an
external action: an agent's run asks a person unless a rule allows it). A replay step fails the run
when the replay fails (the tool's ``check``), instead of handing a failed result to the next step.

Values of a part's ``params`` / ``url`` may be plain text or references: ``${inputs.NAME}`` (a workflow
input: declared for you, required unless ``inputs`` gives it a default) or ``${steps.ID.output...}``
(an earlier step's result: a replay's ``status``, ``outputs.NAME``; an extraction's ``rows``,
``count``, ``rows.0.FIELD``). :func:`inp` and :func:`ref` write them::

    wf = to_workflow("ic50-report", [
        ScriptStep("portal-login", params={"email": inp("email")}),
        ExtractStep("assay-table", url=inp("table_url"), max_pages=3),
    ], inputs={"table_url": "http://127.0.0.1:8000/table"})

When ``service`` (the :class:`~emergent.browser.session.BrowserService`) is given, every parameter of a
script that the part leaves unset becomes a workflow input of the same name, defaulting to the
parameter's recorded default; and every named script and template must exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emergent.errors import ValidationError
from emergent.workflows.spec import REF, Workflow

_INPUT = re.compile(r"^inputs\.([A-Za-z0-9_-]+)")
_SLUG = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class ScriptStep:
    """Replay the saved script ``script`` (its newest active version unless ``version``)."""

    script: str
    params: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None
    heal: bool = True
    id: str | None = None


@dataclass(frozen=True)
class ExtractStep:
    """Extract rows with the saved template ``template`` at ``url`` (default: the template's URL)."""

    template: str
    url: str | None = None
    version: str | None = None
    max_pages: int | None = None
    id: str | None = None


Part = ScriptStep | ExtractStep


def inp(name: str) -> str:
    """``${inputs.NAME}``: a workflow input."""
    return f"${{inputs.{name}}}"


def ref(step: str, *path: str | int) -> str:
    """``${steps.STEP.output.PATH}``: what an earlier step returned (``ref("table", "rows", 0, "compound")``)."""
    tail = "".join(f".{p}" for p in path)
    return f"${{steps.{step}.output{tail}}}"


def _step_id(part: Part, taken: set[str]) -> str:
    if part.id is not None:
        if part.id in taken:
            raise ValidationError(f"two parts have the id {part.id!r}", hint="give every part its own id",
                                  field="id")
        return part.id
    base = _SLUG.sub("_", (part.script if isinstance(part, ScriptStep) else part.template).lower()).strip("_-")
    base = base or ("replay" if isinstance(part, ScriptStep) else "extract")
    sid, n = base, 2
    while sid in taken:
        sid, n = f"{base}_{n}", n + 1
    return sid


def _inputs_used(value: Any) -> list[str]:
    out: list[str] = []
    for text in [value] if isinstance(value, str) else (value.values() if isinstance(value, Mapping) else []):
        if isinstance(text, str):
            out.extend(m.group(1) for r in REF.finditer(text) if (m := _INPUT.match(r.group(1).strip())))
    return out


def _replay_args(i: int, part: ScriptStep, declared: dict[str, Any], service: Any) -> dict[str, Any]:
    params = {str(k): v for k, v in part.params.items()}
    if service is not None:
        script = service.script(part.script, part.version)
        known = {p.name: p for p in script.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValidationError(f"part {i + 1} ({part.script}): the script has no parameter {unknown[0]!r}",
                                  hint=f"its parameters: {', '.join(known) or 'none'}", field="params")
        for pname, p in known.items():
            if pname not in params:
                params[pname] = inp(pname)
                declared.setdefault(pname, p.default)
    args: dict[str, Any] = {"script": part.script, "check": True}
    if params:
        args["params"] = params
    if part.version is not None:
        args["version"] = part.version
    if not part.heal:
        args["heal"] = False
    for used in _inputs_used(params):
        declared.setdefault(used, None)
    return args


def _extract_args(part: ExtractStep, declared: dict[str, Any], service: Any) -> dict[str, Any]:
    if service is not None:
        service.template(part.template, part.version)  # it exists (NotFoundError names the saved ones)
    args: dict[str, Any] = {"template": part.template}
    for key in ("url", "version", "max_pages"):
        if getattr(part, key) is not None:
            args[key] = getattr(part, key)
    for used in _inputs_used(part.url):
        declared.setdefault(used, None)
    return args


def to_workflow(name: str, parts: Sequence[Part], *, description: str = "",
                inputs: Mapping[str, Any] | None = None, service: Any = None) -> Workflow:
    """The workflow running ``parts`` in order (see the module docstring); validated."""
    if not parts:
        raise ValidationError("a browser workflow needs at least one script or extraction",
                              hint="pass [ScriptStep('name'), ExtractStep('template'), ...]", field="parts")
    declared: dict[str, Any] = dict(inputs or {})
    b = Workflow.build(name, description=description or f"browser automation: {len(parts)} step(s)")
    taken: set[str] = set()
    previous: str | None = None
    for i, part in enumerate(parts):
        if not isinstance(part, ScriptStep | ExtractStep):
            raise ValidationError(f"part {i + 1} is a {type(part).__name__}, not a ScriptStep or an ExtractStep",
                                  hint="wrap saved scripts in ScriptStep(name) and templates in ExtractStep(name)",
                                  field="parts")
        sid = _step_id(part, taken)
        taken.add(sid)
        needs = [previous] if previous else []
        if isinstance(part, ScriptStep):
            b.tool(sid, "browser.replay", _replay_args(i, part, declared, service), needs=needs, output="dict")
            b.output(sid, ref(sid, "status"))
        else:
            b.tool(sid, "browser.extract", _extract_args(part, declared, service), needs=needs, output="dict")
            b.output(sid, ref(sid, "rows"))
        previous = sid
    b.workflow.inputs.update(declared)
    return b.done()


__all__ = ["ExtractStep", "Part", "ScriptStep", "inp", "ref", "to_workflow"]
