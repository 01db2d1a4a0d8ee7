"""``emergent mcp serve``: the tool registry's enabled tools, served to any MCP client.

Every ``tools/call`` goes through the same gate as every other caller:
``tools.call(name, args, principal=<the session's principal>, wait=False)``.

- a policy *deny* (or any error) comes back as a tool result with ``isError`` and the message and
  hint (``structuredContent``: ``{"status": "denied"|"error", "error", "message", "hint"}``);
- an *ask* comes back as a normal result whose structured content is ``{"status":
  "pending_approval", "approval": ID, "tool", "hint"}``; the client polls ``approvals.status`` and,
  once a human approved, runs it with ``approvals.resume`` (only the requester's sessions see or
  resume an approval).

Who a session acts as: over stdio, the principal the process was started with (the OS user, or
an existing agent or service it lowered itself to); over streamable HTTP, the principal of the
bearer token on each request (:class:`~emergent.mcp.tokens.TokenStore`; no token, a wrong one, a
revoked one, or one whose principal is suspended: 401). Nothing a client sends — arguments,
headers, ``_meta`` — names a principal. Every session start is audited (``mcp.session_started``),
every call by the runner.

The service receives the ToolService, the audit trail and the principal directory (never the
Workstation); the CLI composes it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import warnings
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp import types
from mcp.server.lowlevel import NotificationOptions, Server

from emergent.errors import (
    ApprovalPending,
    EmergentError,
    NotFoundError,
    PermissionDenied,
    PrincipalError,
    ToolExecutionError,
    ValidationError,
)
from emergent.principals import Principal
from emergent.tools.spec import SideEffect, ToolSpec

STATUS = "approvals.status"
RESUME = "approvals.resume"
CONFIDENCE = "emergent/confidence"
_SURROGATE = re.compile("[\ud800-\udfff]")
_APPROVAL_ARGS = {"type": "object", "properties": {"approval": {"type": "string", "description": "the approval id"}},
                  "required": ["approval"], "additionalProperties": False}
INSTRUCTIONS = ("Tools of an Emergent workspace. Every call passes its policy gate as this session's principal. "
                "A call that needs a human's approval returns {status: 'pending_approval', approval: ID}: poll "
                f"{STATUS} with that id and, once approved, run it with {RESUME}.")


def tool_annotations(spec: ToolSpec) -> types.ToolAnnotations:
    """MCP hints from the side-effect level (read → readOnly; destructive/execute → destructive;
    external, network or execute → openWorld)."""
    se = spec.side_effect
    return types.ToolAnnotations(readOnlyHint=se == SideEffect.READ,
                                 destructiveHint=se in (SideEffect.DESTRUCTIVE, SideEffect.EXECUTE),
                                 openWorldHint=spec.network or se == SideEffect.EXECUTE)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def value_result(value: Any) -> types.CallToolResult:
    """A tool's return value: text (JSON unless it is a string) plus structured content (a dict
    as it is, anything else but a string as ``{"result": value}``)."""
    plain = _jsonable(value)
    if isinstance(plain, str):
        return types.CallToolResult(content=[types.TextContent(type="text", text=plain)])
    structured = plain if isinstance(plain, dict) else {"result": plain}
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(plain, ensure_ascii=False))],
                                structuredContent=structured)


def error_result(exc: EmergentError) -> types.CallToolResult:
    denied = isinstance(exc, (PermissionDenied, PrincipalError))
    payload = {"status": "denied" if denied else "error", "error": type(exc).__name__, "message": exc.message,
               "hint": exc.hint}
    text = exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structuredContent=payload,
                                isError=True)


def pending_result(approval: str, tool: str) -> types.CallToolResult:
    payload = {"status": "pending_approval", "approval": approval, "tool": tool,
               "hint": f"a human must approve it (`emergent approvals approve {approval}`); poll {STATUS} with "
                       f"{{\"approval\": \"{approval}\"}}, then run it with {RESUME}"}
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(payload))],
                                structuredContent=payload)


class TokenVerifier:
    """The SDK's ``TokenVerifier``: a bearer token → ``AccessToken(client_id=<principal key>,
    subject=<token id>)``; None for an unknown or revoked token or a suspended principal."""

    def __init__(self, tokens: Any, suspended: Any = None) -> None:
        self.tokens = tokens
        self.suspended = suspended

    def check(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        found = self.tokens.verify(token)
        if found is None:
            return None
        info, principal = found
        if self.suspended is not None and principal.key in self.suspended():
            return None
        return AccessToken(token=token, client_id=principal.key, scopes=["mcp"], subject=info.id)

    async def verify_token(self, token: str) -> Any:
        return await anyio.to_thread.run_sync(self.check, token)


class MCPServer:
    """An MCP server over a ToolService: list the enabled tools, call them through the gate."""

    def __init__(self, tools: Any, *, audit: Any, principals: Any, approvals: Any = None, name: str = "emergent",
                 version: str | None = None) -> None:
        from emergent import __version__

        self.tools = tools
        self.audit = audit
        self.principals = principals
        self.approvals = approvals if approvals is not None else getattr(getattr(tools, "autonomy", None),
                                                                         "approvals", None)
        self._stdio_principal: Principal | None = None
        self._by_key: dict[str, Principal] = {}
        self.server: Server[Any, Any] = Server(name, version=version or __version__, instructions=INSTRUCTIONS)
        self.server.list_tools()(self._list_handler)
        self.server.call_tool(validate_input=False)(self._call_handler)

    # ------------------------------------------------------------------ tools/list
    def tool_list(self) -> list[types.Tool]:
        out = []
        if self.approvals is not None:
            out += [types.Tool(name=STATUS, description="The status of an approval this session's call is waiting "
                                                        "for (pending, approved, rejected, expired, consumed).",
                               inputSchema=_APPROVAL_ARGS, annotations=types.ToolAnnotations(readOnlyHint=True)),
                    types.Tool(name=RESUME, description="Run a call that waited for approval, once a human approved "
                                                        "it (as this session's principal, exactly as requested).",
                               inputSchema=_APPROVAL_ARGS,
                               annotations=types.ToolAnnotations(readOnlyHint=False, destructiveHint=True,
                                                                 openWorldHint=True))]
        registry = self.tools.registry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for name in registry.names():
                if name in (STATUS, RESUME):
                    continue
                try:
                    spec = self.tools.resolve(name)
                except EmergentError:
                    continue  # disabled, or its code is not loaded here
                out.append(types.Tool(name=spec.name, description=spec.description or spec.name,
                                      inputSchema=spec.args_schema, annotations=tool_annotations(spec),
                                      _meta={"emergent/version": spec.version,
                                             "emergent/side_effect": str(spec.side_effect)}))
        return out

    async def _list_handler(self) -> list[types.Tool]:
        return await anyio.to_thread.run_sync(self.tool_list)

    # ------------------------------------------------------------------ who acts
    def principal(self) -> Principal:
        """This request's principal: the HTTP request's token, else the stdio session's."""
        try:
            request = self.server.request_context.request
        except LookupError:  # not inside a request (a direct call in this process)
            request = None
        if request is not None:
            from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

            user = request.scope.get("user")
            if not isinstance(user, AuthenticatedUser):
                raise PrincipalError("this request carries no valid token", hint="send Authorization: Bearer TOKEN")
            key = user.access_token.client_id
            p = self._by_key.get(key)
            if p is None:
                p = self._by_key[key] = self.principals.get(key)
            return p
        if self._stdio_principal is None:
            raise PrincipalError("this MCP session has no principal", hint="start it with run_stdio(principal)")
        return self._stdio_principal

    def _confidence(self) -> float | None:
        """``_meta["emergent/confidence"]`` of the request (0..1): what an agent states about its call,
        exactly as ``tools.call(confidence=...)`` in process (it counts for agents only)."""
        try:
            meta = self.server.request_context.meta
        except LookupError:
            return None
        value = (getattr(meta, "model_extra", None) or {}).get(CONFIDENCE) if meta is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
            return float(value)
        return None

    # ------------------------------------------------------------------ tools/call
    async def _call_handler(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            principal = self.principal()
            if _SURROGATE.search(json.dumps([name, arguments], ensure_ascii=False, default=str)):
                # JSON allows "\ud800"; UTF-8 does not: such a call could not be audited (and, queued in the
                # audit trail, would make every later write fail), so it is refused before the gate
                raise ValidationError("the call's name or arguments contain a lone surrogate (a \\ud800-\\udfff "
                                      "escape)", hint="send the text as plain Unicode")
            if name == STATUS:
                return await anyio.to_thread.run_sync(self._status, principal, arguments)
            if name == RESUME:
                return await anyio.to_thread.run_sync(self._resume, principal, arguments)
            value = await anyio.to_thread.run_sync(functools.partial(
                self.tools.call, name, arguments, principal=principal, wait=False, confidence=self._confidence()))
        except ApprovalPending as exc:
            return pending_result(str(exc.fields.get("approval")), name)
        except EmergentError as exc:
            return error_result(exc)
        except Exception as exc:  # a bug must reach the client as an error, not a dropped session
            return error_result(ToolExecutionError(f"{name} failed: {type(exc).__name__}: {exc}"))
        return value_result(value)

    def _own_approval(self, principal: Principal, arguments: dict[str, Any]) -> Any:
        aid = arguments.get("approval") if isinstance(arguments, dict) else None
        if not isinstance(aid, str) or not aid:
            raise ValidationError("approval: a string id is required", hint='pass {"approval": "<id>"}')
        if self.approvals is None:
            raise NotFoundError("this server has no approval queue")
        try:
            a = self.approvals.get(aid)
        except NotFoundError:
            a = None
        if a is None or a.actor != principal.key:  # another principal's approval reads as missing
            raise NotFoundError(f"no approval {aid!r} requested by {principal.key}",
                                hint="use the id a pending_approval result of this session returned")
        return a

    def _status(self, principal: Principal, arguments: dict[str, Any]) -> types.CallToolResult:
        a = self._own_approval(principal, arguments)
        hints = {"pending": "a human has not decided yet; poll again later",
                 "approved": f"approved: run it with {RESUME}",
                 "consumed": "it already ran", "rejected": "a human rejected it: it will not run",
                 "expired": "nobody decided in time: it will not run"}
        payload = {"approval": a.id, "status": a.status, "tool": a.tool, "args": a.args, "reason": a.reason,
                   "decided_by": a.decided_by, "decision_reason": a.decision_reason, "expires_at": a.expires_at,
                   "hint": hints.get(a.status, "")}
        return value_result(payload)

    def _resume(self, principal: Principal, arguments: dict[str, Any]) -> types.CallToolResult:
        a = self._own_approval(principal, arguments)
        try:
            return value_result(self.tools.resume(a.id))
        except ApprovalPending:
            return pending_result(a.id, a.tool)

    # ------------------------------------------------------------------ transports
    def _session_started(self, principal: Principal, data: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append("mcp.session_started", principal, data, durable=True)

    def run_stdio(self, principal: Principal) -> None:
        """Serve one client on this process's stdin/stdout, as ``principal`` (until stdin closes)."""
        self._stdio_principal = self.principals.verify(principal)
        self._session_started(self._stdio_principal, {"transport": "stdio", "pid": os.getpid()})
        anyio.run(self.serve_stdio)

    async def serve_stdio(self) -> None:
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options(NotificationOptions()))

    def http_app(self, tokens: Any, *, host: str = "127.0.0.1", path: str = "/mcp") -> Any:
        """A Starlette app serving streamable HTTP at ``path``, bearer tokens required."""
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
        from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.authentication import AuthenticationMiddleware
        from starlette.routing import Route

        loopback = host in ("127.0.0.1", "localhost", "::1")
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=loopback,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        manager = StreamableHTTPSessionManager(app=self.server, security_settings=security)
        suspended = getattr(getattr(self.tools, "autonomy", None), "suspended", None)
        verifier = TokenVerifier(tokens, suspended)

        owners: dict[str, str] = {}  # session id -> the token that opened it (the SDK checks this too)

        async def endpoint(scope: Any, receive: Any, send: Any) -> None:
            token = scope["user"].access_token.subject
            sid = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"mcp-session-id"),
                       None)
            if sid is not None:
                if owners.get(sid, token) != token:  # another token's session: as if it did not exist
                    from starlette.responses import JSONResponse

                    await JSONResponse({"jsonrpc": "2.0", "id": "server-error",
                                        "error": {"code": -32600, "message": "Session not found"}},
                                       status_code=404)(scope, receive, send)
                    return
                await manager.handle_request(scope, receive, send)
                if scope.get("method") == "DELETE":  # the client ended the session
                    owners.pop(sid, None)
                return

            async def audited_send(message: Any) -> None:
                if message["type"] == "http.response.start" and message.get("status") == 200:
                    new_sid = next((v.decode() for k, v in message.get("headers", ())
                                    if k.lower() == b"mcp-session-id"), None)
                    if new_sid is not None:
                        owners[new_sid] = token
                        p = self.principals.get(scope["user"].access_token.client_id)
                        await anyio.to_thread.run_sync(self._session_started, p, {
                            "transport": "http", "session": new_sid, "token": token})
                await send(message)

            await manager.handle_request(scope, receive, audited_send)

        @contextlib.asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            async with manager.run():
                yield

        return Starlette(routes=[Route(path, endpoint=RequireAuthMiddleware(endpoint, required_scopes=[]))],
                         middleware=[Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
                                     Middleware(AuthContextMiddleware)],
                         lifespan=lifespan)

    def run_http(self, tokens: Any, *, host: str = "127.0.0.1", port: int = 8765, path: str = "/mcp") -> None:
        """Serve streamable HTTP at ``http://host:port/path`` until interrupted."""
        import uvicorn

        uvicorn.run(self.http_app(tokens, host=host, path=path), host=host, port=port, log_level="warning")
