"""An MCP server's tool as an emergent tool: name, version, side effect and a JSON-schema spec.

- **name** ``mcp.<server>.<tool>``, both parts folded to the registry's name rule (lower case,
  ``camelCase`` → ``camel_case``, anything else → ``_``, a leading digit gets an ``x``).
- **version**: the server's ``serverInfo.version`` as ``MAJOR.MINOR.PATCH``; a tool whose schema
  (input and output schema, description, side effect) changed while the server kept its version
  gets ``X.Y.Z-rN`` (``packaging`` reads it as the post-release ``X.Y.Z.postN``: newer than
  ``X.Y.Z``, older than ``X.Y.Z+1``), so the registry's history shows every schema it ran. The
  digest is kept in the tool's tags (``mcp.digest=...``).
- **side effect** from the annotations: ``readOnlyHint`` → read, ``destructiveHint`` → destructive,
  otherwise write (stdio: a local process) or external (HTTP: another machine).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pydantic
from packaging.version import InvalidVersion, Version

from emergent.errors import ValidationError
from emergent.tools.spec import SideEffect, ToolSpec

TAG_TOOL = "mcp.tool="
TAG_DIGEST = "mcp.digest="
TAG_BY = "mcp.installed_by="


class _AnyArgs(pydantic.BaseModel):
    """Placeholder model: a :class:`SchemaToolSpec` validates with its JSON schema instead."""

    model_config = pydantic.ConfigDict(extra="allow")


@dataclass(eq=False)
class SchemaToolSpec(ToolSpec):
    """A tool whose arguments are described by a JSON schema (not a Python signature).

    ``validate_args`` checks the arguments against ``input_schema`` with ``jsonschema`` (every
    error listed, as for a pydantic-typed tool); ``args_schema`` is the schema as given."""

    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None

    @cached_property
    def args_schema(self) -> dict[str, Any]:  # type: ignore[override]
        return self.input_schema

    @cached_property
    def result_schema(self) -> dict[str, Any]:  # type: ignore[override]
        return self.output_schema or {}

    @cached_property
    def _validator(self) -> Any:
        try:
            from jsonschema import validators
            from jsonschema.exceptions import SchemaError
        except ModuleNotFoundError:
            from emergent.errors import MissingExtraError

            raise MissingExtraError("MCP tools", "mcp", "jsonschema") from None

        cls = validators.validator_for(self.input_schema, default=validators.Draft202012Validator)
        try:
            cls.check_schema(self.input_schema)
        except SchemaError as exc:
            raise ValidationError(f"tool {self.key} has an invalid input schema: {exc.message}",
                                  hint="the MCP server published a schema jsonschema cannot use",
                                  tool=self.key) from None
        from referencing import Registry

        # A schema is the server's claim: its $refs resolve inside it ($defs), never by fetching a URL
        # or a file it names (jsonschema would otherwise retrieve them, on every call's validation).
        return cls(self.input_schema, registry=Registry(retrieve=_no_retrieval))  # type: ignore[call-arg]

    def validate_args(self, args: Mapping[str, Any] | None) -> dict[str, Any]:
        if args is not None and not isinstance(args, Mapping):
            raise ValidationError(f"arguments for tool {self.key} must be an object, got {type(args).__name__}",
                                  hint=f"pass a dict matching {self.args_schema}", tool=self.key, invalid=[])
        kwargs = dict(args or {})
        from referencing.exceptions import Unresolvable

        try:
            errors = sorted(self._validator.iter_errors(kwargs), key=lambda e: [str(p) for p in e.absolute_path])
        except Unresolvable as exc:
            raise ValidationError(f"tool {self.key}'s input schema refers to {getattr(exc, 'ref', exc)!s}, which is "
                                  "never fetched", hint="the MCP server must publish a self-contained schema "
                                                        "($defs); nothing was called", tool=self.key) from None
        if errors:
            bad = [f"{'.'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}" for e in errors]
            raise ValidationError(f"bad arguments for tool {self.key}: " + "; ".join(bad),
                                  hint=f"fix every field listed; `emergent tools show {self.name}` prints the schema",
                                  tool=self.key, invalid=bad)
        return kwargs

    @property
    def mcp_tool(self) -> str:
        """The tool's name on its MCP server."""
        return tag(self.tags, TAG_TOOL) or self.name.rsplit(".", 1)[-1]

    @property
    def digest(self) -> str:
        return tag(self.tags, TAG_DIGEST) or ""


