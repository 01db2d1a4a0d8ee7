"""The Emergent assistant in JupyterLab's chat: a jupyter-ai 3 persona named "Emergent".

jupyter-ai 3 (``jupyter_ai_persona_manager``) finds personas through the ``jupyter_ai.personas`` entry
point group and makes one instance per chat; the chat input's persona picker stamps the chosen persona
on each message (``metadata["to_persona"]``) and the manager calls that persona's ``process_message``.
This persona hands the text to ``ws.assistant().ask`` unchanged (so ``/approve ID``, ``/remember TEXT``,
``/help`` ... work as everywhere else) and streams what the run does into the chat: recalled memories,
model tokens, tool calls as short lines, approvals with their id and how to give them, then the answer
with its sources and the mode that produced it (``offline`` or ``llm:<model>``).

The engine is synchronous and the Jupyter server is one asyncio loop, so every call into the workspace
runs on a worker thread: one per workspace in this server process, shared by every chat (the
Workstation is opened lazily, once, on that thread). Nothing a run does can crash the server: an error
becomes a chat message with the error's message and its hint.

The workspace is the one the server process is configured with (``EMERGENT_HOME``), or the
``c.EmergentPersona.workspace`` trait in ``jupyter_server_config.py``; ``c.EmergentPersona.assistant``
names the assistant (default ``assistant``). The persona acts for the server's owner
(``ws.principal``): whoever may send messages to this server's chats may already run code as that
owner (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from jupyter_ai_persona_manager import BasePersona, PersonaDefaults
from jupyter_ai_persona_manager.awareness_models import CommandOption, Usage
from jupyterlab_chat.models import Message
from traitlets import Unicode

from emergent.assistant.offline import inert_markdown
from emergent.errors import EmergentError

T = TypeVar("T")

NAME = "Emergent"
DESCRIPTION = ("Emergent's research assistant: answers from the workspace's memories (with sources), acts through "
               "the governed tool gate, and waits for your /approve when a tool call needs a person.")
#: the persona id jupyter-ai derives from the package and class name (for c.PersonaManager.default_persona_id)
PERSONA_ID = "jupyter-ai-personas::emergent::EmergentPersona"
_AVATAR_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
<rect width="64" height="64" rx="14" fill="#2f5d8a"/>
<circle cx="32" cy="32" r="7" fill="#ffffff"/>
<circle cx="16" cy="20" r="4" fill="#9fd0ff"/><circle cx="48" cy="20" r="4" fill="#9fd0ff"/>
<circle cx="16" cy="44" r="4" fill="#9fd0ff"/><circle cx="48" cy="44" r="4" fill="#9fd0ff"/>
<path d="M16 20L32 32L48 20M16 44L32 32L48 44" stroke="#9fd0ff" stroke-width="2" fill="none"/>
</svg>
"""
_STEP_CHARS = 160  # a tool call's arguments or result, as one short line
_SOURCE_CHARS = 220  # a source's excerpt


@functools.cache
def avatar_path() -> str:
    """The persona's avatar: ``emergent/data/emergent_avatar.svg`` when the package ships it, else a copy
    written once to the user's cache directory (jupyter-ai serves it from an absolute file path)."""
    shipped = Path(__file__).resolve().parent.parent / "data" / "emergent_avatar.svg"
    if shipped.is_file():
        return str(shipped)
    import platformdirs

    path = Path(platformdirs.user_cache_dir("emergent")) / "emergent_avatar.svg"
    with contextlib.suppress(OSError):
        if not path.is_file() or path.read_text() != _AVATAR_SVG:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_AVATAR_SVG)
    return str(path)


@functools.cache
def _defaults() -> PersonaDefaults:
    """Name, description and avatar shown in the chat (the engine keeps its own instructions)."""
    from emergent.assistant.engine import DEFAULT_INSTRUCTIONS

    return PersonaDefaults(name=NAME, description=DESCRIPTION, avatar_path=avatar_path(),
                           system_prompt=DEFAULT_INSTRUCTIONS)


