"""The versioned tool registry: code, entry points and SQL.

Tools come from code (``registry.add(spec)``), from modules (``registry.install("pkg.mod")`` or a
``.py`` file) and from the ``emergent.tools`` entry-point group (the built-ins register there
exactly like a third-party package). Every version ever registered is kept in SQL with its
schema, whether it is enabled, and whether it is deprecated (and by what successor).

``resolve("name")`` picks the highest enabled version whose code is loaded; ``"name@1.4.2"`` an
exact one; ``"name@^1.2"``, ``"name@~1.4"`` or ``"name@>=1,<3"`` the highest in range.
:meth:`ToolRegistry.closure` resolves a tool's dependencies on other tools (and checks its
Python requirements), naming the conflicting pair when they cannot all hold.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import json
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from emergent.clock import Clock, SystemClock
from emergent.errors import DependencyConflictError, NotFoundError, UsageError, ValidationError
from emergent.registry import suggest
from emergent.tools._semver import parse_range, split_ref
from emergent.tools.spec import ToolSpec, check_version
from emergent.tools.tables import tool_versions

GROUP = "emergent.tools"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    name: str
    version: str
    description: str
    side_effect: str
    enabled: bool
    deprecated: bool
    successor: str | None
    note: str | None
    source: str
    loaded: bool

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


def specs_in(obj: Any) -> list[ToolSpec]:
    """ToolSpecs from an entry-point target: a spec, an iterable of specs, a module or a factory."""
    if isinstance(obj, ToolSpec):
        return [obj]
    if isinstance(obj, ModuleType):
        listed = getattr(obj, "TOOLS", None)
        return specs_in(listed) if listed is not None else [v for v in vars(obj).values() if isinstance(v, ToolSpec)]
    if callable(obj):
        return specs_in(obj())
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        return [s for item in obj for s in specs_in(item)]
    raise ValidationError(f"{obj!r} is not a tool", hint="point at a @tool function, a list of them or a module")


class ToolRegistry:
    """Name → versions → spec, persisted in SQL when a store is given."""

    def __init__(self, sql: Any = None, *, clock: Clock | None = None, entry_points: bool = True,
                 refresh_interval: float = 2.0) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.refresh_interval = refresh_interval
        self._refreshed = time.monotonic()
        self._specs: dict[str, dict[str, ToolSpec]] = {}
        self._state: dict[tuple[str, str], dict[str, Any]] = {}
        self._cache: dict[str, ToolSpec] = {}
        self._lock = threading.RLock()
        self._entry_points_loaded = not entry_points
        self._entry_points_done = not entry_points
        self._load_lock = threading.RLock()
        self.load_errors: dict[str, str] = {}
        #: source prefix -> rebuilds a recorded version from its stored description (``mcp+``: a tool
        #: of an MCP server, whose code is the server: it survives a restart without re-installing)
        self.loaders: dict[str, Callable[[str, dict[str, Any]], ToolSpec]] = {}
        if sql is not None:
            self.refresh()

    # ------------------------------------------------------------------ registration
    def add(self, *specs: ToolSpec, source: str | None = None) -> list[ToolSpec]:
        """Register specs in this process and record their versions in SQL (one transaction)."""
        with self._lock:
            for spec in specs:
                if source:
                    spec.source = source
                self._specs.setdefault(spec.name, {})[spec.version] = spec
                self._state.setdefault((spec.name, spec.version), {
                    "enabled": True, "deprecated": False, "successor": None, "note": None,
                    "description": spec.description, "side_effect": str(spec.side_effect), "source": spec.source})
            if self.sql is not None and specs:
                self._persist(specs)
            self._cache.clear()
        return list(specs)

    def _persist(self, specs: Iterable[ToolSpec]) -> None:
        now = self.clock.now()
        rows = {(s.name, s.version): {"description": s.description, "side_effect": str(s.side_effect),
                                      "spec": json.dumps(s.describe(), default=str), "source": s.source}
                for s in specs}
        names = sorted({k[0] for k in rows})
        with self.sql.begin() as conn:
            stored = {(r.name, r.version): (r.spec, r.source) for r in conn.execute(
                sa.select(tool_versions.c.name, tool_versions.c.version, tool_versions.c.spec,
                          tool_versions.c.source).where(tool_versions.c.name.in_(names)))}
            for (name, version), row in rows.items():
                if (name, version) not in stored:
                    try:
                        with conn.begin_nested():
                            conn.execute(tool_versions.insert(), {**row, "name": name, "version": version,
                                                                  "enabled": True, "deprecated": False,
                                                                  "registered_at": now, "updated_at": now})
                    except sa.exc.IntegrityError:  # another process registered it meanwhile
                        pass
                elif stored[(name, version)] != (row["spec"], row["source"]):
                    conn.execute(tool_versions.update().where(tool_versions.c.name == name,
                                                              tool_versions.c.version == version)
                                 .values(**row, updated_at=now))

    def install(self, target: str) -> list[ToolSpec]:
        """Register the tools of a module (``pkg.mod``, ``pkg.mod:attr``) or a ``.py`` file."""
        mod_name, _, attr = target.partition(":")
        path = Path(mod_name)
        try:
            if path.suffix == ".py":
                if not path.exists():
                    raise NotFoundError(f"no file {target!r}", hint="give a path to a .py file or a module name")
                spec = importlib.util.spec_from_file_location(f"emergent_user_tools.{path.stem}", path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            raise NotFoundError(f"cannot import {mod_name!r}: {exc}",
                                hint="install the package that provides it, or give a .py file") from None
        found = specs_in(getattr(module, attr) if attr else module)
        if not found:
            raise UsageError(f"{target!r} defines no tools", hint="decorate functions with @tool")
        return self.add(*found, source=target)

    def load_entry_points(self) -> None:
        """Load every tool advertised in the ``emergent.tools`` entry-point group (once)."""
        if self._entry_points_done:
            return
        # Threads making their first calls at once wait here for the one that loads: a flag set before
        # the load finished let the others look tools up in a half-filled registry ("unknown tool").
        with self._load_lock:  # its own lock: lookups and adds of other threads never wait on a plug-in's import
            if self._entry_points_loaded:  # done, or being loaded by this thread (add() re-enters)
                return
            self._entry_points_loaded = True
            try:
                for ep in metadata.entry_points(group=GROUP):
                    try:
                        self.add(*specs_in(ep.load()), source=f"entry-point:{ep.name}")
                    except Exception as exc:  # one broken plug-in must not hide the others
                        self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            finally:
                self._entry_points_done = True

    # ------------------------------------------------------------------ SQL state
    def refresh(self) -> None:
        """Re-read enable/deprecate flags and versions recorded by other processes."""
        if self.sql is None:
            return
        self._refreshed = time.monotonic()
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(tool_versions.c.name, tool_versions.c.version, tool_versions.c.enabled,
                                          tool_versions.c.deprecated, tool_versions.c.successor,
                                          tool_versions.c.note, tool_versions.c.description,
                                          tool_versions.c.side_effect, tool_versions.c.source)).all()
        with self._lock:
            for r in rows:
                self._state[(r.name, r.version)] = {
                    "enabled": bool(r.enabled), "deprecated": bool(r.deprecated), "successor": r.successor,
                    "note": r.note, "description": r.description, "side_effect": r.side_effect, "source": r.source}
            self._cache.clear()

    def _set(self, ref: str, before: Callable[[list[str]], object] | None = None, **values: Any) -> list[str]:
        """Change the state of the versions ``ref`` matches; ``before`` (the audit record) is called
        with them first, and when it raises nothing changes."""
        self.load_entry_points()
        name, rng = split_ref(ref)
        keys = [k for k in self._state if k[0] == name and (rng == "*" or Version(k[1]) in parse_range(rng))]
        if not keys:
            if not any(k[0] == name for k in self._state):
                self._unknown(name)
            raise NotFoundError(f"no version of tool {name!r} matches {rng!r}",
                                hint=f"recorded versions: {', '.join(self._versions_of(name))}")
        if before is not None:
            before([f"{n}@{v}" for n, v in keys])
        with self._lock:
            for key in keys:
                self._state[key].update(values)
                if self.sql is not None:
                    with self.sql.begin() as conn:
                        conn.execute(tool_versions.update().where(tool_versions.c.name == key[0],
                                                                  tool_versions.c.version == key[1])
                                     .values(**values, updated_at=self.clock.now()))
            self._cache.clear()
        return [f"{n}@{v}" for n, v in keys]

    def enable(self, ref: str, *, before: Callable[[list[str]], object] | None = None) -> list[str]:
        return self._set(ref, before, enabled=True)

    def disable(self, ref: str, *, before: Callable[[list[str]], object] | None = None) -> list[str]:
        return self._set(ref, before, enabled=False)

    def deprecate(self, ref: str, *, successor: str | None = None, note: str | None = None,
                  before: Callable[[list[str]], object] | None = None) -> list[str]:
        if successor:
            succ, rng = split_ref(successor)
            if succ not in self.names():
                self._unknown(succ)
            parse_range(rng, what=f"successor of {ref}")
        return self._set(ref, before, deprecated=True, successor=successor, note=note)

    # ------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted({k[0] for k in self._state} | set(self._specs))

    def _versions_of(self, name: str) -> list[str]:
        vs = {k[1] for k in self._state if k[0] == name} | set(self._specs.get(name, {}))
        return sorted(vs, key=Version)

    def versions(self, name: str) -> list[VersionInfo]:
        self.load_entry_points()
        if name not in self.names():
            self._unknown(name)
        out = []
        for v in self._versions_of(name):
            st = self._state.get((name, v), {})
            spec = self._specs.get(name, {}).get(v)
            out.append(VersionInfo(name, v, st.get("description", spec.description if spec else ""),
                                   st.get("side_effect", str(spec.side_effect) if spec else ""),
                                   st.get("enabled", True), st.get("deprecated", False), st.get("successor"),
                                   st.get("note"), st.get("source", spec.source if spec else ""), spec is not None))
        return out

    def _unknown(self, name: str) -> None:
        known = self.names()
        raise NotFoundError(f"unknown tool {name!r}",
                            hint=suggest(name, known) or "`emergent tools list` shows the registered tools",
                            tool=name)

    def resolve(self, ref: str) -> ToolSpec:
        """The spec for ``name``, ``name@1.4.2`` or ``name@^1.2`` (cached until anything changes)."""
        if self.sql is not None and time.monotonic() - self._refreshed > self.refresh_interval:
            self.refresh()  # see enable/disable made by other processes
        hit = self._cache.get(ref)
        if hit is not None:
            return hit
        self.load_entry_points()
        name, rng = split_ref(ref)
        spec = self._pick(name, parse_range(rng, what=f"version of tool {name!r}"), rng)
        st = self._state.get((spec.name, spec.version), {})
        if st.get("deprecated"):
            warnings.warn(f"tool {spec.key} is deprecated" + (f"; use {st['successor']}" if st.get("successor")
                          else "") + (f" ({st['note']})" if st.get("note") else ""), DeprecationWarning,
                          stacklevel=2)
        self._cache[ref] = spec
        return spec

    def _pick(self, name: str, spec_set: SpecifierSet, rng: str) -> ToolSpec:
        if name not in self._specs and not any(k[0] == name for k in self._state):
            self._unknown(name)
        recorded = self._versions_of(name)
        matching = [v for v in recorded if spec_set.contains(v)]
        if not matching and rng[0].isdigit():
            check_version(rng, f"version of tool {name!r}")
        if not matching:
            raise NotFoundError(f"no version of tool {name!r} matches {rng!r}",
                                hint=f"available versions: {', '.join(recorded) or 'none'}", tool=name)
        enabled = [v for v in matching if self._state.get((name, v), {}).get("enabled", True)]
        if not enabled:
            raise UsageError(f"tool {name}@{matching[-1]} is disabled",
                             hint=f"enable it with `emergent tools enable {name}@{matching[-1]}`", tool=name)
        loaded = [v for v in enabled if v in self._specs.get(name, {})]
        if self.loaders and len(loaded) < len(enabled):
            loaded = [v for v in enabled if v in self.recorded(name)]
        if not loaded:
            raise NotFoundError(f"tool {name}@{enabled[-1]} is recorded in the workspace but its code is not "
                                "loaded in this process",
                                hint="install the package or module that provides it "
                                     "(`emergent tools install MODULE`)", tool=name)
        return self._specs[name][loaded[-1]]

    def recorded(self, name: str) -> dict[str, ToolSpec]:
        """Version -> spec of ``name``: the loaded ones, plus those a loader rebuilds from SQL."""
        if self.sql is not None and self.loaders:
            with self.sql.connect() as conn:
                rows = conn.execute(sa.select(tool_versions.c.version, tool_versions.c.spec, tool_versions.c.source)
                                    .where(tool_versions.c.name == name)).all()
            for r in rows:
                fn = next((f for p, f in self.loaders.items() if r.source.startswith(p)), None)
                if fn is not None and r.version not in self._specs.get(name, {}):
                    spec = fn(r.source, json.loads(r.spec))
                    with self._lock:
                        self._specs.setdefault(name, {}).setdefault(r.version, spec)
        return dict(self._specs.get(name, {}))

    def state(self, spec: ToolSpec) -> dict[str, Any]:
        return dict(self._state.get((spec.name, spec.version), {}))

    def search(self, text: str = "") -> list[VersionInfo]:
        """Latest version of every tool whose name, description or tags contain ``text``."""
        t = text.lower()
        out = []
        for name in self.names():
            infos = self.versions(name)
            latest = infos[-1]
            spec = self._specs.get(name, {}).get(latest.version)
            hay = f"{name} {latest.description} {' '.join(spec.tags) if spec else ''}".lower()
            if t in hay:
                out.append(latest)
        return out

    # ------------------------------------------------------------------ dependencies
    def closure(self, ref: str | ToolSpec) -> dict[str, ToolSpec]:
        """The tool and every tool it needs, one version each; conflicts name the pair."""
        root = ref if isinstance(ref, ToolSpec) else self.resolve(ref)
        chosen: dict[str, ToolSpec] = {root.name: root}
        constraints: dict[str, list[tuple[str, str, SpecifierSet]]] = {}
        queue = [root]
        while queue:
            spec = queue.pop(0)
            for dep, rng in spec.requires.items():
                constraints.setdefault(dep, []).append((spec.key, rng, parse_range(rng)))
                cons = constraints[dep]
                if dep in chosen and all(chosen[dep].parsed_version in c[2] for c in cons):
                    continue
                if dep not in self._specs and not any(k[0] == dep for k in self._state):
                    raise DependencyConflictError(f"tool {spec.key} needs unknown tool {dep!r}",
                                                  hint=suggest(dep, self.names()) or "install the tool it needs")
                pick = self._pick_for(dep, cons)
                chosen[dep] = pick
                queue.append(pick)
        for spec in chosen.values():
            check_python_requires(spec)
        return chosen

    def _pick_for(self, dep: str, cons: list[tuple[str, str, SpecifierSet]]) -> ToolSpec:
        loaded = [v for v in self._specs.get(dep, {})
                  if self._state.get((dep, v), {}).get("enabled", True)]
        ok = sorted((v for v in loaded if all(Version(v) in c[2] for c in cons)), key=Version)
        if ok:
            return self._specs[dep][ok[-1]]
        avail = ", ".join(sorted(loaded, key=Version)) or "none"
        for who, rng, s in cons:
            if not any(Version(v) in s for v in loaded):
                raise DependencyConflictError(f"tool {who} needs {dep}@{rng}, but no enabled version matches",
                                              hint=f"available versions of {dep}: {avail}", tool=who, needs=dep)
        for (a, ra, sa_), (b, rb, sb) in itertools.combinations(cons, 2):
            if not any(Version(v) in sa_ and Version(v) in sb for v in loaded):
                raise DependencyConflictError(
                    f"dependency conflict: {a} needs {dep}@{ra} but {b} needs {dep}@{rb}; "
                    f"no version of {dep} satisfies both",
                    hint=f"available versions of {dep}: {avail}; upgrade or pin one of {a}, {b}",
                    pair=(a, b), needs=dep)
        raise DependencyConflictError(
            f"dependency conflict on {dep}: " + "; ".join(f"{w} needs {dep}@{r}" for w, r, _ in cons),
            hint=f"available versions of {dep}: {avail}", needs=dep)


def check_python_requires(spec: ToolSpec) -> None:
    """Raise when an installed Python package does not satisfy the tool's requirements."""
    for text in spec.python_requires:
        req = Requirement(text)
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            raise DependencyConflictError(f"tool {spec.key} needs the Python package {text!r}, which is not "
                                          "installed", hint=f"pip install '{text}'", tool=spec.key) from None
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            raise DependencyConflictError(f"tool {spec.key} needs {text!r}, but {req.name} {have} is installed",
                                          hint=f"pip install '{text}'", tool=spec.key)
