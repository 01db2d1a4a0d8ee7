"""The tools of other MCP servers, installed as versioned emergent tools behind the gate.

``ws.tools.install("mcp+stdio:python server.py", by=human)`` (or ``mcp+http://host/mcp``,
``mcp+https://...``) connects with the official SDK client, lists the server's tools and registers
each as ``mcp.<server>.<tool>`` (see :mod:`emergent.mcp.spec` for names, versions and side
effects). A call runs through the gate like any other tool; the tool's function then sends
``tools/call`` on a live session.

Sessions are kept open (one per installed server, in one background event loop thread) and
re-opened on the next call when the server went away. A ``notifications/tools/list_changed``
received on a live session re-lists the server's tools and registers what is new. Installed tools
survive a restart: the registry rebuilds them from their recorded description
(:meth:`MCPClients.spec_from_record`) and the session is opened on first call.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from emergent.errors import (
    EmergentError,
    NotFoundError,
    TimeoutExceeded,
    ToolExecutionError,
    UsageError,
)
from emergent.mcp.spec import (
    TAG_BY,
    TAG_TOOL,
    SchemaToolSpec,
    base_version,
    build,
    pick_version,
    schema_digest,
    side_effect,
    tag,
    tool_names,
)
from emergent.tools.spec import SideEffect, ToolSpec

SCHEMES = ("mcp+stdio:", "mcp+http://", "mcp+https://")
#: new tool versions one session may register through list_changed (a server that keeps changing its
#: schemas is not followed further: a human installs again)
MAX_LISTED_CHANGES = 20
#: most pages and tools one tools/list may take (a server whose list never ends is refused)
MAX_LIST_PAGES = 100
MAX_LISTED_TOOLS = 5000
#: pause between two re-listings of one session (notifications that arrive meanwhile make one more)
RELIST_GAP_S = 0.5


@dataclass(frozen=True, slots=True)
class Target:
    """Where an MCP server is: a command to spawn (stdio) or a URL (streamable HTTP)."""

    kind: str  # stdio | http
    argv: tuple[str, ...] = ()
    url: str = ""

    @property
    def source(self) -> str:
        """The canonical spelling, kept as the tools' ``source``."""
        return "mcp+stdio:" + shlex.join(self.argv) if self.kind == "stdio" else "mcp+" + self.url

    @property
    def remote(self) -> bool:
        return self.kind == "http"


def parse_target(target: str) -> Target:
    text = (target or "").strip()
    if text.startswith("mcp+stdio:"):
        try:
            argv = tuple(shlex.split(text[len("mcp+stdio:"):]))
        except ValueError as exc:
            raise UsageError(f"cannot split the command of {target!r}: {exc}",
                             hint="quote it like a shell would: mcp+stdio:python 'my server.py'") from None
        if not argv:
            raise UsageError("mcp+stdio: needs a command", hint="e.g. mcp+stdio:python server.py")
        return Target("stdio", argv=argv)
    if text.startswith(("mcp+http://", "mcp+https://")):
        return Target("http", url=text[len("mcp+"):])
    raise UsageError(f"{target!r} is not an MCP server target",
                     hint="use mcp+stdio:COMMAND ARGS..., mcp+http://HOST/PATH or mcp+https://HOST/PATH")


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _text(blocks: Any) -> str:
    return "\n".join(getattr(b, "text", "") or f"[{getattr(b, 'type', 'content')}]" for b in blocks or [])


def result_value(result: Any, *, wrapped: bool, what: str) -> Any:
    """A ``CallToolResult`` as a Python value: its structured content (a FastMCP-wrapped
    ``{"result": x}`` unwrapped), else its text, else its content blocks as JSON objects."""
    if result.isError:
        raise ToolExecutionError(f"{what} failed: {_text(result.content) or 'no message'}",
                                 hint="the MCP server reported the error; check the arguments, or the server's log",
                                 tool=what)
    sc = result.structuredContent
    if sc is not None:
        if wrapped and isinstance(sc, dict) and set(sc) == {"result"}:
            return sc["result"]
        return sc
    blocks = list(result.content or [])
    if all(getattr(b, "type", None) == "text" for b in blocks):
        texts = [b.text for b in blocks]
        return texts[0] if len(texts) == 1 else "\n".join(texts)
    return [b.model_dump(mode="json", exclude_none=True, by_alias=True) for b in blocks]