def _no_retrieval(uri: str) -> Any:
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def tag(tags: tuple[str, ...] | list[str], prefix: str) -> str | None:
    return next((t[len(prefix):] for t in tags if t.startswith(prefix)), None)


def fold(text: str) -> str:
    """One segment of a registry name: ``[a-z][a-z0-9_]*``."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text or "")
    s = re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")
    s = re.sub(r"_+", "_", s)
    if not s:
        return "x"
    return s if s[0].isalpha() else "x" + s


def tool_names(server: str, tools: list[str]) -> dict[str, str]:
    """MCP tool name → registry name; two tools folding to the same name get ``_2``, ``_3``..."""
    base = f"mcp.{fold(server)}"
    out: dict[str, str] = {}
    used: set[str] = set()
    for t in sorted(tools):
        name, n = f"{base}.{fold(t)}", 1
        while name in used:
            n += 1
            name = f"{base}.{fold(t)}_{n}"
        used.add(name)
        out[t] = name
    return out


def base_version(server_version: str | None) -> str:
    """``serverInfo.version`` as ``MAJOR.MINOR.PATCH`` (``v1.2`` → ``1.2.0``; unreadable → ``0.0.0``)."""
    text = (server_version or "").strip().lstrip("vV")
    try:
        rel = Version(text).release
    except InvalidVersion:
        m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
        rel = tuple(int(g) for g in m.groups() if g is not None) if m else (0,)
    parts = [*rel[:3], *[0] * (3 - len(rel[:3]))]
    return ".".join(str(p) for p in parts)


def side_effect(annotations: Any, *, remote: bool) -> SideEffect:
    """read (``readOnlyHint``), destructive (``destructiveHint``), else external (HTTP) or write (stdio)."""
    ro = getattr(annotations, "readOnlyHint", None) if annotations is not None else None
    de = getattr(annotations, "destructiveHint", None) if annotations is not None else None
    if ro is True:
        return SideEffect.READ
    if de is True:
        return SideEffect.DESTRUCTIVE
    return SideEffect.EXTERNAL if remote else SideEffect.WRITE


def schema_digest(input_schema: Any, output_schema: Any, description: str, level: SideEffect) -> str:
    body = json.dumps({"input": input_schema, "output": output_schema, "description": description,
                       "side_effect": str(level)}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def pick_version(base: str, digest: str, recorded: Mapping[str, Any]) -> str:
    """The version for a tool with ``digest`` at server version ``base``, given the recorded specs
    (version → spec): the recorded one with that digest, else ``base``, else ``base-rN`` (next N)."""
    rev = re.compile(re.escape(base) + r"(?:-r(\d+))?$")
    same = {v: m for v in recorded if (m := rev.match(v)) is not None}
    for v in same:
        if tag(getattr(recorded[v], "tags", ()), TAG_DIGEST) == digest:
            return v
    if not same:
        return base
    n = max(int(m.group(1) or 0) for m in same.values()) + 1
    return f"{base}-r{n}"


def build(*, name: str, version: str, description: str, level: SideEffect, input_schema: dict[str, Any],
          output_schema: dict[str, Any] | None, mcp_tool: str, digest: str, func: Callable[..., Any],
          remote: bool, source: str, installed_by: str | None = None, timeout: float | None = None) -> SchemaToolSpec:
    tags = ["mcp", f"{TAG_TOOL}{mcp_tool}", f"{TAG_DIGEST}{digest}"]
    if installed_by:
        tags.append(f"{TAG_BY}{installed_by}")
    return SchemaToolSpec(name=name, version=version, description=description, func=func, args_model=_AnyArgs,
                          side_effect=level, permissions=("net",) if remote else (), timeout=timeout,
                          tags=tuple(tags), source=source, input_schema=input_schema, output_schema=output_schema)
