"""What a workflow is: steps, how they are wired, and the checks that refuse a broken one.

A :class:`Workflow` is a list of :class:`Step` s plus its inputs and outputs; it is written in YAML
(``Workflow.from_yaml``) or built in Python (``Workflow.build("name")``). A step's ``args`` (and a
notebook's ``parameters``, an assistant's ``prompt``, a sub-workflow's ``inputs``) may hold
references: ``${inputs.x}``, ``${steps.ID.output}``, ``${steps.ID.output.a.0.b}``, ``${item}`` (the
element of a fan-out). A string that is one whole reference keeps the referenced value's type; a
reference inside longer text is formatted into it. References imply dependencies; ``needs`` adds more.

Nothing is evaluated: a condition (``when``) is a reference, an operator and a value; a step whose
condition is false is ``skipped``, and so is a step all of whose dependencies were skipped (a reference
to a skipped step's output reads None). A fan-out step (``foreach``: one reference to a list) runs one
instance per item (keys ``ID[0]``, ``ID[1]`` …; ``${item}`` is the element, ``when`` is checked per
instance); a later step's ``${steps.ID.output}`` is the list of the instances' outputs in order.

A workflow is checked again each time it is run (a step edited in place included).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from emergent.errors import ValidationError

KINDS = ("tool", "notebook", "assistant", "workflow", "call")
OPS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "truthy", "falsy")
TYPES: dict[str, tuple[type, ...]] = {"dict": (dict,), "list": (list, tuple), "str": (str,),
                                      "number": (int, float), "bool": (bool,)}
SLUG = re.compile(r"^[a-z0-9_-]+$")
REF = re.compile(r"\$\{([^}]*)\}")
_PATH = re.compile(r"^(inputs\.[A-Za-z0-9_-]+|steps\.[a-z0-9_-]+\.output|item)((\.[A-Za-z0-9_-]+)*)$")


class Condition(BaseModel):
    """``when``: the step runs only if ``ref`` ``op`` ``value`` holds."""

    model_config = ConfigDict(extra="forbid")
    ref: str
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "truthy", "falsy"] = "truthy"
    value: Any = None


class Compensation(BaseModel):
    """The tool call that undoes a completed step when a later step fails (``${steps.SELF.output}``)."""

    model_config = ConfigDict(extra="forbid")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    id: str
    kind: Literal["tool", "notebook", "assistant", "workflow", "call"]
    tool: str | None = None
    notebook: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    assistant: str | None = None
    prompt: str | None = None
    workflow: str | dict[str, Any] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    fn: Callable[..., Any] | str | None = Field(default=None, exclude=True)
    args: dict[str, Any] = Field(default_factory=dict)
    needs: list[str] = Field(default_factory=list)
    when: Condition | None = None
    foreach: str | None = None
    timeout_s: float | None = None
    retries: int = 0
    retry_delay_s: float = 0.0
    output: Literal["any", "dict", "list", "str", "number", "bool"] = "any"
    compensate: Compensation | None = None

    # ------------------------------------------------------------------ references
    def wired(self) -> dict[str, Any]:
        """Everything of this step that may hold references (what it consumes)."""
        return {"args": self.args, "parameters": self.parameters, "prompt": self.prompt, "inputs": self.inputs,
                "when": self.when.ref if self.when else None, "foreach": self.foreach}

    def references(self) -> list[tuple[str, str]]:
        """(field, reference path) for every reference the step holds (compensation excluded)."""
        out: list[tuple[str, str]] = []
        for name, value in (("args", self.args), ("parameters", self.parameters), ("prompt", self.prompt),
                            ("inputs", self.inputs), ("when", self.when.ref if self.when else None),
                            ("foreach", self.foreach)):
            if value:  # most fields of most steps are empty: skip the walk
                out.extend((name, ref) for ref in refs_in(value))
        return out

    def depends_on(self) -> list[str]:
        """Steps this one waits for: the ones it references and the ones it ``needs``, in order, once each."""
        seen: dict[str, None] = {}
        for _, ref in self.references():
            if ref.startswith("steps."):
                seen[ref.split(".")[1]] = None
        for n in self.needs:
            seen[n] = None
        return list(seen)

    @property
    def side_effect_free(self) -> bool:
        """A ``call`` step is pure compute: re-running it after a crash repeats no side effect."""
        return self.kind == "call"

    def callable(self) -> Callable[..., Any]:
        """The function of a ``call`` step (``fn`` itself, or imported from ``module:qualname``)."""
        if callable(self.fn):
            return self.fn
        if isinstance(self.fn, str):
            return import_ref(self.fn, self.id)
        raise ValidationError(f"step {self.id!r}: field 'fn': a call step needs a Python callable",
                              hint="build it with wf.call(id, fn, args=...)", step=self.id, field="fn")


@functools.lru_cache(maxsize=1024)
def fn_ref(fn: Callable[..., Any]) -> str | None:
    """``module:qualname`` when ``fn`` can be imported back by that name (so a resumed run finds it)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not mod or "<" in qual or mod == "__main__":
        return None
    try:
        return f"{mod}:{qual}" if import_ref(f"{mod}:{qual}", "") is fn else None
    except ValidationError:
        return None


