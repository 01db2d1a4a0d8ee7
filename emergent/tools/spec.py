"""What a tool is: a typed function (or class) plus the metadata the gate needs.

``@tool`` builds a :class:`ToolSpec` from a function's type hints and docstring: the JSON schema of
its arguments (a pydantic model), the schema of its result, a semver version, a side-effect level,
required permissions, a timeout, a retry policy and dependencies (other tools with version
specifiers, Python requirements with ``packaging`` specifiers)::

    from emergent.tools import tool, SideEffect

    @tool(version="1.2.0", side_effect=SideEffect.EXTERNAL, permissions=("net",))
    def post_message(channel: str, text: str, ctx: ToolContext) -> dict:
        '''Post a message to a channel.

        Args:
            channel: where to post
            text: what to say
        '''

A parameter annotated :class:`ToolContext` is injected by the runner (actor, workspace, settings,
services) and is not part of the schema. The decorator is pure: it returns the spec and registers
nothing; a module lists its specs (``TOOLS = [...]``) and a registry loads them from code, from the
``emergent.tools`` entry-point group, or from SQL.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, get_type_hints

import pydantic
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from emergent.errors import ToolExecutionError, TransientError, UsageError, ValidationError

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class SideEffect(StrEnum):
    """How much an action can change the world, in increasing order.

    ``execute``: the tool runs code on the host, outside the sandbox (a notebook's kernel); the
    gate asks a human before every such run by an agent or a service."""

    READ = "read"
    WRITE = "write"
    EXTERNAL = "external"
    DESTRUCTIVE = "destructive"
    EXECUTE = "execute"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {SideEffect.READ: 0, SideEffect.WRITE: 1, SideEffect.EXTERNAL: 2, SideEffect.DESTRUCTIVE: 3,
         SideEffect.EXECUTE: 4}


class RunsCode(StrEnum):
    """Whether a tool runs code it is given, and where: the one place every tool declares it.

    ``no``: it runs only its own Python; ``sandbox``: it runs what it is given in the sandbox (the
    runner hands it a sandbox with the isolation the principal requires); ``host``: it runs code on
    the host (allowed only with side effect ``execute``, so the gate asks before each run)."""

    NO = "no"
    SANDBOX = "sandbox"
    HOST = "host"


def _default_retryable() -> tuple[type[BaseException], ...]:
    return (TransientError, ConnectionError, TimeoutError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries with exponential backoff and jitter, only on retryable errors.

    An exception is retryable when it is an instance of ``retry_on`` or carries
    ``retryable = True`` (integrations set it on 429 and 5xx answers).
    """

    attempts: int = 3
    initial: float = 0.05
    max_wait: float = 2.0
    jitter: float = 0.05
    retry_on: tuple[type[BaseException], ...] = field(default_factory=_default_retryable)

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) or getattr(exc, "retryable", False) is True


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(slots=True)
class ToolContext:
    """Injected into a tool that asks for it: who acts, where, and the services it may use.

    ``contents``: the bytes of the files the call reads or runs, read once by the runner before the
    gate decided (an approval is bound to their digest): a tool runs *these*, never re-reads them.
    """

    principal: Any = None  # the emergent.principals.Principal acting
    workspace: Path | None = None
    settings: Any = None
    services: Any = None  # a narrow ToolServices (memory, ...), never the Workstation
    call_id: str = ""
    sandbox: Any = None  # the Sandbox the built-in python/shell tools use
    contents: dict[str, bytes] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return getattr(self.principal, "key", "") or ""


def check_version(version: str, what: str = "version") -> Version:
    """A semver string as a ``packaging`` Version; a clear error otherwise."""
    try:
        if SEMVER.match(version):
            return Version(version)
    except InvalidVersion:
        pass
    raise ValidationError(f"{what} {version!r} is not a semantic version",
                          hint="use MAJOR.MINOR.PATCH, e.g. 1.4.2 or 2.0.0-rc.1", version=version)


