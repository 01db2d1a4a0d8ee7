"""``Chat``: a conversation with an assistant in a notebook cell.

``Chat(ws.assistant(), principal=ws.principal)`` shows the conversation (your messages and the
assistant's answers), a text box and a send button. A question runs in a background thread (the
kernel stays responsive): tokens are appended as they stream, each step shows as it happens (what
was recalled, every tool call as a card with its arguments, outcome and a truncated result), and
each answer lists its sources (memory id and passage, or the tool call) and the mode that produced
it (``offline`` or ``llm:<model>``).

A tool call the gate asks a human about shows **Approve** / **Reject** on its card: a click decides
as ``principal`` (the person the widget was given, never a name) through ``assistant.approve`` /
``assistant.reject``, which resume the run; the card then shows the call's outcome. An approval
decided elsewhere (``emergent approvals approve ID``, another kernel) is noticed by a light poll
(``assistant.resume(run_id)`` every ``poll_s`` seconds while a run waits).

Everything here acts through the ``Assistant`` it was given; nothing reads the Workstation.
The HTML helpers (:func:`result_html`, :func:`sources_html`, ...) are shared with ``%ask``.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from emergent.principals import Principal
from emergent.ui.marketplace import require_principal

_TEXT = "line-height:1.45;"  # widget HTML inherits the 28px line-height of one-line controls
RESULT_CHARS = 600  # a tool result is shown up to this many characters on its card
ARGS_CHARS = 400
_OUTCOME_COLOUR = {"ok": "#1a7f37", "denied": "#cf222e", "error": "#cf222e", "rejected": "#bc4c00",
                   "waiting": "#9a6700", "running": "#0969da", "approved": "#0969da"}
_STATUS_COLOUR = {"completed": "#1a7f37", "waiting_approval": "#9a6700", "stopped": "#bc4c00",
                  "failed": "#cf222e", "cancelled": "#57606a"}


# ---------------------------------------------------------------------------- HTML helpers (shared with %ask)
def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def clip(text: Any, limit: int) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def markdown_html(text: str) -> str:
    """The answer (markdown-ish plain text) as HTML; raw HTML in it is escaped, never rendered."""
    try:
        from markdown_it import MarkdownIt  # rich's own dependency
    except ImportError:  # pragma: no cover - rich always brings it
        return f"<div style='white-space:pre-wrap'>{esc(text)}</div>"
    # images are not rendered: an <img> is fetched by the browser on its own, so an injected answer could
    # send what the run read to any URL; the link stays visible and needs a click
    return str(MarkdownIt("commonmark", {"html": False}).disable("image").render(text or ""))


def args_text(args: Any) -> str:
    """Arguments as the person approving must see them (invisible and bidi characters escaped)."""
    from emergent.assistant.offline import args_json

    return clip(args_json(args), ARGS_CHARS)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a Source / RunResult or of its dict form (events carry dicts)."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def sources_html(sources: Iterable[Any]) -> str:
    items = []
    for s in sources or ():
        kind, ref, score = _get(s, "kind", ""), _get(s, "ref", ""), _get(s, "score")
        label = "memory" if kind == "memory" else ("tool call" if kind == "tool" else esc(kind))
        sc = f" <span style='color:#57606a'>{score:.3f}</span>" if isinstance(score, int | float) else ""
        items.append(f"<li class='emergent-chat-source'><span style='color:#57606a'>{label}</span> "
                     f"<code>{esc(ref)}</code>{sc}: {esc(clip(_get(s, 'text', ''), 300))}</li>")
    if not items:
        return ""
    return (f"<div class='emergent-chat-sources' style='{_TEXT}'><b>Sources</b><ol style='margin:2px 0 2px 18px;padding:0'>"
            f"{''.join(items)}</ol></div>")


def mode_html(mode: str | None, status: str | None = None, stop_reason: str | None = None) -> str:
    parts = [f"mode <code class='emergent-chat-mode'>{esc(mode or '?')}</code>"]
    if status:
        colour = _STATUS_COLOUR.get(status, "#000")
        why = f" ({esc(stop_reason)})" if stop_reason and stop_reason != "answered" else ""
        parts.append(f"<span style='color:{colour}'>{esc(status)}</span>{why}")
    return f"<div style='color:#57606a;font-size:11px'>{' · '.join(parts)}</div>"


def card_html(tool: str, args: Any, outcome: str, result: str | None = None, approval: str | None = None,
              reason: str | None = None, decided: str | None = None) -> str:
    colour = _OUTCOME_COLOUR.get(outcome, "#000")
    lines = [f"<b>{esc(tool)}</b> <span class='emergent-tool-outcome' style='color:{colour}'>{esc(outcome)}</span>",
             f"<div><code style='font-size:11px'>{esc(args_text(args))}</code></div>"]
    if approval:  # why it waits while it waits; afterwards who decided, when known
        note = reason if outcome == "waiting" else decided
        lines.append(f"<div>approval <code class='emergent-approval-id'>{esc(approval)}</code>"
                     f"{': ' + esc(note) if note else ''}</div>")
    if result:
        lines.append("<pre class='emergent-tool-result' style='white-space:pre-wrap;max-height:160px;overflow:auto;"
                     f"margin:2px 0;font-size:11px'>{esc(clip(result, RESULT_CHARS))}</pre>")
    return f"<div style='{_TEXT}'>{''.join(lines)}</div>"


def steps_html(steps: Iterable[dict[str, Any]]) -> str:
    rows = []
    for s in steps or ():
        what = s.get("kind", "")
        if s.get("tool"):
            what += f" {esc(s['tool'])} <code style='font-size:11px'>{esc(args_text(s.get('args')))}</code>"
        outcome = s.get("outcome")
        oc = (f" <span style='color:{_OUTCOME_COLOUR.get(outcome, '#000')}'>{esc(outcome)}</span>"
              if outcome else "")
        ms = f" <span style='color:#57606a'>{s['ms']:.0f} ms</span>" if isinstance(s.get("ms"), int | float) else ""
        rows.append(f"<li>{s.get('n', '')}. {what}{oc}{ms}</li>")
    return f"<details><summary>{len(rows)} step(s)</summary><ol>{''.join(rows)}</ol></details>" if rows else ""


def approval_howto(approval: str) -> str:
    return (f"approve with <code>%ask /approve {esc(approval)}</code>, "
            f"<code>emergent approvals approve {esc(approval)}</code> or "
            f"<code>ws.assistant().approve({esc(repr(approval))}, by=ws.principal)</code>; "
            f"reject with <code>%ask /reject {esc(approval)} REASON</code>")


def result_html(r: Any) -> str:
    """One RunResult as HTML (the answer, a pending approval, steps, sources, mode)."""
    parts = ["<div class='emergent-ask'>"]
    if r.answer:
        parts.append(f"<div class='emergent-chat-answer'>{markdown_html(r.answer)}</div>")
    if r.pending_approval:
        tool = (r.pending_tool or {}).get("tool", "?")
        parts.append("<div class='emergent-tool-card' style='border:1px solid #d4a72c;border-radius:6px;"
                     "padding:4px 8px;margin:4px 0;background:#fff8c5'>"
                     + card_html(tool, (r.pending_tool or {}).get("args", {}), "waiting", approval=r.pending_approval)
                     + f"<div style='font-size:11px'>{approval_howto(r.pending_approval)}</div></div>")
    parts += [steps_html(r.steps), sources_html(r.sources),
              mode_html(r.mode, r.status, r.stop_reason), "</div>"]
    return "".join(parts)


def result_text(r: Any) -> str:
    """One RunResult as plain text (the magic's repr, the CLI's --plain)."""
    lines = [r.answer.strip()] if r.answer else []
    if r.pending_approval:
        tool = (r.pending_tool or {}).get("tool", "?")
        lines.append(f"waiting for approval {r.pending_approval}: {tool} {args_text((r.pending_tool or {}).get('args'))}")
        lines.append(f"  approve: %ask /approve {r.pending_approval}  (or: emergent approvals approve {r.pending_approval})")
    for s in r.steps or ():
        if s.get("kind") == "tool":
            lines.append(f"  step {s.get('n')}: {s.get('tool')} -> {s.get('outcome', '?')}")
    for i, s in enumerate(r.sources or (), 1):
        lines.append(f"  [{i}] {_get(s, 'kind')} {_get(s, 'ref')}: {clip(_get(s, 'text', ''), 120)}")
    lines.append(f"mode {r.mode} · {r.status}" + (f" ({r.stop_reason})" if r.stop_reason not in (None, "answered") else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the widget
_BUBBLE = f"border-radius:10px;padding:6px 10px;margin:3px 0;max-width:90%;{_TEXT}"
_USER_STYLE = _BUBBLE + "background:#ddf4ff;margin-left:auto;"
_BOT_STYLE = _BUBBLE + "background:#f6f8fa;"


@dataclass(eq=False)
class ToolCard:
    """One tool call of a run: tool, args, outcome, result, and the approval it waits on."""

    tool: str
    args: Any
    outcome: str = "running"
    result: str | None = None
    approval: str | None = None
    reason: str | None = None
    decided: str | None = None  # "approved by human:ana" once decided here
    html: widgets.HTML = field(default_factory=widgets.HTML)
    approve_button: widgets.Button | None = None
    reject_button: widgets.Button | None = None
    message: widgets.HTML = field(default_factory=widgets.HTML)
    box: widgets.VBox = field(default_factory=widgets.VBox)

    def render(self) -> None:
        self.html.value = card_html(self.tool, self.args, self.outcome, self.result, self.approval, self.reason,
                                    self.decided)
        waiting = self.outcome == "waiting" and self.approval is not None
        for b in (self.approve_button, self.reject_button):
            if b is not None:
                b.layout.display = None if waiting else "none"


@dataclass(eq=False)
class Turn:
    """One question and its answer: the widgets showing them and the run's state."""

    question: str
    run_id: str | None = None
    text: str = ""
    tokens: int = 0  # token events shown while the answer streamed
    status: str = "running"
    result: Any = None
    cards: list[ToolCard] = field(default_factory=list)
    poll_errors: int = 0
    busy: threading.Lock = field(default_factory=threading.Lock)  # one resume at a time (click vs poll)
    done: threading.Event = field(default_factory=threading.Event)
    user_html: widgets.HTML = field(default_factory=widgets.HTML)
    recall_html: widgets.HTML = field(default_factory=widgets.HTML)
    cards_box: widgets.VBox = field(default_factory=widgets.VBox)
    answer_html: widgets.HTML = field(default_factory=widgets.HTML)
    sources_html: widgets.HTML = field(default_factory=widgets.HTML)
    footer_html: widgets.HTML = field(default_factory=widgets.HTML)
    box: widgets.VBox = field(default_factory=widgets.VBox)

    @property
    def waiting(self) -> bool:
        return self.status == "waiting_approval"

    def card_for(self, approval: str) -> ToolCard | None:
        return next((c for c in self.cards if c.approval == approval), None)