# ---------------------------------------------------------------- the workspace, on its own thread
class _Desk:
    """One workspace and its assistant in this server process, used only from one worker thread.

    Every chat's persona shares it: a second Workstation on the same workspace would hold a second copy
    of the stores and their caches. Opened on first use; an open that fails is tried again next time."""

    def __init__(self, workspace: str | None, assistant: str) -> None:
        self.workspace = workspace
        self.assistant_name = assistant
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emergent-persona")
        self.ws: Any = None
        self.bot: Any = None

    def open(self) -> tuple[Any, Any]:
        """(Workstation, Assistant); call only on the worker thread."""
        if self.bot is None:
            from emergent.workstation import Workstation

            ws = Workstation.open(self.workspace)
            try:
                bot = ws.assistant(self.assistant_name)
            except BaseException:
                ws.close()
                raise
            self.ws, self.bot = ws, bot
        return self.ws, self.bot

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread without blocking the server's event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def close(self) -> None:
        """Wait for the run in flight (queued ones are dropped), then close the workspace."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        ws, self.ws, self.bot = self.ws, None, None
        if ws is not None:
            ws.close()


_desks: dict[tuple[str | None, str], _Desk] = {}
_desks_lock = threading.Lock()


def _desk(workspace: str | None, assistant: str) -> _Desk:
    with _desks_lock:
        desk = _desks.get((workspace, assistant))
        if desk is None:
            desk = _desks[(workspace, assistant)] = _Desk(workspace, assistant)
        return desk


@atexit.register
def _close_desks() -> None:
    with _desks_lock:
        desks = list(_desks.values())
        _desks.clear()
    for desk in desks:
        with contextlib.suppress(Exception):  # the server is exiting: close what can be closed
            desk.close()


# ---------------------------------------------------------------- the persona
class EmergentPersona(BasePersona):
    """The persona "Emergent": the workspace's assistant (``ws.assistant()``) in a JupyterLab chat."""

    workspace = Unicode(None, allow_none=True, config=True,
                        help="The Emergent workspace directory (default: the server's EMERGENT_HOME, else the "
                             "user-data workspace).")
    assistant = Unicode("assistant", config=True, help="Which assistant answers (ws.assistant(NAME)).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._run_id: str | None = None  # the run this persona is streaming, for the stop button

    @property
    def defaults(self) -> PersonaDefaults:
        return _defaults()

    @property
    def desk(self) -> _Desk:
        return _desk(self.workspace, self.assistant)

    async def prepare(self) -> None:
        """Advertise the assistant's commands to the chat input (its ``/`` completions). The workspace
        opens with the first message, where a failure can be told in the chat."""
        from emergent.assistant.offline import COMMANDS

        self.report_slash_commands([CommandOption(name=name, description=text.partition(" — ")[2] or text)
                                    for name, text in COMMANDS.items()])

    async def process_message(self, message: Message) -> None:
        question = self.question(message.body)
        if not question:
            self.send_message(f"Ask me something, or type `/help`. (I am the Emergent assistant "
                              f"`{self.assistant}`.)")
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()

        def on_event(ev: Any) -> None:  # called on the worker thread, in order
            loop.call_soon_threadsafe(events.put_nowait, ev)

        def work() -> Any:
            ws, bot = self.desk.open()
            return bot.ask(question, user=ws.principal, on_event=on_event)

        run = asyncio.ensure_future(self.desk.run(work))
        run.add_done_callback(lambda _: events.put_nowait(None))
        try:
            await self.stream_message(self._render(events, run))
        finally:
            self._run_id = None
        if run.done() and not run.cancelled() and run.exception() is None:
            self._report_usage(run.result())

    async def cancel_response(self) -> None:
        """The chat's stop button: cancel the run (the engine stops before its next step)."""
        run_id, desk = self._run_id, self.desk
        if run_id is None or desk.bot is None:
            return

        def cancel() -> None:
            desk.bot.cancel(run_id, by=desk.ws.principal)

        try:
            await asyncio.to_thread(cancel)  # not the worker: it is busy with the run
        except Exception as exc:  # the stop button must never take the server down
            self.log.warning("Emergent: cancelling run %s failed: %s", run_id, exc)

    async def handle_uncaught_exception(self, exc: Exception) -> None:
        self.send_message(error_text(exc))

    # ------------------------------------------------------------------ helpers
    def question(self, body: str) -> str:
        """The message without a leading ``@Emergent`` mention (the engine sees what the person typed)."""
        mention = re.escape(self.as_user().mention_name)
        return re.sub(rf"^\s*@{mention}\b:?\s*", "", body or "").strip()

    async def _render(self, events: asyncio.Queue[Any], run: asyncio.Future[Any]) -> AsyncIterator[str]:
        view = RunView()
        while True:
            ev = await events.get()
            if ev is None:
                break
            if ev.type == "started" and self._run_id is None:
                self._run_id = ev.run_id
            chunk = view.event(ev)
            if chunk:
                yield chunk
        try:
            result = run.result()
        except Exception as exc:
            if not isinstance(exc, EmergentError):
                self.log.exception("Emergent: the assistant failed on %r", self.processing_message)
            yield view.separator() + error_text(exc)
            return
        yield view.result(result)

    def _report_usage(self, result: Any) -> None:
        """Add a model run's tokens to the usage the chat input shows (offline runs use none)."""
        u = result.usage or {}
        prompt, completion = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
        if prompt + completion == 0:
            return
        with contextlib.suppress(Exception):  # usage is a courtesy to the chat UI
            self.report_usage(Usage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion),
                              append=True)


