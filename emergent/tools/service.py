"""``Workstation.tools``: the registry, the runner, telemetry and the sandbox of one workspace."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emergent.clock import Clock, SystemClock
from emergent.errors import PrincipalError, UsageError
from emergent.monitoring.tracing import traced
from emergent.principals import HOW_TO_GET_ONE, Principal
from emergent.tools.registry import ToolRegistry, VersionInfo
from emergent.tools.runner import Call, Layer, ToolRunner
from emergent.tools.sandbox import Limits, Sandbox
from emergent.tools.spec import ToolContext, ToolSpec
from emergent.tools.telemetry import Telemetry, ToolStats

_CALL_KEYWORDS = frozenset({"principal", "confidence", "cost", "wait"})


@dataclass(frozen=True)
class ToolServices:
    """What the built-in tools may use of the workstation: a narrow view, never the Workstation.

    ``memory`` is a callable returning the memory service (built on first use)."""

    memory_provider: Callable[[], Any] | None = None
    browser_provider: Callable[[], Any] | None = None

    @property
    def memory(self) -> Any:
        if self.memory_provider is None:
            raise UsageError("no memory service is attached to these tools",
                             hint="open the tools through a Workstation (ws.tools)")
        return self.memory_provider()

    @property
    def browser(self) -> Any:
        """The browser service (emergent.browser.BrowserService), built on first use."""
        if self.browser_provider is None:
            raise UsageError("no browser service is attached to these tools",
                             hint="open the tools through a Workstation (ws.tools)")
        return self.browser_provider()


class ToolService:
    """Call tools through the gate; list, install, enable, disable and measure them."""

    def __init__(self, sql: Any, *, autonomy: Any = None, settings: Any = None, workspace: Path | None = None,
                 services: ToolServices | None = None, clock: Clock | None = None, sandbox: Sandbox | None = None,
                 entry_points: bool = True, extra_layers: Sequence[Layer] = ()) -> None:
        self.clock = clock or SystemClock()
        self.settings = settings
        self.workspace = workspace
        self.services = services or ToolServices()
        self.autonomy = autonomy
        cfg = getattr(settings, "tools", None)
        self.sandbox = sandbox or Sandbox(Limits(timeout=getattr(cfg, "sandbox_timeout_s", 10.0),
                                                 memory_mb=getattr(cfg, "sandbox_memory_mb", 512)),
                                          root=(workspace / "sandbox") if workspace else None)
        self.registry = ToolRegistry(sql, clock=self.clock, entry_points=entry_points)
        self.telemetry = Telemetry(sql)
        self.runner = ToolRunner(self.registry, autonomy=autonomy, telemetry=self.telemetry, clock=self.clock,
                                 context=self._context, extra_layers=extra_layers)
        self._mcp: Any = None  # emergent.mcp.client.MCPClients, built when an MCP tool is first used
        self.registry.loaders["mcp+"] = lambda source, record: self.mcp_clients().spec_from_record(source, record)

    def mcp_clients(self) -> Any:
        """The live connections to installed MCP servers (``mcp+stdio:`` / ``mcp+http(s):`` tools)."""
        if self._mcp is None:
            from emergent.mcp.client import MCPClients

            self._mcp = MCPClients(self.registry, audit=getattr(self.autonomy, "audit", None),
                                   principals=getattr(self.autonomy, "principals", None),
                                   log_dir=(self.workspace / "logs") if self.workspace else None)
        return self._mcp

    def _context(self, call: Call) -> ToolContext:
        box = self.sandbox
        if self.autonomy is not None:
            box = box.requiring(self.autonomy.required_isolation_for(call.principal))
        return ToolContext(principal=call.principal, workspace=self.workspace, settings=self.settings,
                           services=self.services, call_id=call.call_id, sandbox=box)

    # ------------------------------------------------------------------ calling
    @traced("tools.call")
    def call(self, ref: str | ToolSpec, args: Any = None, **kw: Any) -> Any:
        """Run a tool through validate → policy → approval → intent → breaker → retry → execute.

        Keywords: ``principal`` (required: who acts), ``confidence`` (0..1) and ``cost`` (both
        count for agents only), ``wait`` (True: block until an approval is decided; False: raise
        ApprovalPending at once; seconds: wait that long). An approved request runs with
        :meth:`resume`.
        """
        self._check_keywords(kw)
        return self.runner.call(ref, args, **kw)

    def submit(self, ref: str | ToolSpec, args: Any = None, **kw: Any) -> Future[Any]:
        self._check_keywords(kw)
        return self.runner.submit(ref, args, **kw)

    @staticmethod
    def _check_keywords(kw: dict[str, Any]) -> None:
        unknown = set(kw) - _CALL_KEYWORDS
        if unknown:
            raise UsageError(f"tools.call does not take {', '.join(sorted(unknown))}",
                             hint="who acts is principal=...; roles come from the workspace's configuration; an "
                                  "approval is granted by a human and run with tools.resume(approval_id)")
        if "principal" not in kw:
            raise PrincipalError("a tool call needs a principal (who acts); there is no default", hint=HOW_TO_GET_ONE)

    @traced("tools.resume")
    def resume(self, approval_id: str) -> Any:
        return self.runner.resume(approval_id)

    # ------------------------------------------------------------------ registry
    def add(self, *specs: ToolSpec) -> builtins.list[ToolSpec]:
        """Register tools defined in this process's code (the process's own trust; not audited)."""
        return self.registry.add(*specs)

    def install(self, target: str, *, by: Principal) -> builtins.list[ToolSpec]:
        """Import and register the tools of a module or file: a human decision (it runs the module)."""
        who = self._human(by, "install tools")
        if self.autonomy is not None:
            self.autonomy.audit.append("tool.installing", who, {"target": target}, durable=True)
        if target.startswith("mcp+"):  # a tool server: mcp+stdio:CMD ARGS, mcp+http(s)://URL
            specs = self.mcp_clients().install(target, by=who)
        else:
            specs = self.registry.install(target)
        self._audited("tool.installed", target, [s.key for s in specs], who)
        return specs

    def resolve(self, ref: str) -> ToolSpec:
        return self.registry.resolve(ref)

    def list(self, text: str = "") -> builtins.list[VersionInfo]:
        return self.registry.search(text)

    def versions(self, name: str) -> builtins.list[VersionInfo]:
        return self.registry.versions(name)

    # enable, disable, deprecate: the entry is written before the state changes (a failed write
    # changes nothing)
    def enable(self, ref: str, *, by: Principal) -> builtins.list[str]:
        who = self._human(by, "enable tools")
        return self.registry.enable(ref, before=lambda keys: self._audited("tool.enabled", ref, keys, who))

    def disable(self, ref: str, *, by: Principal) -> builtins.list[str]:
        who = self._human(by, "disable tools")
        return self.registry.disable(ref, before=lambda keys: self._audited("tool.disabled", ref, keys, who))

    def deprecate(self, ref: str, *, by: Principal, successor: str | None = None,
                  note: str | None = None) -> builtins.list[str]:
        who = self._human(by, "deprecate tools")
        return self.registry.deprecate(ref, successor=successor, note=note,
                                       before=lambda keys: self._audited("tool.deprecated", ref, keys, who))

    def _human(self, by: Any, what: str) -> Principal:
        if self.autonomy is None:
            if not isinstance(by, Principal):
                raise PrincipalError(f"{by!r} is not a principal", hint=HOW_TO_GET_ONE)
            return by
        who: Principal = self.autonomy.principals.verify(by)
        if not who.is_human:
            raise PrincipalError(f"{who.key} may not {what}", hint="a human manages the tool registry")
        return who

    def _audited(self, kind: str, ref: str, keys: builtins.list[str], by: Principal) -> builtins.list[str]:
        audit = getattr(self.autonomy, "audit", None)
        if audit is not None:
            audit.append(kind, by, {"ref": ref, "versions": keys}, durable=True)
        return keys

    def stats(self, tool: str | None = None) -> builtins.list[ToolStats]:
        return self.telemetry.stats(tool)

    def close(self) -> None:
        if self._mcp is not None:
            self._mcp.close()
        self.runner.close()
        self.telemetry.close()