def import_ref(ref: str, step: str) -> Callable[..., Any]:
    mod, _, qual = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        raise ValidationError(f"step {step!r}: field 'fn': cannot import {ref!r}",
                              hint="a resumed call step imports its function by module:qualname; pass the "
                                   "workflow again to resume (resume(run_id, workflow=wf, ...))",
                              step=step, field="fn") from None
    if not callable(obj):
        raise ValidationError(f"step {step!r}: field 'fn': {ref!r} is not callable", step=step, field="fn")
    return obj  # type: ignore[no-any-return]


def refs_in(value: Any) -> list[str]:
    """Every reference path (``steps.a.output.x``) inside ``value`` (strings, lists, dicts)."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "${" in v:
                out.extend(m.group(1).strip() for m in REF.finditer(v))
        elif isinstance(v, Mapping):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list | tuple):
            stack.extend(reversed(v))
    return out


class Ref(str):
    """A reference string (``${steps.fetch.output}``) that indexes into deeper ones: ``ref["text"]``."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Ref:  # type: ignore[override]
        return Ref(f"{str.__getitem__(self, slice(None, -1))}.{key}}}")


class StepHandle:
    """What the builder returns for a step: ``.output`` is its reference, ``.id`` its id."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.id = step.id
        self.output = Ref(f"${{steps.{step.id}.output}}")

    def __repr__(self) -> str:
        return f"<step {self.id!r} ({self.step.kind})>"


def _loc(data: Any, loc: tuple[Any, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = data.get("steps") if isinstance(data, dict) else None
        raw = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        sid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) and isinstance(raw, Step):
            sid = raw.id
        rest = ".".join(str(x) for x in loc[2:] if not str(x).startswith("function-"))
        where = f"step {sid!r}" if sid else f"step #{loc[1] + 1}"
        return f"{where}: field {rest!r}" if rest else where
    return "field " + repr(".".join(str(x) for x in loc)) if loc else "workflow"


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = "1"
    description: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)
    _deps: tuple[tuple[Any, ...], dict[str, list[str]]] | None = PrivateAttr(default=None)
    _checked: str | None = PrivateAttr(default=None)  # the stored form that last passed every check
    _data: tuple[tuple[Any, ...], dict[str, Any]] | None = PrivateAttr(default=None)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, data: Any) -> Workflow:
        """A workflow from plain data (YAML or JSON shaped); errors name the step and the field."""
        if not isinstance(data, dict):
            raise ValidationError("a workflow spec is a mapping (name, steps, ...)",
                                  hint="start the YAML with `name: my-flow` and a `steps:` list")
        try:
            wf = cls.model_validate(data)
        except RecursionError:
            raise ValidationError("the workflow spec is nested too deep", hint="flatten it: fewer levels of lists, "
                                  "mappings and inline sub-workflows") from None
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise ValidationError(f"{_loc(data, tuple(first['loc']))}: {first['msg']}",
                                  hint="see emergent.workflows.spec.Step for the fields a step takes") from None
        for s in wf.steps:
            if s.fn is not None:
                raise ValidationError(f"step {s.id!r}: field 'fn': call steps exist only in Python",
                                      hint="build them with Workflow.build(...).call(...)", step=s.id, field="fn")
        return wf.validate()

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Workflow:
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
            try:
                text = Path(text_or_path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValidationError(f"cannot read workflow file {str(text_or_path)!r}: {exc.strerror}",
                                      hint="give the path of a YAML file or the YAML text") from None
            except UnicodeDecodeError:
                raise ValidationError(f"workflow file {str(text_or_path)!r} is not UTF-8 text",
                                      hint="a workflow spec is a YAML text file") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationError(f"the workflow is not valid YAML: {exc}", hint="check the indentation") from None
        except RecursionError:
            raise ValidationError("the workflow YAML is nested too deep", hint="flatten it") from None
        return cls.parse(data)

    def to_yaml(self) -> str:
        calls = [s.id for s in self.steps if s.kind == "call"]
        if calls:
            raise ValidationError(f"step {calls[0]!r}: field 'fn': call steps cannot be written as YAML",
                                  hint="a Python callable exists only in Python; use a tool step instead",
                                  step=calls[0], field="fn")
        return yaml.safe_dump(self.to_data(), sort_keys=False, allow_unicode=True)

    def to_data(self) -> dict[str, Any]:
        """Plain data (as stored with a run); a call step's function is kept as ``module:qualname``.
        Kept from one :meth:`validate` to the next: treat the result as read-only."""
        sig = self._signature()
        if self._data is None or self._data[0] != sig:
            self._data = (sig, self._to_data())
        return self._data[1]

    def _to_data(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_defaults=True)
        out.setdefault("version", self.version)
        for raw, s in zip(out.get("steps", []), self.steps, strict=True):
            if s.kind == "call":
                raw["fn"] = s.fn if isinstance(s.fn, str) else (fn_ref(s.fn) if s.fn is not None else None)
        return out

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Workflow:
        """The inverse of :meth:`to_data` (no validation: it was validated when the run started)."""
        return cls.model_validate(data)

    # ------------------------------------------------------------------ checks
    def validate(self) -> Workflow:  # type: ignore[override]
        """Refuse a broken workflow: bad ids, missing fields per kind, unknown references, a cycle.
        Checked on every run: a step edited in place is checked again."""
        try:
            data = self._to_data()
            text = json.dumps(data, sort_keys=True, default=repr)
        except (TypeError, ValueError, RecursionError):
            data, text = None, None
        self._data = (self._signature(), data) if data is not None else None
        if text is not None and text == self._checked:
            return self  # the same content passed every check before (an in-place edit changes the text)
        self._deps = None
        self._checked = None
        try:
            self._check()
            self._checked = text
        except RecursionError:
            raise ValidationError(f"workflow {self.name!r} is nested too deep", hint="flatten the spec: fewer "
                                  "levels of lists, mappings and inline sub-workflows") from None
        return self

    def _signature(self) -> tuple[Any, ...]:
        """What identifies this workflow's content cheaply (steps are immutable once built; a changed list,
        name, description, inputs or outputs shows here)."""
        return (self.name, self.version, self.description, id(self.inputs), tuple(self.inputs),
                tuple(self.outputs.items()), tuple(map(id, self.steps)))

    def dependencies(self) -> dict[str, list[str]]:
        """Step id → the step ids it depends on (kept from one :meth:`validate` to the next)."""
        sig = self._signature()
        if self._deps is None or self._deps[0] != sig:
            self._deps = (sig, {s.id: s.depends_on() for s in self.steps})
        return self._deps[1]

    def _check(self) -> None:
        if not self.name or not re.match(r"^[A-Za-z0-9_.-]+$", self.name):
            raise ValidationError(f"workflow name {self.name!r} is not valid",
                                  hint="use letters, digits, '.', '_' and '-'", field="name")
        if not self.steps:
            raise ValidationError(f"workflow {self.name!r} has no steps", hint="add at least one step",
                                  field="steps")
        ids: dict[str, Step] = {}
        for s in self.steps:
            _check_step(s)
            if s.id in ids:
                raise ValidationError(f"step {s.id!r}: field 'id': used by two steps",
                                      hint="give every step its own id", step=s.id, field="id")
            ids[s.id] = s
        deps = {s.id: self._check_refs(s, ids) for s in self.steps}
        self._deps = (self._signature(), deps)
        cycle = find_cycle(deps)
        if cycle:
            raise ValidationError("cycle: " + " → ".join(cycle), hint="a step cannot wait for itself, directly or "
                                  "through others; remove one of these dependencies", cycle=cycle)
        for name, ref in self.outputs.items():
            self._check_ref(None, f"outputs.{name}", ref, ids)

    def _check_refs(self, s: Step, ids: dict[str, Step]) -> list[str]:
        """Check the step's references and needs; the steps it depends on (as :meth:`Step.depends_on`)."""
        deps: dict[str, None] = {}
        for fld, ref in s.references():
            self._check_path(s, fld, ref, ids)
            if ref.startswith("steps."):
                deps[ref.split(".")[1]] = None
            if ref.split(".")[0] == "item" and not s.foreach:
                raise ValidationError(f"step {s.id!r}: field {fld!r}: ${{item}} is only defined in a fan-out step",
                                      hint="add foreach: ${steps.ID.output} to the step", step=s.id, field=fld)
        for n in s.needs:
            if n not in ids:
                raise ValidationError(f"step {s.id!r}: field 'needs': no step {n!r}",
                                      hint=f"steps are: {', '.join(ids)}", step=s.id, field="needs")
        if s.foreach is not None and not REF.fullmatch(s.foreach.strip()):
            raise ValidationError(f"step {s.id!r}: field 'foreach': must be one reference to a list",
                                  hint="e.g. foreach: ${steps.list.output}", step=s.id, field="foreach")
        deps.update(dict.fromkeys(s.needs))
        if s.compensate is not None:
            for ref in refs_in(s.compensate.args):
                self._check_path(s, "compensate", ref, ids, own=True, deps=list(deps))
        return list(deps)

    def _check_ref(self, s: Step | None, fld: str, ref: str, ids: dict[str, Step]) -> None:
        m = REF.fullmatch(ref.strip()) if isinstance(ref, str) else None
        if m is None:
            raise ValidationError(f"field {fld!r}: {ref!r} is not a reference",
                                  hint="write ${steps.ID.output} or ${inputs.NAME}", field=fld)
        self._check_path(s, fld, m.group(1).strip(), ids)

    def _check_path(self, s: Step | None, fld: str, ref: str, ids: dict[str, Step], own: bool = False,
                    deps: list[str] | None = None) -> None:
        where = f"step {s.id!r}: field {fld!r}" if s is not None else f"field {fld!r}"
        if not _PATH.match(ref):
            raise ValidationError(f"{where}: ${{{ref}}} is not a reference this engine knows",
                                  hint="use ${inputs.NAME}, ${steps.ID.output}, ${steps.ID.output.KEY} or ${item}",
                                  step=s.id if s else None, field=fld)
        head = ref.split(".")
        if head[0] == "steps" and head[1] not in ids:
            raise ValidationError(f"{where}: refers to step {head[1]!r}, which does not exist",
                                  hint=f"steps are: {', '.join(ids)}", step=s.id if s else None, field=fld,
                                  missing=head[1])
        if head[0] == "inputs" and head[1] not in self.inputs:
            raise ValidationError(f"{where}: refers to input {head[1]!r}, which the workflow does not declare",
                                  hint=f"declare it under inputs: (inputs are: {', '.join(self.inputs) or 'none'})",
                                  step=s.id if s else None, field=fld, missing=head[1])
        if own and s is not None and head[0] == "steps" and head[1] != s.id and head[1] not in (deps or []):
            raise ValidationError(f"{where}: a compensation may refer only to its own step and the steps it needs",
                                  hint=f"use ${{steps.{s.id}.output}}", step=s.id, field=fld)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise ValidationError(f"workflow {self.name!r} has no step {step_id!r}", step=step_id)

    # ------------------------------------------------------------------ builder
    @classmethod
    def build(cls, name: str, *, version: str = "1", description: str = "",
              inputs: dict[str, Any] | None = None) -> Builder:
        return Builder(cls(name=name, version=version, description=description, inputs=dict(inputs or {})))