# ---------------------------------------------------------------- what a run looks like in the chat
def error_text(exc: BaseException) -> str:
    """An error as a chat message: its message and what to do (never a traceback)."""
    if isinstance(exc, EmergentError):
        text = f"**Emergent could not do that:** {exc.message}"
        return text + (f"\n\n*What to do:* {exc.hint}" if exc.hint else "")
    return (f"**Emergent hit an internal error:** {type(exc).__name__}: {_clip(str(exc), 300)}\n\n"
            "*What to do:* the Jupyter server's log has the details; please report it.")


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _args(args: Any) -> str:
    from emergent.assistant.offline import args_json

    return _clip(args_json(args), _STEP_CHARS)  # invisible and bidi characters escaped



def _code(text: str) -> str:
    """Inline code that survives backticks in ``text``."""
    text = " ".join(text.split())
    return f"`` {text} ``" if "`" in text else f"`{text}`"


class RunView:
    """Turns a run's events (emergent.assistant.RunEvent) and its result into markdown chunks."""

    def __init__(self) -> None:
        self.tail = ""  # model text streamed since the last step line
        self.held = ""  # a trailing "!" of streamed text, sent with the next piece (see inert_markdown)
        self.last = ""  # "line" after a step line, "text" after streamed text

    def separator(self) -> str:
        return "\n\n" if self.last else ""

    def _line(self, text: str) -> str:
        lead = "\n\n" if self.last == "text" else ""
        self.last, self.tail = "line", ""
        return f"{lead}- {text}\n"

    def event(self, ev: Any) -> str:
        d = ev.data
        if ev.type == "recall":
            n = len(d.get("hits") or [])
            return self._line(f"*recalled {n} memor{'y' if n == 1 else 'ies'}*")
        if ev.type == "token":
            text = self.held + str(d.get("text") or "")
            # a "!" at the end is held back: with the next token's "[" it would start an image
            self.held = "!" if text.endswith("!") else ""
            text = text[:-1] if self.held else text
            if not text:
                return ""
            lead = "\n" if self.last == "line" else ""
            self.last = "text"
            self.tail += text
            return lead + inert_markdown(text)
        if ev.type == "tool_call":
            via = f" (approved {_code(str(d['approval']))})" if d.get("approval") else ""
            return self._line(f"calling {_code(str(d.get('tool')))} {_code(_args(d.get('args')))}{via}")
        if ev.type == "tool_result":
            return self._line(f"{_code(str(d.get('tool')))} → **{d.get('outcome')}**: "
                              f"{_code(_clip(str(d.get('result', '')), _STEP_CHARS))}")
        if ev.type == "approval":
            return self._line(f"{_code(str(d.get('tool')))} waits for approval {_code(str(d.get('approval')))}")
        return ""  # started, answer, stopped: the result says it once, at the end

    def result(self, r: Any) -> str:
        out = [self.separator()] if self.last else []
        if self.held:  # the held "!" ended the streamed text
            out.insert(0, self.held)
            self.tail += self.held
            self.held = ""
        if r.status == "waiting_approval":
            aid = r.pending_approval
            tool = (r.pending_tool or {}).get("tool", "a tool")
            args = (r.pending_tool or {}).get("args", {})
            out.append(f"⏸ **Waiting for approval {_code(str(aid))}** to run {_code(str(tool))} with "
                       f"{_code(_args(args))}.\n\nTo let it run, reply `/approve {aid}` in this chat (or "
                       f"`/reject {aid} REASON`); the run then continues here.")
        else:
            answer = r.answer or ""
            if answer.strip() and answer.strip() != self.tail.strip():
                out.append(inert_markdown(answer))
            elif not answer.strip():
                out.append(f"*(no answer: the run {r.status}, {r.stop_reason})*")
            if r.status != "completed":
                why = f" ({r.stop_reason})" if r.stop_reason and r.stop_reason != r.status else ""
                out.append(f"\n\n*Run {r.status}{why}.*")
        if r.sources:
            out.append("\n\n**Sources**\n")
            for i, s in enumerate(r.sources, 1):
                score = f" ({s.score:.2f})" if s.score is not None else ""
                text = inert_markdown(_clip(s.text, _SOURCE_CHARS))
                out.append(f"\n{i}. {s.kind} {_code(str(s.ref))}{score}: {text}")
        out.append(f"\n\n*mode: {r.mode} · run {_code(r.run_id)}*")
        return "".join(out)


__all__ = ["NAME", "PERSONA_ID", "EmergentPersona", "RunView", "avatar_path", "error_text"]