def _param_docs(doc: str) -> tuple[str, dict[str, str]]:
    """Summary and per-parameter descriptions from a Google, NumPy or reST style docstring."""
    doc = inspect.cleandoc(doc or "")
    summary = re.split(r"\n\s*\n|:param", doc, maxsplit=1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    for m in re.finditer(r":param\s+(?:\w+\s+)?(\w+):\s*([^\n]+?)\s*(?=:param|$)", doc, re.M):
        params[m.group(1)] = m.group(2).strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):?\s*\n(?:-+\n)?(.*?)(?:\n\s*\n|\Z)", doc, re.M | re.S)
    if section:
        for m in re.finditer(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$", section.group(1), re.M):
            params.setdefault(m.group(1), m.group(2).strip())
    return summary, params


def _bad_fields(exc: pydantic.ValidationError, whole: str = "(arguments)") -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or whole
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.60})"
        out.append(f"{loc}: {err['msg']}{got}")
    return out


@dataclass(eq=False)
class ToolSpec:
    """A tool: the callable plus everything the registry, runner and gate need to know."""

    name: str
    version: str
    description: str
    func: Callable[..., Any]
    args_model: type[pydantic.BaseModel]
    result_type: Any = Any
    side_effect: SideEffect = SideEffect.READ
    permissions: tuple[str, ...] = ()
    timeout: float | None = None
    retry: RetryPolicy = NO_RETRY
    requires: Mapping[str, str] = field(default_factory=dict)
    python_requires: tuple[str, ...] = ()
    sandboxed: bool = False
    resource_arg: str | None = None
    cost: float = 0.0
    tags: tuple[str, ...] = ()
    context_param: str | None = None
    source: str = "code"
    runs_code: RunsCode = RunsCode.NO
    resource_kind: str | None = None  # path | url | scope | None: how the gate reads the resource
    reads: Callable[[dict[str, Any], ToolContext], dict[str, bytes]] | None = None
    #: arguments holding personal content (a memory's text): the audit trail records only their length
    #: and sha256, and an approval drops their text once its call has run or was refused
    personal_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sandboxed and self.runs_code == RunsCode.NO:
            self.runs_code = RunsCode.SANDBOX
        if self.runs_code == RunsCode.HOST and self.side_effect != SideEffect.EXECUTE:
            raise ValidationError(f"tool {self.name!r} runs code on the host, so its side effect must be 'execute'",
                                  hint="declare side_effect=SideEffect.EXECUTE (the gate then asks before every "
                                       "run by an agent), or run the code in the sandbox", tool=self.name)
        if self.runs_code == RunsCode.SANDBOX:
            self.sandboxed = True

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def network(self) -> bool:
        """True when the tool reaches the network (so pause stops it even when it only reads)."""
        return "net" in self.permissions or self.side_effect == SideEffect.EXTERNAL

    @cached_property
    def secret_args(self) -> frozenset[str]:
        """Arguments the audit trail never records: typed ``SecretStr``/``SecretBytes``, or marked
        ``json_schema_extra={"secret": True}`` / ``format: password`` in the schema."""
        out = set()
        for fname, f in self.args_model.model_fields.items():
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            if f.annotation in (pydantic.SecretStr, pydantic.SecretBytes) or extra.get("secret") \
                    or extra.get("format") == "password":
                out.add(fname)
        props = self.args_schema.get("properties", {})
        out |= {k for k, v in props.items() if isinstance(v, dict) and v.get("format") == "password"}
        return frozenset(out)

    @cached_property
    def parsed_version(self) -> Version:
        return Version(self.version)

    @cached_property
    def args_schema(self) -> dict[str, Any]:
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return schema

    @cached_property
    def _result_adapter(self) -> pydantic.TypeAdapter[Any]:
        return pydantic.TypeAdapter(self.result_type)

    @cached_property
    def result_schema(self) -> dict[str, Any]:
        try:
            return self._result_adapter.json_schema()
        except pydantic.PydanticUserError:
            return {}

    def validate_args(self, args: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated keyword arguments; the error lists every bad or missing field."""
        if args is not None and not isinstance(args, Mapping):
            raise ValidationError(f"arguments for tool {self.key} must be an object, got {type(args).__name__}",
                                  hint=f"pass a dict matching {self.args_schema}", tool=self.key, invalid=[])
        try:
            return self.args_model.model_validate(args or {}).__dict__
        except pydantic.ValidationError as exc:
            bad = _bad_fields(exc)
            raise ValidationError(f"bad arguments for tool {self.key}: " + "; ".join(bad),
                                  hint="fix every field listed; `emergent tools show "
                                       f"{self.name}` prints the schema", tool=self.key, invalid=bad) from None

    def check_result(self, value: Any) -> Any:
        """The result, if it has the declared type (strictly); a ToolExecutionError otherwise."""
        if self.result_type is Any:
            return value
        try:
            return self._result_adapter.validate_python(value, strict=True)
        except pydantic.ValidationError as exc:
            raise ToolExecutionError(
                f"tool {self.key} returned {type(value).__name__}, not its declared result type: "
                + "; ".join(_bad_fields(exc, "(result)")),
                hint="fix the tool's return value or its return annotation", tool=self.key) from None

    def invoke(self, kwargs: dict[str, Any], ctx: ToolContext | None = None) -> Any:
        """Run the function with validated ``kwargs`` (and the context when it asks for one)."""
        if self.context_param is not None:
            return self.func(**kwargs, **{self.context_param: ctx or ToolContext()})
        return self.func(**kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (no validation, no gate)."""
        if self.context_param is not None and self.context_param not in kwargs:
            kwargs[self.context_param] = ToolContext()
        return self.func(*args, **kwargs)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (what SQL keeps and what `tools show` prints)."""
        return {"name": self.name, "version": self.version, "description": self.description,
                "side_effect": str(self.side_effect), "permissions": list(self.permissions),
                "timeout": self.timeout, "retry": {"attempts": self.retry.attempts, "initial": self.retry.initial,
                                                   "max_wait": self.retry.max_wait},
                "requires": dict(self.requires), "python_requires": list(self.python_requires),
                "sandboxed": self.sandboxed, "runs_code": str(self.runs_code), "resource_arg": self.resource_arg,
                "resource_kind": self.resource_kind, "cost": self.cost,
                "tags": list(self.tags), "args_schema": self.args_schema, "result_schema": self.result_schema,
                "source": self.source}

    def __repr__(self) -> str:
        return f"<tool {self.key} ({self.side_effect})>"


def _target(obj: Any) -> tuple[Callable[..., Any], Callable[..., Any], str]:
    """(callable to run, callable to inspect, default name) for a function or a class."""
    if inspect.isclass(obj):
        method_name = "run" if callable(getattr(obj, "run", None)) else "__call__"
        if method_name == "__call__" and not any("__call__" in vars(k) for k in obj.__mro__[:-1]):
            raise UsageError(f"class {obj.__name__} has neither run() nor __call__()",
                             hint="a class tool runs its run() method")
        method: Callable[..., Any] = getattr(obj, method_name)
        holder: list[Any] = []

        def bound(*a: Any, **kw: Any) -> Any:
            if not holder:
                holder.append(obj())
            return getattr(holder[0], method_name)(*a, **kw)

        name = re.sub(r"(?<!^)(?=[A-Z])", "_", obj.__name__).lower()
        return bound, method, name
    return obj, obj, obj.__name__


def _build_model(name: str, fn: Callable[..., Any], docs: dict[str, str]) -> tuple[type[pydantic.BaseModel], Any, str | None]:
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # unresolved forward references
        raise UsageError(f"cannot read the type hints of tool {name!r}: {exc}",
                         hint="import every type the signature names at module level") from exc
    fields: dict[str, Any] = {}
    ctx_param = None
    for pname, p in inspect.signature(fn).parameters.items():
        if pname == "self":
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise UsageError(f"tool {name!r} takes *{pname}", hint="give every argument a name and a type")
        if hints.get(pname) is ToolContext:
            ctx_param = pname
            continue
        if pname not in hints:
            raise UsageError(f"parameter {pname!r} of tool {name!r} has no type hint",
                             hint="annotate every parameter; the JSON schema is built from the hints")
        default = ... if p.default is p.empty else p.default
        fields[pname] = (hints[pname], pydantic.Field(default, description=docs.get(pname)))
    model = pydantic.create_model(f"{name.replace('.', '_')}_args", __config__=pydantic.ConfigDict(extra="forbid"),
                                  **fields)
    return model, hints.get("return", Any), ctx_param


def _check_requirements(name: str, requires: Mapping[str, str], python_requires: Sequence[str]) -> None:
    from emergent.tools._semver import parse_range

    for dep, rng in requires.items():
        parse_range(rng, what=f"dependency {dep!r} of tool {name!r}")
    for req in python_requires:
        try:
            Requirement(req)
        except InvalidRequirement as exc:
            raise ValidationError(f"tool {name!r}: invalid Python requirement {req!r}: {exc}",
                                  hint="use a PEP 508 requirement such as 'duckdb>=1.0'") from None


def tool(func: Any = None, *, name: str | None = None, version: str = "0.1.0", description: str | None = None,
         side_effect: SideEffect | str = SideEffect.READ, permissions: Sequence[str] = (),
         timeout: float | None = None, retry: RetryPolicy | int | None = None,
         requires: Mapping[str, str] | None = None, python_requires: Sequence[str] = (),
         sandboxed: bool = False, resource: str | None = None, cost: float = 0.0,
         tags: Sequence[str] = (), runs_code: RunsCode | str = RunsCode.NO, resource_kind: str | None = None,
         reads: Callable[[dict[str, Any], ToolContext], dict[str, bytes]] | None = None,
         personal: Sequence[str] = ()) -> Any:
    """Turn a typed function or class into a :class:`ToolSpec` (usable bare or with options).

    ``retry`` is a :class:`RetryPolicy` or a number of attempts; ``requires`` maps other tools to
    version ranges (``"^1.2"``, ``"~1.4"``, ``">=1,<3"``); ``resource`` names the argument whose
    value the permission matrix matches against resource patterns (``resource_kind`` ``scope``: a
    memory scope, which agents reach only when it is their own or a rule allows it).
    ``runs_code`` declares whether the tool runs code it is given (``sandbox`` or ``host``);
    ``reads(kwargs, ctx)`` returns the bytes of every file the call will read or run, so that an
    approval is bound to them and the tool runs exactly what was approved (``ctx.contents``).
    ``personal`` names the arguments that hold personal content (a memory's text): the audit trail
    keeps only their length and sha256, and an approval keeps their text only until its call ran.
    """

    def build(obj: Any) -> ToolSpec:
        run, inspected, default_name = _target(obj)
        tname = name or default_name
        if not NAME.match(tname):
            raise ValidationError(f"tool name {tname!r} is not valid",
                                  hint="use lower-case words joined by _ or . (e.g. memory.recall)")
        check_version(version, f"version of tool {tname!r}")
        own = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
        summary, docs = _param_docs(own or inspect.getdoc(inspected) or "")
        model, result_type, ctx_param = _build_model(tname, inspected, docs)
        try:
            level = SideEffect(side_effect)
        except ValueError:
            raise ValidationError(f"tool {tname!r}: unknown side-effect level {side_effect!r}",
                                  hint=f"use one of {', '.join(SideEffect)}") from None
        if resource is not None and resource not in model.model_fields:
            raise ValidationError(f"tool {tname!r}: resource argument {resource!r} is not a parameter")
        for arg in personal:
            if arg not in model.model_fields:
                raise ValidationError(f"tool {tname!r}: personal argument {arg!r} is not a parameter")
        _check_requirements(tname, requires or {}, python_requires)
        policy = retry if isinstance(retry, RetryPolicy) else RetryPolicy(attempts=retry) if retry else NO_RETRY
        return ToolSpec(name=tname, version=version, description=description or summary, func=run,
                        args_model=model, result_type=result_type, side_effect=level,
                        permissions=tuple(permissions), timeout=timeout, retry=policy,
                        requires=dict(requires or {}), python_requires=tuple(python_requires),
                        sandboxed=sandboxed, resource_arg=resource, cost=cost, tags=tuple(tags),
                        context_param=ctx_param, source=getattr(obj, "__module__", "code") or "code",
                        runs_code=RunsCode(runs_code), resource_kind=resource_kind, reads=reads,
                        personal_args=tuple(personal))

    return build(func) if func is not None else build


__all__ = ["NO_RETRY", "RetryPolicy", "RunsCode", "SideEffect", "ToolContext", "ToolSpec", "check_version", "tool"]