def _check_step(s: Step) -> None:
    def bad(fld: str, why: str, hint: str = "") -> ValidationError:
        return ValidationError(f"step {s.id!r}: field {fld!r}: {why}", hint=hint or None, step=s.id, field=fld)

    if not SLUG.match(s.id):
        raise bad("id", "use lower-case letters, digits, '_' and '-'", "e.g. fetch_papers")
    need = {"tool": "tool", "notebook": "notebook", "assistant": "assistant", "workflow": "workflow", "call": "fn"}
    if getattr(s, need[s.kind]) in (None, ""):
        raise bad(need[s.kind], f"a {s.kind} step needs it")
    if s.kind == "assistant" and not s.prompt:
        raise bad("prompt", "an assistant step needs the prompt to ask")
    if s.retries < 0:
        raise bad("retries", "must be ≥ 0")
    if not math.isfinite(s.retry_delay_s) or s.retry_delay_s < 0:
        raise bad("retry_delay_s", "must be a number ≥ 0 (seconds)")
    if s.timeout_s is not None and (not math.isfinite(s.timeout_s) or s.timeout_s <= 0):
        raise bad("timeout_s", "must be > 0 (seconds)", "leave it out for no time limit")
    if s.id in s.needs:
        raise ValidationError(f"cycle: {s.id} → {s.id}", hint="a step cannot need itself", cycle=[s.id, s.id])
    if s.kind == "workflow" and isinstance(s.workflow, dict):
        Workflow.parse(s.workflow)


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``graph`` (node → the nodes it depends on) spelled out as data flows
    (``a → b → c → a``: b needs a, c needs b, a needs c), or None. Iterative DFS: deep chains are fine."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for root in graph:
        if color[root] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        path = [root]
        color[root] = grey
        while stack:
            node, it = stack[-1]
            nxt = next((d for d in it if d in graph), None)
            if nxt is None:
                color[node] = black
                stack.pop()
                path.pop()
            elif color[nxt] == grey:
                cyc = path[path.index(nxt):] + [nxt]
                return list(reversed(cyc))
            elif color[nxt] == white:
                color[nxt] = grey
                stack.append((nxt, iter(graph[nxt])))
                path.append(nxt)
    return None