class Chat(widgets.VBox):
    """``Chat(assistant, principal=ws.principal)``: talk to ``assistant`` as ``principal`` (a human).

    ``ask(text)`` (or type and click **Send**) asks in a background thread; ``wait()`` blocks until
    the runs started so far have finished or wait for an approval; ``history`` lists the turns."""

    def __init__(self, assistant: Any, principal: Principal | None = None, *, poll_s: float = 1.0,
                 placeholder: str = "Ask, or /help · /remember TEXT · /recall Q · /tool NAME {json}") -> None:
        self.assistant = assistant
        self.principal = require_principal(principal, "Chat(ws.assistant(), principal=ws.principal)")
        self.poll_s = poll_s
        self.history: list[Turn] = []
        self._lock = threading.RLock()  # widget updates come from run threads and the poller
        self._threads: list[threading.Thread] = []
        self._poller: threading.Thread | None = None
        self._closed = threading.Event()
        name = getattr(getattr(assistant, "spec", None), "name", None) or getattr(assistant, "name", "assistant")
        self.header = widgets.HTML(
            f"<b>{esc(name)}</b> <span style='color:#57606a;font-size:11px'>as {esc(self.principal.key)} · "
            f"mode <code>{esc(getattr(assistant, 'mode', '?'))}</code></span>")
        # the conversation grows with the cell (the notebook scrolls): a box of its own would not
        # follow new answers down, ipywidgets cannot scroll it from the kernel
        self.conversation = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.conversation.add_class("emergent-chat-log")
        self.input = widgets.Textarea(placeholder=placeholder, rows=2, layout=widgets.Layout(width="100%"))
        self.input.add_class("emergent-chat-input")
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane",
                                          tooltip="ask the assistant (runs in the background)")
        self.send_button.add_class("emergent-chat-send")
        self.send_button.on_click(lambda _b: self.ask())
        self.status = widgets.HTML()
        super().__init__([self.header, self.conversation,
                          widgets.HBox([self.input, self.send_button], layout=widgets.Layout(width="100%")),
                          self.status])
        self.add_class("emergent-chat")

    # ------------------------------------------------------------------ asking
    def ask(self, text: str | None = None) -> Turn | None:
        """Ask ``text`` (default: what is typed in the box) in a background thread; returns its turn."""
        question = (self.input.value if text is None else text).strip()
        if not question:
            return None
        turn = Turn(question)
        with self._lock:
            if text is None:
                self.input.value = ""
            turn.user_html.value = (f"<div class='emergent-chat-user' style='{_USER_STYLE}'>"
                                    f"<div style='white-space:pre-wrap'>{esc(question)}</div></div>")
            turn.footer_html.value = mode_html(getattr(self.assistant, "mode", None), "running")
            bot = widgets.VBox([turn.recall_html, turn.cards_box, turn.answer_html, turn.sources_html,
                                turn.footer_html], layout=widgets.Layout(width="100%", flex="0 0 auto"))
            bot.add_class("emergent-chat-bot")
            turn.box.children = (turn.user_html, bot)
            turn.box.layout = widgets.Layout(width="100%", flex="0 0 auto")  # the scrolling log never squeezes a turn
            self.history.append(turn)
            self.conversation.children = (*self.conversation.children, turn.box)
        self._start(f"chat-ask-{len(self.history)}", lambda: self._ask(turn))
        return turn

    def _ask(self, turn: Turn) -> None:
        try:
            with turn.busy:
                r = self.assistant.ask(turn.question, user=self.principal, on_event=lambda ev: self._event(turn, ev))
            self._apply(turn, r)
        except Exception as exc:  # shown on the turn: a click must never fail silently
            self._fail(turn, exc)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every run started so far has answered, failed or waits for an approval."""
        deadline = time.monotonic() + timeout
        for turn in list(self.history):
            if not turn.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"the chat run for {turn.question[:40]!r} did not finish in {timeout} s")

    @property
    def last(self) -> Turn | None:
        return self.history[-1] if self.history else None

    # ------------------------------------------------------------------ events from the run's thread
    def _event(self, turn: Turn, ev: Any) -> None:
        kind, data = ev.type, dict(ev.data or {})
        with self._lock:
            if ev.run_id and not turn.run_id:
                turn.run_id = ev.run_id
            if ev.run_id and ev.run_id != turn.run_id:
                # ``/approve ID`` typed here resumes another run and streams its events through this
                # turn's callback: they belong to the turn of that run when this chat shows it
                owner = next((t for t in self.history if t.run_id == ev.run_id), None)
                if owner is not None:
                    self._on(owner, kind, data)
                    if kind == "stopped" and data.get("status") != "waiting_approval":
                        self._start("chat-refresh", lambda: self._refresh(owner))
                elif kind in ("tool_call", "tool_result"):
                    self._on(turn, kind, data)  # a run of another surface: show what its call did
                return
            self._on(turn, kind, data)

    def _refresh(self, turn: Turn) -> None:
        if turn.run_id:
            try:
                self._apply(turn, self.assistant.get(turn.run_id))
            except Exception as exc:  # shown on the turn
                self._fail(turn, exc)

    def _on(self, turn: Turn, kind: str, data: dict[str, Any]) -> None:
        if kind == "recall":
            hits = data.get("hits") or []
            turn.recall_html.value = (f"<div style='color:#57606a;font-size:11px'>recalled {len(hits)} "
                                      f"passage(s)</div>")
        elif kind == "token":
            turn.text += str(data.get("text", ""))
            turn.tokens += 1
            turn.answer_html.value = (f"<div class='emergent-chat-answer' style='{_BOT_STYLE}white-space:pre-wrap'>"
                                      f"{esc(turn.text)}▌</div>")
        elif kind == "tool_call":
            card = turn.card_for(data["approval"]) if data.get("approval") else None
            if card is None:  # a new call (an approved one re-announces itself with its approval id)
                card = self._card(turn, data.get("tool", "?"), data.get("args"))
            card.outcome = "running"
            card.message.value = ""
            card.render()
        elif kind == "tool_result":
            card = self._open_card(turn, data.get("tool")) or self._card(turn, data.get("tool", "?"), None)
            card.outcome = str(data.get("outcome") or "ok")
            card.result = None if data.get("result") is None else str(data.get("result"))
            card.message.value = ""
            card.render()
        elif kind == "approval":
            card = self._open_card(turn, data.get("tool")) or self._card(turn, data.get("tool", "?"),
                                                                          data.get("args"))
            card.approval, card.reason, card.outcome = data.get("approval"), data.get("reason"), "waiting"
            if data.get("args") is not None:
                card.args = data["args"]
            self._buttons(turn, card)
            card.render()
        elif kind == "answer":
            turn.text = str(data.get("text") or turn.text)
            self._show_answer(turn, turn.text, data.get("sources") or [], data.get("mode"))
        elif kind == "stopped":
            turn.status = str(data.get("status") or turn.status)
            turn.footer_html.value = mode_html(getattr(self.assistant, "mode", None), data.get("status"),
                                               data.get("stop_reason"))

    def _card(self, turn: Turn, tool: str, args: Any) -> ToolCard:
        card = ToolCard(str(tool), args)
        card.box.children = (card.html, card.message)
        card.box.layout = widgets.Layout(border="1px solid #d0d7de", padding="2px 8px", margin="3px 0", flex="0 0 auto")
        card.box.add_class("emergent-tool-card")
        card.render()
        turn.cards.append(card)
        turn.cards_box.children = (*turn.cards_box.children, card.box)
        return card

    @staticmethod
    def _open_card(turn: Turn, tool: Any) -> ToolCard | None:
        """The newest card of ``tool`` still without a final outcome."""
        for card in reversed(turn.cards):
            if card.outcome in ("running", "waiting", "approved") and (tool is None or card.tool == tool):
                return card
        return None

    def _buttons(self, turn: Turn, card: ToolCard) -> None:
        if card.approve_button is not None:
            return
        card.approve_button = widgets.Button(description="Approve", button_style="success", icon="check",
                                             tooltip=f"approve as {self.principal.key} and continue the run")
        card.reject_button = widgets.Button(description="Reject", button_style="danger", icon="times",
                                            tooltip=f"reject as {self.principal.key}")
        card.approve_button.add_class("emergent-approve")
        card.reject_button.add_class("emergent-reject")
        card.approve_button.on_click(lambda _b: self.decide(turn, card, True))
        card.reject_button.on_click(lambda _b: self.decide(turn, card, False))
        card.box.children = (card.html, widgets.HBox([card.approve_button, card.reject_button]), card.message)

    # ------------------------------------------------------------------ approvals
    def decide(self, turn: Turn, card: ToolCard, approve: bool, *, reason: str = "",
               wait: bool = False) -> threading.Thread | None:
        """Approve (or reject) ``card``'s request as the widget's principal; the run resumes in the background."""
        approval = card.approval
        if approval is None:
            return None
        with self._lock:
            for b in (card.approve_button, card.reject_button):
                if b is not None:
                    b.disabled = True
            card.message.value = f"<i>{'approving' if approve else 'rejecting'}…</i>"
        turn.done.clear()

        def work() -> None:
            card.decided = f"{'approved' if approve else 'rejected'} by {self.principal.key}"
            try:
                with turn.busy:
                    fn = self.assistant.approve if approve else self.assistant.reject
                    r = fn(approval, by=self.principal,
                           reason=reason or ("approved in the chat" if approve else "rejected in the chat"),
                           on_event=lambda ev: self._event(turn, ev))
                    if r is None and turn.run_id:  # no run waited on it any more: show where it stands
                        r = self.assistant.get(turn.run_id)
                if r is not None:
                    self._apply(turn, r)
                else:
                    turn.done.set()
            except Exception as exc:  # e.g. the requester may not approve its own request: shown on the card
                with self._lock:
                    card.decided = None
                    card.render()
                    card.message.value = f"<span style='color:#cf222e'>{esc(_message(exc))}</span>"
                    for b in (card.approve_button, card.reject_button):
                        if b is not None:
                            b.disabled = False
                turn.done.set()

        thread = self._start(f"chat-decide-{approval}", work)
        if wait:
            thread.join()
        return thread

    def approve(self, approval: str | None = None, *, wait: bool = True) -> None:
        """Click **Approve** on the card waiting for ``approval`` (default: the newest waiting card)."""
        self._click(approval, True, wait)

    def reject(self, approval: str | None = None, *, reason: str = "", wait: bool = True) -> None:
        self._click(approval, False, wait, reason)

    def _click(self, approval: str | None, approve: bool, wait: bool, reason: str = "") -> None:
        for turn in reversed(self.history):
            for card in reversed(turn.cards):
                if card.outcome == "waiting" and card.approval and approval in (None, card.approval):
                    self.decide(turn, card, approve, reason=reason, wait=wait)
                    return
        from emergent.errors import NotFoundError

        raise NotFoundError(f"no card in this chat waits for approval {approval or ''}".strip(),
                            hint="the approval may have been decided already; see chat.history")

    # ------------------------------------------------------------------ results
    def _apply(self, turn: Turn, r: Any) -> None:
        """Show a RunResult: it is the authority over what the events streamed."""
        with self._lock:
            turn.result, turn.status = r, r.status
            turn.run_id = turn.run_id or r.run_id
            self._sync_cards(turn, r)
            if r.pending_approval and turn.card_for(r.pending_approval) is None:
                pending = r.pending_tool or {}
                card = self._card(turn, pending.get("tool", "?"), pending.get("args"))
                card.approval, card.outcome = r.pending_approval, "waiting"
                self._buttons(turn, card)
                card.render()
            self._show_answer(turn, r.answer or "", r.sources or [], r.mode)
            turn.footer_html.value = mode_html(r.mode, r.status, r.stop_reason)
            if r.status == "waiting_approval":
                self.status.value = (f"<span style='color:#9a6700'>waiting for approval "
                                     f"<code>{esc(r.pending_approval)}</code></span>")
            else:
                self.status.value = ""
        turn.done.set()
        if turn.waiting:
            self._ensure_poller()

    def _sync_cards(self, turn: Turn, r: Any) -> None:
        """The run's tool steps are the record: the n-th card shows the n-th finished call's outcome
        and result (a run resumed elsewhere streamed no events here)."""
        steps = [st for st in (r.steps or []) if st.get("kind") == "tool"]
        for card, step in zip(turn.cards, steps, strict=False):
            if card.approval and card.approval == r.pending_approval:
                continue
            if card.outcome in ("running", "waiting", "approved") or card.result is None:
                card.outcome = str(step.get("outcome") or card.outcome)
                if step.get("text") is not None:
                    card.result = str(step["text"])
                card.message.value = ""
                card.render()

    def _show_answer(self, turn: Turn, text: str, sources: Any, mode: Any) -> None:
        turn.answer_html.value = (f"<div class='emergent-chat-answer' style='{_BOT_STYLE}'>{markdown_html(text)}</div>"
                                  if text.strip() else "")
        turn.sources_html.value = sources_html(sources)
        if mode:
            turn.footer_html.value = mode_html(mode, turn.status if turn.status != "running" else None)

    def _fail(self, turn: Turn, exc: BaseException) -> None:
        with self._lock:
            turn.status = "failed"
            turn.answer_html.value = (f"<div class='emergent-chat-error' style='{_BOT_STYLE}color:#cf222e'>"
                                      f"{esc(_message(exc))}</div>")
            turn.footer_html.value = mode_html(getattr(self.assistant, "mode", None), "failed")
        turn.done.set()

    # ------------------------------------------------------------------ approvals decided elsewhere
    def _ensure_poller(self) -> None:
        with self._lock:  # the poller clears _poller under this lock when it stops: none is missed
            if self._poller is None and not self._closed.is_set():
                self._poller = self._start("chat-poll", self._poll)

    def _poll(self) -> None:
        """While a run waits, ask the assistant every ``poll_s`` whether its approval was decided."""
        while not self._closed.wait(self.poll_s):
            with self._lock:
                waiting = [t for t in self.history if t.waiting and t.run_id and t.poll_errors < 5]
                if not waiting:
                    self._poller = None
                    return
            for turn in waiting:
                if not turn.busy.acquire(blocking=False):
                    continue  # a click is resuming it
                try:
                    before = (turn.result.status, turn.result.pending_approval) if turn.result else None
                    r = self.assistant.resume(turn.run_id, on_event=lambda ev, t=turn: self._event(t, ev))
                except Exception as exc:  # shown; the poll goes on (a run that keeps failing is left alone)
                    turn.poll_errors += 1
                    with self._lock:
                        self.status.value = f"<span style='color:#cf222e'>{esc(_message(exc))}</span>"
                    continue
                finally:
                    turn.busy.release()
                turn.poll_errors = 0
                if (r.status, r.pending_approval) != before:
                    self._apply(turn, r)

    def _start(self, name: str, fn: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=fn, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop polling and close the widget (its runs keep their state in the store)."""
        closed = getattr(self, "_closed", None)  # None when the constructor refused its arguments
        if closed is not None:
            closed.set()
        with contextlib.suppress(Exception):
            super().close()


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    hint = getattr(exc, "hint", None)
    return f"{msg} (hint: {hint})" if hint else msg
