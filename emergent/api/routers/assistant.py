"""``/v1/assistant/runs``: ask an assistant, follow its run as server-sent events, resume, cancel.

``POST /v1/assistant/runs`` asks as the token's principal (a person's operator token, or an agent
token). With ``"stream": true`` (or ``Accept: text/event-stream``) the answer is an event stream: one
event per step of the run (``started``, ``recall``, ``token``, ``tool_call``, ``tool_result``,
``approval``, ``answer``, ``stopped``), then ``result`` (the run as ``GET`` shows it) or ``error``
(problem details). Without it, the run is returned when it answered, stopped, or waits for an
approval (``status: waiting_approval`` with ``pending_approval``). A run paused on an approval
continues when a person decides it (``POST /v1/approvals/{id}/approve``) or with ``.../resume``.

An assistant that does not exist yet is created by a person's operator token (its principal becomes
the agent's creator). An agent token runs only its own assistant (the one whose principal it is, so its
answers come from the agent's own memory scope) and sees only that assistant's runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import anyio
import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from emergent.api.auth import Caller, OperatorOrAgent, ViewerOrAgent
from emergent.api.errors import from_error
from emergent.api.pagination import Page, PageParams, page_params
from emergent.api.routers._common import jsonable
from emergent.errors import EmergentError, NotFoundError, PrincipalError
from emergent.principals import check_id

log = logging.getLogger("emergent.api")
router = APIRouter(prefix="/assistant", tags=["assistant"])

SSE = "text/event-stream"
#: the events of a streamed run, in the order they can come
EVENTS = ("started", "recall", "token", "tool_call", "tool_result", "approval", "answer", "stopped", "result", "error")
RunStatus = Literal["running", "waiting_approval", "completed", "stopped", "failed", "cancelled"]


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=100_000, description="a question, or a command such as /recall X")
    assistant: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
                                  description="default: 'assistant' (an agent token: its own)")
    stream: bool = Field(False, description="answer with server-sent events (as Accept: text/event-stream does)")


class StreamIn(BaseModel):
    stream: bool = False


class RunOut(BaseModel):
    run_id: str
    assistant: str
    status: str
    stop_reason: str | None
    answer: str
    mode: str
    question: str
    asked_by: str
    sources: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    pending_approval: str | None
    pending_tool: dict[str, Any] | None
    usage: dict[str, Any]
    created_at: float
    updated_at: float


_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {SSE: {"schema": {  # one server-sent event; its data is JSON (the run, or a step of it)
        "type": "object", "required": ["event", "data"],
        "properties": {"event": {"type": "string", "enum": list(EVENTS)}, "data": {"type": "string"},
                       "id": {"type": "string"}}}}},
          "description": "the run (JSON), or its events (text/event-stream) when asked to stream"}}


def run_out(r: Any) -> dict[str, Any]:
    return jsonable(r.to_dict())  # type: ignore[no-any-return]


def _name(name: str | None, who: Caller) -> str:
    return name if name is not None else (who.principal.id if who.is_agent else "assistant")


def _assistant(ws: Any, name: str, who: Caller, *, create: bool = False) -> Any:
    check_id(name, "assistant name")
    if who.is_agent and name != who.principal.id:  # another assistant would answer from its own memory scope
        raise NotFoundError(f"no assistant {name!r} for {who.principal.key}",
                            hint=f"an agent token runs only its own assistant ({who.principal.id!r}); a person's "
                                 "token asks others", assistant=name)
    try:
        ws.principals.agent(name)
    except PrincipalError:
        if not (create and who.principal.is_human and who.has("operator")):
            raise NotFoundError(f"no assistant {name!r} in this workspace",
                                hint="a person's operator token creates it by asking it first, or name it under "
                                     "[agents] in emergent.toml") from None
        ws.principals.agent(name, created_by=who.principal)
    return ws.assistant(name)


def _run(ws: Any, run_id: str, who: Caller) -> tuple[Any, Any]:
    """(the assistant, the run's row) if this caller may see the run (an agent: runs of its own assistant)."""
    row = ws.assistant_runs.get(str(run_id)[:100])
    if who.is_agent and who.principal.key != row.principal:
        raise NotFoundError(f"no assistant run {run_id!r}", hint="an agent token sees the runs it asked", run=run_id)
    return _assistant(ws, row.assistant, who), row


def _wants_stream(request: Request, flag: bool) -> bool:
    return flag or SSE in request.headers.get("accept", "")


def _event(n: int, kind: str, data: Any) -> bytes:
    body = json.dumps(jsonable(data), ensure_ascii=False, separators=(",", ":"))
    return f"id: {n}\nevent: {kind}\ndata: {body}\n\n".encode()


def stream_run(work: Callable[[Callable[[Any], None]], Any]) -> StreamingResponse:
    """Run ``work(on_event)`` on a worker thread; its events, then ``result`` or ``error``, as SSE."""

    async def events() -> AsyncIterator[bytes]:
        send, recv = anyio.create_memory_object_stream[tuple[str, Any]](math.inf)

        def emit(ev: Any) -> None:
            # the client went away: the run goes on, checkpointed
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
                anyio.from_thread.run_sync(send.send_nowait, (ev.type, {"run_id": ev.run_id, **ev.data}))

        async def drive() -> None:
            async with send:
                try:
                    result = await anyio.to_thread.run_sync(work, emit)
                    await send.send(("result", run_out(result)))
                except EmergentError as exc:
                    await send.send(("error", json.loads(bytes(from_error(exc).body))))
                except Exception:  # noqa: BLE001 - a bug ends the stream with a problem, not a traceback
                    log.exception("assistant run failed")
                    await send.send(("error", {"type": "urn:emergent:problem:internal-error", "title": "InternalError",
                                               "status": 500, "detail": "the run failed",
                                               "hint": "the server's log has the details"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            n = 0
            async with recv:
                async for kind, data in recv:
                    n += 1
                    yield _event(n, kind, data)

    return StreamingResponse(events(), media_type=SSE,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/runs", response_model=RunOut, responses=_STREAM_DOC)
def ask(body: AskIn, who: OperatorOrAgent, request: Request) -> Any:
    """Ask an assistant; the run (or, streaming, its events)."""
    bot = _assistant(request.app.state.ws, _name(body.assistant, who), who, create=True)
    if _wants_stream(request, body.stream):
        return stream_run(lambda emit: bot.ask(body.question, user=who.principal, on_event=emit))
    return run_out(bot.ask(body.question, user=who.principal))


@router.get("/runs", response_model=Page[RunOut])
def list_runs(who: ViewerOrAgent, request: Request, page: Annotated[PageParams, Depends(page_params)],
              assistant: Annotated[str | None, Query(min_length=1, max_length=64,
                                                     description="default: 'assistant' (an agent token: its own)")]
              = None,
              status: Annotated[RunStatus | None, Query()] = None) -> dict[str, Any]:
    """An assistant's runs, newest first."""
    bot = _assistant(request.app.state.ws, _name(assistant, who), who)
    found = bot.runs(limit=1000, status=status)
    if who.is_agent:  # its own assistant (checked above): every run of it
        found = [r for r in found if bot.principal.key == who.principal.key]
    return page.slice([run_out(r) for r in found])


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: str, who: ViewerOrAgent, request: Request) -> dict[str, Any]:
    bot, row = _run(request.app.state.ws, run_id, who)
    return run_out(bot.get(row.id))


@router.post("/runs/{run_id}/resume", response_model=RunOut, responses=_STREAM_DOC)
def resume_run(run_id: str, who: OperatorOrAgent, request: Request, body: StreamIn | None = None) -> Any:
    """Continue a run whose approval was decided (or whose driving process died); still pending: unchanged."""
    bot, row = _run(request.app.state.ws, run_id, who)
    if _wants_stream(request, bool(body and body.stream)):
        return stream_run(lambda emit: bot.resume(row.id, on_event=emit))
    return run_out(bot.resume(row.id))


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: str, who: OperatorOrAgent, request: Request) -> dict[str, Any]:
    """Stop a run (the asker, a person, or the assistant itself); a pending approval is withdrawn."""
    bot, row = _run(request.app.state.ws, run_id, who)
    return run_out(bot.cancel(row.id, by=who.principal))
