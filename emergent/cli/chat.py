"""``emergent chat``: talk to the workstation's assistant in the terminal.

``emergent chat`` opens a conversation (a prompt; Ctrl-D or ``/quit`` leaves); ``emergent chat
"QUESTION"`` answers once and exits. You ask as the OS user running the command (``ws.principal``).
Tokens and steps stream as they happen: what was recalled, each tool call and its outcome, and a
call that waits for a human's approval, with its id. Type ``/approve ID`` (or ``/reject ID
REASON``) to decide it as yourself: the run continues. An approval decided elsewhere (``emergent
approvals approve ID``, a notebook) is picked up before the next prompt. Each answer ends with its
sources (memory id and passage, or the tool call) and the mode that produced it (``offline`` or
``llm:<model>``). Other commands: ``/remember TEXT``, ``/recall QUERY``, ``/tool NAME {json}``,
``/status``, ``/help``.

Exit status of a one-shot question: 0 when the run answered, waits for an approval or stopped at
its budget; 1 when it failed or was cancelled; 2 for a usage mistake (message and hint, no traceback).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

_QUIT = ("/quit", "/exit", "/bye")
_COLOURS = {"ok": "green", "denied": "red", "error": "red", "rejected": "yellow"}


@app.callback(invoke_without_command=True)
def chat(question: str = typer.Argument(None, help="ask this once and exit (default: a conversation)"),
         assistant: str = typer.Option(None, "--assistant", "-a", help="which assistant (default: assistant)"),
         as_json: bool = typer.Option(False, "--json", help="one-shot: print the run as one JSON object"),
         home: str = HOME) -> None:
    """Talk to the assistant: a conversation, or one QUESTION answered and exit."""
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    with workstation(home) as ws:
        bot = ws.assistant(assistant) if assistant else ws.assistant()
        me = ws.principal
        if question is not None:
            if not question.strip():
                from emergent.errors import UsageError

                raise UsageError("the question is empty", hint='emergent chat "what did we learn about X?"')
            if as_json:
                r = bot.ask(question, user=me)
                typer.echo(json.dumps(r.to_dict(), default=str))
            else:
                r = Session(bot, me, out, interactive=False).ask(question)
            raise typer.Exit(1 if r is None or r.status in ("failed", "cancelled") else 0)
        Session(bot, me, out).repl()


class Session:
    """One terminal conversation: streams a run's events and shows its result."""

    def __init__(self, bot: Any, me: Any, out: Any, *, interactive: bool = True) -> None:
        self.bot, self.me, self.out, self.interactive = bot, me, out, interactive
        self.waiting: dict[str, str] = {}  # run id -> approval id, runs of this session that wait
        self._streamed = False  # an answer line is open (tokens printed, no newline yet)
        self._answered = False  # the answer's text was printed while streaming
        self._run_id: str | None = None
        self._announce: str | None = None  # a waiting run being resumed by catch_up
        self._mute = threading.Event()  # set after Ctrl-C: a cancelled run's late events are not shown

    # ------------------------------------------------------------------ one question
    def ask(self, text: str) -> Any:
        """Ask ``text`` as the user; stream it; show the result. Ctrl-C cancels the run."""
        return self._run(lambda: self.bot.ask(text, user=self.me, on_event=self.event))

    def _run(self, fn: Any) -> Any:
        box: dict[str, Any] = {}
        self._streamed = self._answered = False
        self._run_id = None
        self._mute.clear()

        def work() -> None:
            try:
                box["result"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=work, name="emergent-chat-run", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.1)
        except KeyboardInterrupt:
            self._mute.set()
            if self._run_id:
                try:
                    self.bot.cancel(self._run_id, by=self.me)
                except Exception as exc:  # noqa: BLE001 - shown: the user asked to stop
                    self.error(exc)
            self.out.print("\n[yellow]cancelled[/]")
            raise
        if "error" in box:
            raise box["error"]
        r = box["result"]
        self.show(r)
        return r

    # ------------------------------------------------------------------ streaming
    def event(self, ev: Any) -> None:
        if self._mute.is_set():
            return
        self._announced()
        kind, data, out = ev.type, dict(ev.data or {}), self.out
        if kind == "started" and self._run_id is None:
            self._run_id = ev.run_id
        if self._run_id is not None and ev.run_id != self._run_id:
            # ``/approve ID`` resumes another run and streams its events here: its tool calls show;
            # its answer is repeated by the command's own answer
            if kind == "stopped" and data.get("status") != "waiting_approval":
                self.waiting.pop(ev.run_id, None)
            if kind in ("answer", "stopped", "started"):
                return
        if kind == "recall":
            hits = data.get("hits") or []
            out.print(f"[dim]· recalled {len(hits)} passage(s)[/]")
        elif kind == "token":
            if not self._streamed:
                out.print("[bold cyan]assistant[/] ", end="")
            self._streamed = True
            out.print(str(data.get("text", "")), end="", markup=False, highlight=False)
        elif kind == "tool_call":
            self._newline()
            out.print(f"[yellow]→ {_esc(data.get('tool'))}[/] {_esc(_args(data.get('args')))}")
        elif kind == "tool_result":
            self._newline()
            outcome = str(data.get("outcome") or "ok")
            result = _clip(str(data.get("result") or ""), 400)
            out.print(f"[{_COLOURS.get(outcome, 'white')}]← {_esc(data.get('tool'))} {outcome}[/]"
                      + (f" {_esc(result)}" if result else ""))
        elif kind == "approval":
            self._newline()
            aid = data.get("approval")
            out.print(f"[bold yellow]⏸ {_esc(data.get('tool'))} waits for approval {_esc(aid)}[/]"
                      + (f": {_esc(data.get('reason'))}" if data.get("reason") else ""))
        elif kind == "answer":
            text = str(data.get("text") or "")
            if text and not self._streamed:
                self._say(text)
            else:
                self._newline()
            self._answered = True

    def _announced(self) -> None:
        """Say that a waiting run continues (before its first event, once)."""
        if self._announce is not None:
            self.out.print(f"[dim]run {self._announce} resumed: its approval was decided[/]")
            self._announce = None

    def _newline(self) -> None:
        if self._streamed:
            self.out.print()
            self._streamed = False
            self._answered = True

    # ------------------------------------------------------------------ results
    def show(self, r: Any) -> None:
        out = self.out
        self._newline()
        if r.answer and not self._answered:  # nothing streamed (a resume decided elsewhere, say)
            self._say(r.answer)
        self._answered = False
        for i, s in enumerate(r.sources or (), 1):
            label = "memory" if s.kind == "memory" else "tool call" if s.kind == "tool" else s.kind
            out.print(f"  [dim][{i}] {label} {_esc(s.ref)}[/]: {_esc(_clip(s.text or '', 160))}")
        why = f" ({r.stop_reason})" if r.stop_reason not in (None, "answered") else ""
        out.print(f"[dim]mode {_esc(r.mode)} · {r.status}{why}[/]")
        if r.status == "waiting_approval" and r.pending_approval:
            self.waiting[r.run_id] = r.pending_approval
            tool = (r.pending_tool or {}).get("tool", "?")
            aid = r.pending_approval
            how = (f"type [bold]/approve {aid}[/] or [bold]/reject {aid} REASON[/], or run "
                   if self.interactive else "run ")
            out.print(f"[yellow]waiting for approval {aid}[/] ({_esc(tool)} "
                      f"{_esc(_args((r.pending_tool or {}).get('args')))}): {how}"
                      f"`emergent approvals approve {aid}` (the run continues)")
        else:
            self.waiting.pop(r.run_id, None)

    def _say(self, text: str) -> None:
        """The assistant's answer: after its name, or below it when it takes several lines."""
        self.out.print("[bold cyan]assistant[/]", end="\n" if "\n" in text.strip() else " ")
        self.out.print(text.strip("\n"), markup=False, highlight=False)

    def error(self, exc: BaseException) -> None:
        from emergent.errors import EmergentError

        message = exc.message if isinstance(exc, EmergentError) else f"{type(exc).__name__}: {exc}"
        self.out.print(f"[red]error:[/] {_esc(message)}")
        hint = getattr(exc, "hint", None)
        if hint:
            self.out.print(f"[dim]hint:[/] {_esc(hint)}")

    # ------------------------------------------------------------------ the conversation
    def repl(self) -> None:
        spec = getattr(self.bot, "spec", None)
        name = getattr(spec, "name", "assistant")
        self.out.print(f"[bold]{_esc(name)}[/] · you are {_esc(self.me.key)} · mode {_esc(self.bot.mode)}\n"
                       "[dim]/help for commands, /approve ID to approve a waiting call, Ctrl-D or /quit to leave[/]")
        while True:
            self.catch_up()
            try:
                line = self.out.input("[bold green]you[/]> ")
            except (EOFError, KeyboardInterrupt):
                self.out.print("\n[dim]bye[/]")
                return
            text = line.strip()
            if not text:
                continue
            if text.lower() in _QUIT:
                self.out.print("[dim]bye[/]")
                return
            self.catch_up()
            try:
                self.ask(text)
            except KeyboardInterrupt:
                continue
            except Exception as exc:  # noqa: BLE001 - one bad line never ends the conversation
                self.error(exc)

    def catch_up(self) -> None:
        """Finish this session's runs whose approval was decided elsewhere (CLI, a notebook)."""
        for run_id in list(self.waiting):
            self._run_id, self._streamed, self._answered = run_id, False, False  # its events are its own
            self._announce = run_id
            try:
                r = self.bot.resume(run_id, on_event=self.event)
            except Exception as exc:  # noqa: BLE001 - shown; the conversation goes on
                self.waiting.pop(run_id, None)
                self.error(exc)
                continue
            if r.status != "waiting_approval" or r.pending_approval != self.waiting.get(run_id):
                self._announced()
                self.show(r)
            self._announce = None


def _args(args: Any) -> str:
    from emergent.assistant.offline import args_json

    return _clip(args_json(args), 300)  # invisible and bidi characters escaped: what runs is what is shown


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _esc(value: Any) -> str:
    from rich.markup import escape

    return escape("" if value is None else str(value))