@dataclass(eq=False)
class _Conn:
    target: Target
    installed_by: str | None = None
    session: Any = None
    init: Any = None
    stop: Any = None  # anyio.Event, created in the loop
    alive: bool = False
    future: Any = None
    log: Any = None
    relists: int = 0
    errors: list[str] = field(default_factory=list)
    relisting: bool = False  # a re-listing is under way (list_changed notifications coalesce into it)
    relist_again: bool = False
    changes: int = 0  # versions registered through list_changed on this session

    @property
    def server(self) -> str:
        return getattr(getattr(self.init, "serverInfo", None), "name", "") or "server"


class MCPClients:
    """Sessions to installed MCP servers (one each, kept open) and the specs of their tools."""

    def __init__(self, registry: Any, *, audit: Any = None, principals: Any = None, log_dir: Path | None = None,
                 call_timeout: float = 120.0, connect_timeout: float = 30.0) -> None:
        self.registry = registry
        self.audit = audit
        self.principals = principals
        self.log_dir = log_dir
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self._conns: dict[str, _Conn] = {}
        self._installed_by: dict[str, str] = {}
        self._lock = threading.RLock()
        self._portal: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._namespaces: dict[str, set[str]] = {}  # source -> the mcp.<server> namespaces it was installed under
        self.changed = threading.Condition()  # notified after a list_changed refresh registered tools
        self.on_change: list[Callable[[str, list[ToolSpec]], None]] = []

    # ------------------------------------------------------------------ the event loop
    def portal(self) -> Any:
        """A BlockingPortal into the background event loop (a daemon thread: never holds up exit)."""
        with self._lock:
            if self._closed:
                raise UsageError("these MCP connections are closed", hint="open the workspace again")
            if self._portal is None:
                from anyio.from_thread import BlockingPortal

                try:
                    import mcp  # noqa: F401
                except ModuleNotFoundError:
                    from emergent.errors import MissingExtraError

                    raise MissingExtraError("MCP tools", "mcp", "mcp") from None

                ready = threading.Event()
                box: dict[str, Any] = {}

                async def main() -> None:
                    async with BlockingPortal() as portal:
                        box["portal"] = portal
                        ready.set()
                        await portal.sleep_until_stopped()

                def run() -> None:
                    try:
                        anyio.run(main)
                    except BaseException as exc:  # pragma: no cover - the loop itself failed
                        box["error"] = exc
                        ready.set()

                self._thread = threading.Thread(target=run, name="emergent-mcp-client", daemon=True)
                self._thread.start()
                ready.wait(30)
                if "portal" not in box:
                    raise ToolExecutionError(f"the MCP client loop did not start: {box.get('error')!r}")
                self._portal = box["portal"]
            return self._portal

    # ------------------------------------------------------------------ sessions
    @contextlib.asynccontextmanager
    async def _streams(self, conn: _Conn) -> AsyncIterator[tuple[Any, Any]]:
        t = conn.target
        if t.kind == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client

            # "replace": bytes that are not UTF-8 make one unreadable line (dropped by the SDK), where
            # "strict" (the SDK's default) ended the session and left the call in flight until its timeout
            params = StdioServerParameters(command=t.argv[0], args=list(t.argv[1:]), encoding_error_handler="replace")
            errlog = conn.log
            if errlog is None:
                import sys

                errlog = sys.stderr
            async with stdio_client(params, errlog=errlog) as (read, write):
                yield read, write
        else:
            from mcp.client import streamable_http

            connect = getattr(streamable_http, "streamable_http_client", None) or \
                streamable_http.streamablehttp_client  # the name before mcp 1.2x
            async with connect(t.url) as (read, write, _):
                yield read, write

    async def _serve(self, conn: _Conn, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """One session's whole life, in one task (the SDK's transports are task-bound)."""
        from mcp import ClientSession, types

        from emergent import __version__

        conn.stop = anyio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._streams(conn))
                tg = await stack.enter_async_context(anyio.create_task_group())

                async def on_message(msg: Any) -> None:
                    if isinstance(msg, types.ServerNotification) and \
                            isinstance(msg.root, types.ToolListChangedNotification):
                        if conn.relisting:  # a flood of notifications is one more re-listing, not one each
                            conn.relist_again = True
                        else:
                            conn.relisting = True
                            tg.start_soon(self._relist_loop, conn)

                session = await stack.enter_async_context(ClientSession(
                    read, write, message_handler=on_message,  # type: ignore[arg-type]
                    client_info=types.Implementation(name="emergent", version=__version__)))
                with anyio.fail_after(self.connect_timeout):
                    conn.init = await session.initialize()
                conn.session = session
                conn.alive = True
                task_status.started()
                await conn.stop.wait()
                tg.cancel_scope.cancel()
        finally:
            conn.alive = False
            conn.session = None
            if conn.log is not None:
                conn.log.close()

    def _connect(self, source: str) -> _Conn:
        with self._lock:
            conn = self._conns.get(source)
            if conn is not None and conn.alive:
                return conn
            conn = _Conn(parse_target(source), installed_by=self._installed_by.get(source))
            if conn.target.kind == "stdio" and self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                name = "".join(c if c.isalnum() else "_" for c in Path(conn.target.argv[-1]).name)[:40]
                conn.log = open(self.log_dir / f"mcp-{name}.log", "a", encoding="utf-8")  # noqa: SIM115
            try:
                conn.future, _ = self.portal().start_task(self._serve, conn)
            except BaseException as exc:
                if conn.log is not None:
                    conn.log.close()
                raise self._connect_error(conn.target, _unwrap(exc)) from None
            self._conns[source] = conn
            return conn

    @staticmethod
    def _connect_error(t: Target, exc: BaseException) -> EmergentError:
        where = shlex.join(t.argv) if t.kind == "stdio" else t.url
        if isinstance(exc, FileNotFoundError):
            return NotFoundError(f"cannot start the MCP server {where!r}: {exc}",
                                 hint="give the full path of the command, or install it")
        if isinstance(exc, TimeoutError):
            return TimeoutExceeded(f"the MCP server {where!r} did not answer initialize in time",
                                   hint="check that the command is an MCP server speaking stdio (or the URL an MCP "
                                        "endpoint)")
        return ToolExecutionError(f"cannot connect to the MCP server {where!r}: {type(exc).__name__}: {exc}",
                                  hint="check the command or URL; stdio servers log to <workspace>/logs/mcp-*.log")

    async def _list(self, session: Any) -> list[Any]:
        from mcp import types

        tools: list[Any] = []
        cursor = None
        seen: set[str] = set()
        for _ in range(MAX_LIST_PAGES):
            res = await (session.list_tools() if cursor is None else
                         session.list_tools(params=types.PaginatedRequestParams(cursor=cursor)))
            tools += res.tools
            cursor = res.nextCursor
            if not cursor:
                return tools
            if cursor in seen or len(tools) > MAX_LISTED_TOOLS:
                break
            seen.add(cursor)
        raise ToolExecutionError(f"the MCP server's tool list does not end (more than {MAX_LIST_PAGES} pages or "
                                 f"{MAX_LISTED_TOOLS} tools, or a page cursor repeats)",
                                 hint="nothing was registered; check the server (its log: <workspace>/logs/mcp-*.log)")

    # ------------------------------------------------------------------ specs
    def _caller(self, source: str, tool: str, output_schema: dict[str, Any] | None) -> Callable[..., Any]:
        wrapped = bool(output_schema and output_schema.get("x-fastmcp-wrap-result"))

        def run(**kwargs: Any) -> Any:
            return self.call(source, tool, kwargs, wrapped=wrapped)

        run.__name__ = run.__qualname__ = f"mcp_{tool}"
        return run

    def specs_for(self, conn: _Conn, tools: list[Any]) -> list[SchemaToolSpec]:
        """A spec for each tool the server lists (a version per distinct schema)."""
        t = conn.target
        info = conn.init.serverInfo
        base = base_version(info.version)
        names = tool_names(info.name or "server", [x.name for x in tools])
        out = []
        for x in tools:
            name = names[x.name]
            recorded = self.registry.recorded(name)
            level = side_effect(x.annotations, remote=t.remote)
            # A server's annotations are its claim. A tool never becomes *less* dangerous by a later
            # listing (a list_changed that flips a writing tool to readOnlyHint would otherwise let
            # agents call it without asking): its level is at least the highest it was ever recorded at.
            level = max([level, *(s.side_effect for s in recorded.values())], key=lambda e: SideEffect(e).rank)
            level = SideEffect(level)
            desc = x.description or x.title or x.name
            digest = schema_digest(x.inputSchema, x.outputSchema, desc, level)
            version = pick_version(base, digest, recorded)
            out.append(build(name=name, version=version, description=desc, level=level,
                             input_schema=dict(x.inputSchema), output_schema=x.outputSchema, mcp_tool=x.name,
                             digest=digest, func=self._caller(t.source, x.name, x.outputSchema), remote=t.remote,
                             source=t.source, installed_by=conn.installed_by))
        return out

    def spec_from_record(self, source: str, record: dict[str, Any]) -> SchemaToolSpec:
        """Rebuild an installed tool from the description the registry recorded (after a restart)."""
        tags = tuple(record.get("tags") or ())
        tool = tag(tags, TAG_TOOL) or str(record["name"]).rsplit(".", 1)[-1]
        by = tag(tags, TAG_BY)
        if by:
            self._installed_by.setdefault(source, by)
        self._namespaces.setdefault(source, set()).add(str(record["name"]).rsplit(".", 1)[0])
        output = record.get("result_schema") or None
        return build(name=record["name"], version=record["version"], description=record.get("description", ""),
                     level=SideEffect(record.get("side_effect", "write")),
                     input_schema=record.get("args_schema") or {"type": "object"}, output_schema=output,
                     mcp_tool=tool, digest=tag(tags, "mcp.digest=") or "",
                     func=self._caller(source, tool, output), remote="net" in (record.get("permissions") or ()),
                     source=source, installed_by=by)

    # ------------------------------------------------------------------ install, refresh, call
    def install(self, target: str, *, by: Any = None) -> list[ToolSpec]:
        """Connect, list the server's tools and register them (the caller audits: ToolService.install)."""
        t = parse_target(target)
        key = getattr(by, "key", None)
        if key:
            self._installed_by[t.source] = key
        conn = self._connect(t.source)
        if key:
            conn.installed_by = key
        tools = self.portal().call(self._list, conn.session)
        if not tools:
            raise UsageError(f"the MCP server {conn.server!r} ({t.source}) lists no tools",
                             hint="nothing was installed")
        specs = self.specs_for(conn, tools)
        self._namespaces.setdefault(t.source, set()).update(s.name.rsplit(".", 1)[0] for s in specs)
        return list(self.registry.add(*specs, source=t.source))

    async def _relist_loop(self, conn: _Conn) -> None:
        """Re-list until no notification arrived during the last re-listing (at most one in flight)."""
        try:
            while True:
                conn.relist_again = False
                await self._relist(conn)
                if not conn.relist_again:
                    return
                await anyio.sleep(RELIST_GAP_S)
        finally:
            conn.relisting = False

    def _foreign(self, conn: _Conn, spec: ToolSpec) -> bool:
        """A listed tool this session may not register on its own: outside the namespaces its server
        was installed under, or a name whose newest version is another server's (a server restarted
        under another server's name must not take over that server's tools; a human's install may)."""
        source = conn.target.source
        if spec.name.rsplit(".", 1)[0] not in self._namespaces.get(source, set()):
            return True
        recorded = self.registry.recorded(spec.name)
        if not recorded:
            return False
        from packaging.version import Version

        return bool(getattr(recorded[max(recorded, key=Version)], "source", source) != source)

    async def _relist(self, conn: _Conn) -> None:
        try:
            tools = await self._list(conn.session)
            await anyio.to_thread.run_sync(self._refresh, conn, tools)
        except Exception as exc:  # a failed refresh must not end the session
            conn.errors.append(f"{type(exc).__name__}: {exc}")

    def _refresh(self, conn: _Conn, tools: list[Any]) -> None:
        specs = self.specs_for(conn, tools)
        known = {(s.name, v) for s in specs for v in self.registry.recorded(s.name)}
        new = [s for s in specs if (s.name, s.version) not in known]
        refused = [s.key for s in new if self._foreign(conn, s)]
        new = [s for s in new if s.key not in refused]
        room = max(0, MAX_LISTED_CHANGES - conn.changes)
        refused += [s.key for s in new[room:]]
        new = new[:room]
        if refused:
            conn.errors.append(f"not registered from list_changed: {', '.join(refused)} (another server's name, or "
                               f"more than {MAX_LISTED_CHANGES} changes in one session; a human installs again)")
        if new or refused:
            who = None
            if conn.installed_by and self.principals is not None:
                with contextlib.suppress(EmergentError):
                    who = self.principals.get(conn.installed_by)
            if self.audit is not None and who is None and new:  # a registration no one can be audited for
                conn.errors.append(f"not registered from list_changed: {', '.join(s.key for s in new)} (the "
                                   f"principal who installed {conn.target.source} is not known here; a human "
                                   "installs again)")
                refused += [s.key for s in new]
                new = []
            if self.audit is not None and who is not None:
                self.audit.append("mcp.tools_changed", who, {
                    "target": conn.target.source, "server": conn.server, "versions": [s.key for s in new],
                    "refused": refused, "trigger": "notifications/tools/list_changed"}, durable=True)
        if new:
            conn.changes += len(new)
            self.registry.add(*new, source=conn.target.source)
        with self.changed:
            conn.relists += 1
            self.changed.notify_all()
        for fn in self.on_change:
            fn(conn.target.source, list(new))

    def call(self, source: str, tool: str, args: dict[str, Any], *, wrapped: bool = False) -> Any:
        """``tools/call`` on the server's session (opened if needed): the result as a Python value."""
        conn = self._connect(source)
        what = f"MCP tool {tool!r} of {conn.server!r}"
        try:
            result = self.portal().call(self._call, conn, tool, args)
        except EmergentError:
            raise
        except BaseException as exc:
            raise self._call_error(conn, what, _unwrap(exc)) from None
        return result_value(result, wrapped=wrapped, what=what)

    async def _call(self, conn: _Conn, tool: str, args: dict[str, Any]) -> Any:
        session = conn.session
        if session is None:
            raise ToolExecutionError(f"the session to {conn.server!r} closed",
                                     hint="call again: the next call starts a new session")
        return await session.call_tool(tool, args, read_timeout_seconds=timedelta(seconds=self.call_timeout))

    def _call_error(self, conn: _Conn, what: str, exc: BaseException) -> EmergentError:
        from mcp import types
        from mcp.shared.exceptions import McpError

        lost = isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)) or \
            (isinstance(exc, McpError) and exc.error.code == types.CONNECTION_CLOSED)
        if lost:
            self._drop(conn)
            return ToolExecutionError(f"the MCP server {conn.server!r} closed the connection during {what}",
                                      hint="call again: the next call starts the server (a new session)", tool=what)
        if isinstance(exc, McpError):
            if exc.error.code == 408:
                return TimeoutExceeded(f"{what} did not answer within {self.call_timeout:.0f} s",
                                       hint="the server may still be working on it; try again later")
            return ToolExecutionError(f"{what} was refused: {exc.error.message}",
                                      hint="the MCP server answered with a protocol error", tool=what)
        return ToolExecutionError(f"{what} raised {type(exc).__name__}: {exc}",
                                  hint="see the cause; the arguments were valid", tool=what)

    def _drop(self, conn: _Conn) -> None:
        """Forget a session that broke (its task ends; the next call opens a new one)."""
        conn.alive = False
        with self._lock:
            if self._conns.get(conn.target.source) is conn:
                del self._conns[conn.target.source]
            portal = self._portal
        if conn.stop is not None and portal is not None:
            with contextlib.suppress(Exception):
                portal.call(conn.stop.set)

    def wait_for_refresh(self, source: str, relists: int, timeout: float = 10.0) -> bool:
        """Block until the session to ``source`` refreshed more than ``relists`` times."""
        with self.changed:
            return self.changed.wait_for(lambda: (c := self._conns.get(source)) is not None and c.relists > relists,
                                         timeout)

    def connection(self, source: str) -> _Conn | None:
        return self._conns.get(source)

    def close(self) -> None:
        """End every session (stdio servers get EOF and exit) and stop the loop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            portal, conns = self._portal, list(self._conns.values())
            self._conns.clear()
        if portal is None:
            return
        for conn in conns:
            if conn.stop is not None:
                with contextlib.suppress(Exception):
                    portal.call(conn.stop.set)
        for conn in conns:
            if conn.future is not None:
                with contextlib.suppress(BaseException):
                    conn.future.result(timeout=5)
        with contextlib.suppress(Exception):
            portal.call(portal.stop, True)
        if self._thread is not None:
            self._thread.join(5)
