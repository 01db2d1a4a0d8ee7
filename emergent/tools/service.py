"""``Workstation.tools``: the registry, the runner, telemetry and the sandbox of one workspace."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from emergent.clock import Clock, SystemClock
from emergent.tools.registry import ToolRegistry, VersionInfo
from emergent.tools.runner import Call, Layer, ToolRunner
from emergent.tools.sandbox import Limits, Sandbox
from emergent.tools.spec import ToolContext, ToolSpec
from emergent.tools.telemetry import Telemetry, ToolStats


class ToolService:
    """Call tools through the gate; list, install, enable, disable and measure them."""

    def __init__(self, sql: Any, *, autonomy: Any = None, settings: Any = None, workspace: Path | None = None,
                 services: Any = None, clock: Clock | None = None, sandbox: Sandbox | None = None,
                 entry_points: bool = True, extra_layers: Sequence[Layer] = ()) -> None:
        self.clock = clock or SystemClock()
        self.settings = settings
        self.workspace = workspace
        self.services = services
        self.autonomy = autonomy
        cfg = getattr(settings, "tools", None)
        self.sandbox = sandbox or Sandbox(Limits(timeout=getattr(cfg, "sandbox_timeout_s", 10.0),
                                                 memory_mb=getattr(cfg, "sandbox_memory_mb", 512)),
                                          root=(workspace / "sandbox") if workspace else None)
        self.registry = ToolRegistry(sql, clock=self.clock, entry_points=entry_points)
        self.telemetry = Telemetry(sql)
        self.runner = ToolRunner(self.registry, autonomy=autonomy, telemetry=self.telemetry, clock=self.clock,
                                 context=self._context, extra_layers=extra_layers)

    def _context(self, call: Call) -> ToolContext:
        if self.autonomy is not None:
            self.sandbox.require = self.autonomy.required_isolation
        return ToolContext(actor=call.actor, workspace=self.workspace, settings=self.settings,
                           services=self.services, call_id=call.call_id, sandbox=self.sandbox)

    # ------------------------------------------------------------------ calling
    def call(self, ref: str | ToolSpec, args: Any = None, **kw: Any) -> Any:
        """Run a tool through validate → policy → approval → breaker → retry → execute.

        Keywords: ``actor`` (``agent:scout``, ``user:ana``), ``roles``, ``confidence`` (0..1),
        ``cost``, ``wait`` (True: block until an approval is decided; False: raise ApprovalPending
        at once; seconds: wait that long).
        """
        return self.runner.call(ref, args, **kw)

    def submit(self, ref: str | ToolSpec, args: Any = None, **kw: Any) -> Future[Any]:
        return self.runner.submit(ref, args, **kw)

    def resume(self, approval_id: str) -> Any:
        return self.runner.resume(approval_id)

    # ------------------------------------------------------------------ registry
    def add(self, *specs: ToolSpec) -> builtins.list[ToolSpec]:
        return self.registry.add(*specs)

    def install(self, target: str) -> builtins.list[ToolSpec]:
        specs = self.registry.install(target)
        self._audited("tool.installed", target, [s.key for s in specs])
        return specs

    def resolve(self, ref: str) -> ToolSpec:
        return self.registry.resolve(ref)

    def list(self, text: str = "") -> builtins.list[VersionInfo]:
        return self.registry.search(text)

    def versions(self, name: str) -> builtins.list[VersionInfo]:
        return self.registry.versions(name)

    def enable(self, ref: str) -> builtins.list[str]:
        return self._audited("tool.enabled", ref, self.registry.enable(ref))

    def disable(self, ref: str) -> builtins.list[str]:
        return self._audited("tool.disabled", ref, self.registry.disable(ref))

    def deprecate(self, ref: str, *, successor: str | None = None, note: str | None = None) -> builtins.list[str]:
        return self._audited("tool.deprecated", ref, self.registry.deprecate(ref, successor=successor, note=note))

    def _audited(self, kind: str, ref: str, keys: builtins.list[str], by: str = "user:local") -> builtins.list[str]:
        audit = getattr(self.autonomy, "audit", None)
        if audit is not None:
            audit.append(kind, by, {"ref": ref, "versions": keys}, durable=True)
        return keys

    def stats(self, tool: str | None = None) -> builtins.list[ToolStats]:
        return self.telemetry.stats(tool)

    def close(self) -> None:
        self.runner.close()
        self.telemetry.close()