class Builder:
    """``Workflow.build(name)``: add steps with methods; each returns a :class:`StepHandle`."""

    def __init__(self, wf: Workflow) -> None:
        self.workflow = wf

    def _add(self, **fields: Any) -> StepHandle:
        try:
            step = Step(**fields)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise ValidationError(f"step {fields.get('id')!r}: field {loc!r}: {first['msg']}",
                                  step=fields.get("id"), field=loc) from None
        self.workflow.steps.append(step)
        return StepHandle(step)

    def input(self, name: str, default: Any = None) -> Ref:
        self.workflow.inputs[name] = default
        return Ref(f"${{inputs.{name}}}")

    def tool(self, id: str, tool: str, args: dict[str, Any] | None = None, **opts: Any) -> StepHandle:
        return self._add(id=id, kind="tool", tool=tool, args=dict(args or {}), **opts)

    def call(self, id: str, fn: Callable[..., Any], args: dict[str, Any] | None = None, **opts: Any) -> StepHandle:
        return self._add(id=id, kind="call", fn=fn, args=dict(args or {}), **opts)

    def notebook(self, id: str, notebook: str, parameters: dict[str, Any] | None = None,
                 **opts: Any) -> StepHandle:
        return self._add(id=id, kind="notebook", notebook=notebook, parameters=dict(parameters or {}), **opts)

    def assistant(self, id: str, assistant: str, prompt: str, **opts: Any) -> StepHandle:
        return self._add(id=id, kind="assistant", assistant=assistant, prompt=prompt, **opts)

    def subflow(self, id: str, workflow: str | Workflow | Builder, inputs: dict[str, Any] | None = None,
                **opts: Any) -> StepHandle:
        if isinstance(workflow, Builder):
            workflow = workflow.workflow
        spec: str | dict[str, Any] = workflow.to_data() if isinstance(workflow, Workflow) else workflow
        return self._add(id=id, kind="workflow", workflow=spec, inputs=dict(inputs or {}), **opts)

    def output(self, name: str, ref: str) -> None:
        self.workflow.outputs[name] = str(ref)

    def validate(self) -> Workflow:
        return self.workflow.validate()

    def done(self) -> Workflow:
        """The workflow, validated."""
        return self.workflow.validate()


__all__ = ["KINDS", "OPS", "Builder", "Compensation", "Condition", "Ref", "Step", "StepHandle", "Workflow",
           "find_cycle", "refs_in"]
