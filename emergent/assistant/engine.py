"""The assistant: an agent that recalls, asks a model, acts through the gate, waits for people.

A run is a loop (the shape of smolagents' and pydantic-ai's, kept small)::

    recall what is relevant → ask the model → run the tool calls it asks for, each through the gate
    as the assistant's principal → ... → answer with the memories and tool results it used

Everything the assistant does is done as its own ``agent`` principal, so the policy decides what it
may do — the prompt and the tool list offered to the model never grant anything. A tool call the gate
answers with *ask* pauses the run: its checkpoint (emergent.assistant.store) names the approval, and
the run continues when a person decides — in this process or any other, after a restart too. A
rejection is given to the model as the tool's result. Each completed step is a checkpoint.

Without a model (``EMERGENT_LLM_MODEL`` unset) the assistant still works, deterministically: it
answers plain questions with the best passages of its memories and runs explicit commands
(emergent.assistant.offline). Every answer carries the mode that produced it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from emergent.assistant import offline
from emergent.assistant.store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL,
    RUNNING,
    STOPPED,
    WAITING,
    RunRow,
    RunStore,
)
from emergent.audit import personal_digest
from emergent.clock import Clock, SystemClock
from emergent.errors import (
    ApprovalPending,
    EmergentError,
    LLMError,
    NotFoundError,
    PermissionDenied,
    PrincipalError,
    UsageError,
    ValidationError,
)
from emergent.monitoring.context import bind_run
from emergent.principals import Principal

OFFLINE = "offline"
DEFAULT_INSTRUCTIONS = (
    "You are a research assistant working in a researcher's Jupyter workstation. Answer from the memories "
    "given below and from tool results; cite memories as [m1], [m2]. Use tools when they help; a tool the "
    "policy does not allow is refused, and some calls wait for a person's approval. Be brief and exact.")
#: longest tool result handed to the model or shown in a step
RESULT_CHARS = 4000
#: longest recalled memory kept in a run's checkpoint (a long note is not rewritten at every step)
RECALLED_CHARS = 8000
#: longest arguments (as JSON) of one tool call the model may ask for; longer ones are refused unrun
ARGS_CHARS = 100_000
_CITE = re.compile(r"\[m(\d+)\]")
#: a lone surrogate (JSON allows "\ud800"; UTF-8 cannot encode it: the audit trail would refuse the entry)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Budget:
    """Limits of one run; the first one reached stops it with that reason."""

    max_steps: int = 8
    max_tokens: int = 32_000
    max_wall_s: float = 300.0
    max_cost: float = 1.0
    #: tool calls in the whole run (one model answer may ask for many; max_steps counts answers)
    max_tool_calls: int = 64
    #: what 1,000 tokens cost (prompt and completion alike), to count model use against ``max_cost``
    token_price_per_1k: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_tokens", "max_wall_s", "max_cost", "max_tool_calls"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"budget {name} must be positive, got {getattr(self, name)!r}", field=name)
        if self.token_price_per_1k < 0:
            raise ValidationError("budget token_price_per_1k must not be negative", field="token_price_per_1k")


@dataclass(frozen=True)
class AssistantSpec:
    """Who the assistant is. ``tools``: name patterns it may be offered (``*`` = every enabled tool the
    policy does not deny it); ``scope``: its memory scope (default: its name)."""

    name: str = "assistant"
    role: str = "research assistant"
    instructions: str = DEFAULT_INSTRUCTIONS
    tools: tuple[str, ...] = ("*",)
    scope: str | None = None
    recall_k: int = 5
    budget: Budget = field(default_factory=Budget)
    remember_runs: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.recall_k <= 50:
            raise ValidationError(f"recall_k must be in [1, 50], got {self.recall_k}", field="recall_k")
        object.__setattr__(self, "tools", tuple(self.tools))

    @property
    def memory_scope(self) -> str:
        return self.scope or self.name


@dataclass
class Source:
    kind: str  # "memory" | "tool"
    ref: str
    text: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunEvent:
    type: str
    run_id: str
    data: dict[str, Any]


@dataclass
class RunResult:
    run_id: str
    assistant: str
    status: str
    stop_reason: str | None
    answer: str
    mode: str
    question: str
    asked_by: str
    sources: list[Source]
    steps: list[dict[str, Any]]
    pending_approval: str | None
    pending_tool: dict[str, Any] | None
    usage: dict[str, Any]
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, row: RunRow) -> RunResult:
        st = row.state
        pend = st.get("pending")
        return cls(row.id, row.assistant, row.status, row.stop_reason, row.answer or "", row.mode, row.question,
                   row.asked_by, [Source(**s) for s in st.get("sources", [])], list(st.get("steps", [])),
                   row.pending_approval if row.status == WAITING else None,
                   {"tool": pend["tool"], "args": pend["args"]} if pend and row.status == WAITING else None,
                   dict(st.get("usage", {})), row.created_at, row.updated_at)

    @property
    def waiting(self) -> bool:
        return self.status == WAITING

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    def __str__(self) -> str:
        if self.waiting:
            return (f"[{self.mode}] waiting for approval {self.pending_approval} to run "
                    f"{(self.pending_tool or {}).get('tool')}")
        return f"[{self.mode}] {self.answer}"


Emit = Callable[[RunEvent], None]


def _no_events(ev: RunEvent) -> None:
    return None


def tool_function_name(tool: str) -> str:
    """The model-facing name of a tool: dots become ``-`` (OpenAI names allow ``[A-Za-z0-9_-]``; our
    names never contain ``-``, so the mapping is reversible)."""
    return tool.replace(".", "-")


def tool_from_function(name: str) -> str:
    return name.replace("-", ".")


class Assistant:
    """One assistant: a spec, its agent principal, and the services it works through."""

    def __init__(self, spec: AssistantSpec, *, principal: Principal, tools: Any, memory: Any, runs: RunStore,
                 approvals: Any, audit: Any, autonomy: Any = None, llm: Any = None,
                 clock: Clock | None = None) -> None:
        if not principal.is_agent:
            raise PrincipalError(f"an assistant acts as an agent principal, not {principal.key}",
                                 hint="ws.assistant(name) creates the agent's principal")
        self.spec = spec
        self.principal = principal
        self.tools = tools
        self.memory = memory
        self.runs_store = runs
        self.approvals = approvals
        self.audit = audit
        self.autonomy = autonomy
        self.llm = llm
        self.clock = clock or SystemClock()
        self._cancel: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mode(self) -> str:
        return OFFLINE if self.llm is None else f"llm:{self.llm.id}"

    def ask(self, text: str, *, user: Principal, on_event: Emit | None = None, budget: Budget | None = None) -> RunResult:
        """Answer ``text`` (a question or a command) for ``user``; returns when the run answered, stopped,
        or waits for an approval (then :meth:`resume` or :meth:`approve` continues it)."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("ask needs a question or a command", hint="type a question, or /help")
        if _SURROGATE.search(text):
            raise ValidationError("the question contains a lone surrogate (text that is not valid Unicode)",
                                  hint="send it again as plain UTF-8 text")
        if len(text) > 100_000:
            raise ValidationError(f"the question is {len(text)} characters long; at most 100,000",
                                  hint="put long material in memory (ingest) and ask about it")
        who = self._verify(user)
        emit = on_event or _no_events
        command = offline.parse_command(text)
        kind = "command" if command is not None else "chat"
        state: dict[str, Any] = {"kind": kind, "messages": [], "queue": [], "pending": None, "sources": [],
                                 "steps": [], "usage": {"steps": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                                        "wall_s": 0.0, "cost": 0.0, "tool_calls": 0},
                                 "budget": asdict(budget or self.spec.budget), "asked_by_human": who.is_human,
                                 "tools": list(self.spec.tools)}  # a run resumed elsewhere keeps its tools
        mode = self.mode if kind == "chat" else OFFLINE
        self.audit.append("assistant.run_started", self.principal, {
            "assistant": self.name, "asked_by": who.key, "mode": mode, "kind": kind,
            "question": personal_digest(text)},  # the run row holds it; an erasure can redact that, not the chain
            durable=True)
        row = self.runs_store.create(assistant=self.name, principal=self.principal.key, asked_by=who.key, mode=mode,
                                     question=text, state=state)
        with bind_run(row.id):  # every log line of the run names it (emergent.monitoring)
            emit(RunEvent("started", row.id, {"question": text, "mode": mode, "asked_by": who.key}))
            t0 = time.monotonic()
            try:
                if command is not None:
                    return self._command(row, command, who, emit, t0)
                return self._open_chat(row, emit, t0)
            except EmergentError as exc:
                return self._fail(row, exc, emit, t0)

    def _open_chat(self, row: RunRow, emit: Emit, t0: float) -> RunResult:
        text = row.question
        full = self._recall(row, text, emit)
        if self.llm is None:
            hits = [s for s in full if not s.get("run_log")] or full
            return self._finish(row, COMPLETED, "answered", offline.answer_from_memory(text, hits), emit, t0)
        row.state["messages"] = self._opening(text, row.state["recalled"])
        return self._drive(row, emit, t0)

    def resume(self, run_id: str, *, on_event: Emit | None = None) -> RunResult:
        """Continue run ``run_id``: once its approval is decided, or after the process driving it died."""
        emit = on_event or _no_events
        row = self.runs_store.get(run_id)
        self._mine(row)
        if row.status in FINAL:
            return RunResult.of(row)
        if row.status == WAITING:
            a = self.approvals.get(row.pending_approval)
            if a.status == "pending" and self.clock.now() >= a.expires_at:
                self.approvals.expire_due()  # nobody decided in time: it was rejected, and the run goes on
                a = self.approvals.get(row.pending_approval)
            if a.status == "pending":
                return RunResult.of(row)
        elif not self.runs_store.abandoned(row):
            return RunResult.of(row)  # another process drives it now
        if not self.runs_store.claim(row):
            return RunResult.of(self.runs_store.get(run_id))  # someone else continued it first
        self.audit.append("assistant.resumed", self.principal, {"run": run_id, "approval": row.pending_approval,
                                                                "after": "approval" if row.pending_approval else
                                                                "abandoned"}, durable=True)
        t0 = time.monotonic()
        try:
            self._settle_pending(row, emit)
            # The settled call's outcome is saved before anything else runs: it may have changed something,
            # and after a crash it must not be the head of the queue again (what is behind it would repeat).
            if not self._checkpoint(row, t0):
                return RunResult.of(self.runs_store.get(run_id))
            if row.state["kind"] == "chat" and not row.state["messages"]:
                return self._open_chat(row, emit, t0)  # it died before its opening: recall again (a read)
            if row.state["kind"] == "command":
                tools = [s for s in row.state["steps"] if s.get("kind") == "tool"]
                if not tools:  # it died before a tool call was checkpointed (or in /approve, /reject)
                    return self._finish(row, FAILED, "error", "Outcome unknown: the process running this command "
                                        "stopped before its outcome was recorded; check before repeating it.",
                                        emit, t0)
                return self._finish(row, COMPLETED, "answered", _command_answer(tools[-1]), emit, t0)
            return self._drive(row, emit, t0)
        except EmergentError as exc:
            return self._fail(row, exc, emit, t0)

    def resume_decided(self, *, on_event: Emit | None = None) -> list[RunResult]:
        """Continue every waiting run of this assistant whose approval a person decided, and every run
        whose driving process died."""
        out = []
        for row in self.runs_store.list(self.name, status=WAITING, limit=200):
            if self.approvals.get(row.pending_approval).status != "pending":
                out.append(self.resume(row.id, on_event=on_event))
        for row in self.runs_store.list(self.name, status=RUNNING, limit=200):
            if self.runs_store.abandoned(row):
                out.append(self.resume(row.id, on_event=on_event))
        return out

    def approve(self, approval_id: str, *, by: Principal, reason: str = "",
                on_event: Emit | None = None) -> RunResult | None:
        """A person approves ``approval_id``; the run waiting on it (if any) continues at once."""
        self.approvals.approve(approval_id, by=by, reason=reason)
        return self._continue_waiting(approval_id, on_event)

    def reject(self, approval_id: str, *, by: Principal, reason: str = "",
               on_event: Emit | None = None) -> RunResult | None:
        """A person rejects ``approval_id``; the run waiting on it is told, and continues without it."""
        self.approvals.reject(approval_id, by=by, reason=reason)
        return self._continue_waiting(approval_id, on_event)

    def _continue_waiting(self, approval_id: str, on_event: Emit | None) -> RunResult | None:
        row = self.runs_store.waiting_on(approval_id)
        if row is None or row.assistant != self.name:
            return None
        return self.resume(row.id, on_event=on_event)

    def get(self, run_id: str) -> RunResult:
        row = self.runs_store.get(run_id)
        self._mine(row)
        return RunResult.of(row)

    def runs(self, limit: int = 20, *, status: str | None = None) -> list[RunResult]:
        return [RunResult.of(r) for r in self.runs_store.list(self.name, status=status, limit=limit)]

    def cancel(self, run_id: str, *, by: Principal) -> RunResult:
        """Stop a run: the asker, a human or the assistant itself may. A pending approval is withdrawn."""
        who = self._verify(by)
        row = self.runs_store.get(run_id)
        self._mine(row)
        if not (who.is_human or who.key in (row.asked_by, self.principal.key)):
            raise PrincipalError(f"{who.key} may not cancel run {run_id}",
                                 hint="the person who asked, a human, or the assistant itself may")
        if row.status in FINAL:
            return RunResult.of(row)
        self.audit.append("assistant.cancelled", who, {"run": run_id, "assistant": self.name}, durable=True)
        with self._lock:
            self._cancel.add(run_id)
        if row.status == WAITING and row.pending_approval:
            with contextlib.suppress(UsageError):  # decided meanwhile
                self.approvals.reject(row.pending_approval, by=self.principal, reason=f"run cancelled by {who.key}")
        row.state["steps"].append({"n": len(row.state["steps"]) + 1, "kind": "cancel", "by": who.key})
        for _ in range(5):
            if self.runs_store.save(row, status=CANCELLED, stop_reason="cancelled", pending_approval=None,
                                    answer=row.answer or f"Cancelled by {who.key}."):
                break
            row = self.runs_store.get(run_id)  # the driver checkpointed meanwhile: cancel the newest state
            if row.status in FINAL:
                break
        return RunResult.of(self.runs_store.get(run_id))

    def tool_schemas(self, patterns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The tools offered to the model: enabled tools matching the spec (or ``patterns``) that the
        policy does not deny this assistant (the gate decides again, call by call)."""
        patterns = tuple(self.spec.tools if patterns is None else patterns)
        out = []
        for info in self.tools.list():
            if not info.enabled or info.deprecated:
                continue
            if not any(fnmatch.fnmatchcase(info.name, pat) for pat in patterns):
                continue
            if self.autonomy is not None:
                d = self.autonomy.explain(self.principal.key, info.name, side_effect=info.side_effect,
                                          resource=self.spec.memory_scope if info.name.startswith("memory.") else "")
                if d.effect == "deny":
                    continue
            spec = self.tools.resolve(info.name)
            out.append({"type": "function", "function": {
                "name": tool_function_name(info.name),
                "description": (info.description or info.name)[:1000] + f" (side effect: {info.side_effect})",
                "parameters": spec.args_schema}})
        return out

    # ------------------------------------------------------------------ the loop
    def _opening(self, question: str, recalled: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines = [f"[m{i}] {h['text'][:1200]}" for i, h in enumerate(recalled, 1)]
        memories = "\n".join(lines) if lines else "(no memories matched)"
        system = (f"{self.spec.instructions}\n\nYou are {self.name}, a {self.spec.role}. Your memory scope is "
                  f"{self.spec.memory_scope!r}.\n\nMemories relevant to the question:\n{memories}")
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]

    def _drive(self, row: RunRow, emit: Emit, t0: float) -> RunResult:
        with bind_run(row.id):  # every log line of the run names it (emergent.monitoring)
            return self._drive_run(row, emit, t0)

    def _drive_run(self, row: RunRow, emit: Emit, t0: float) -> RunResult:
        st = row.state
        budget = Budget(**st["budget"])
        schemas = self.tool_schemas(st.get("tools"))
        # The model may call only what it was offered, by the exact offered name: not a look-alike,
        # a version pin, a deprecated version, nor a tool outside the spec's patterns (the gate would
        # still decide, but a person would be asked to approve what this assistant was never given).
        offered = {tool_from_function(s["function"]["name"]) for s in schemas}
        unsaved = False  # a read's outcome not checkpointed yet
        while True:
            stop = self._over_budget(row, budget, t0)
            if stop:
                return self._finish(row, STOPPED, stop, self._partial(row, stop), emit, t0)
            if st["queue"]:
                call = st["queue"][0]
                changes = self._changes(call["tool"]) and call["tool"] in offered
                if changes and unsaved:
                    # The checkpoint must show this change at the head of the queue before it runs: after
                    # a crash the head is reported unknown, and everything behind it would run again.
                    if not self._checkpoint(row, t0):
                        return RunResult.of(self.runs_store.get(row.id))
                    unsaved = False
                paused = self._run_tool(row, call, emit, offered=offered)
                if paused is not None:
                    return self._pause(row, paused, emit, t0)
                st["queue"].pop(0)
                # A change's outcome is checkpointed at once; a read's rides on the next checkpoint (after
                # the model's next answer): lost in a crash, it is reported unknown, and a read may repeat.
                if changes:
                    if not self._checkpoint(row, t0):
                        return RunResult.of(self.runs_store.get(row.id))
                else:
                    unsaved = True
                continue
            halted = self._halted()
            if halted:  # paused or suspended: no request leaves with the run's memories, nothing more runs
                raise PermissionDenied(halted, hint="a human resumes autonomy (or unsuspends the assistant); "
                                                    "then ask again")
            n = st["usage"]["steps"] + 1
            tm = time.perf_counter()
            res = _clean(self._model(row, schemas, emit))  # the model's text can be anything JSON allows
            unsaved = False
            st["usage"]["steps"] = n
            st["usage"]["prompt_tokens"] += res.prompt_tokens
            st["usage"]["completion_tokens"] += res.completion_tokens
            st["usage"]["cost"] += (res.prompt_tokens + res.completion_tokens) / 1000 * budget.token_price_per_1k
            calls = [_bounded({"id": c.id, "tool": tool_from_function(c.name), "args": c.arguments})
                     for c in res.tool_calls]
            st["steps"].append({"n": len(st["steps"]) + 1, "kind": "model", "tool_calls": [c["tool"] for c in calls],
                                "tokens": res.prompt_tokens + res.completion_tokens,
                                "ms": round((time.perf_counter() - tm) * 1e3, 2)})
            self.audit.append("assistant.step", self.principal, {
                "run": row.id, "step": n, "model": res.model, "finish": res.finish_reason,
                "tool_calls": [{"tool": c["tool"], "args": self._audit_args(c["tool"], c["args"])} for c in calls],
                "tokens": res.prompt_tokens + res.completion_tokens, "content": personal_digest(res.content or "")})
            if not calls:
                return self._finish(row, COMPLETED, "answered", res.content or "", emit, t0)
            st["messages"].append({"role": "assistant", "content": res.content, "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": tool_function_name(c["tool"]), "arguments": json.dumps(c["args"])}}
                for c in calls]})
            st["queue"] = calls
            if not self._checkpoint(row, t0):
                return RunResult.of(self.runs_store.get(row.id))

    def _changes(self, tool: str) -> bool:
        try:
            return bool(self.tools.resolve(tool).side_effect != "read")
        except EmergentError:
            return False  # an unknown tool never ran

    def _model(self, row: RunRow, schemas: list[dict[str, Any]], emit: Emit) -> Any:
        assert self.llm is not None
        msgs = row.state["messages"]
        stream = getattr(self.llm, "stream", None)
        if stream is not None:
            return stream(msgs, tools=schemas or None,
                          on_token=lambda t: emit(RunEvent("token", row.id, {"text": offline.shown(t)})))
        res = self.llm.chat(msgs, tools=schemas or None)
        if res.content:
            emit(RunEvent("token", row.id, {"text": offline.shown(res.content)}))
        return res

    def _run_tool(self, row: RunRow, call: dict[str, Any], emit: Emit, confidence: float | None = None,
                  offered: set[str] | None = None) -> dict[str, Any] | None:
        """Run one tool call through the gate; returns the pending approval when the gate asks.
        ``offered``: the tool names the model was offered (a model's call must name one of them)."""
        st = row.state
        tool, args = call["tool"], call["args"]
        emit(RunEvent("tool_call", row.id, {"tool": tool, "args": args}))
        st["usage"]["tool_calls"] += 1
        tm = time.perf_counter()
        if call.get("too_big"):
            self._tool_done(row, call, "error", f"error: the arguments are {call['too_big']:,} characters long "
                                                f"(at most {ARGS_CHARS:,}); it did not run", emit, tm)
            return None
        if offered is not None and tool not in offered:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.tools.resolve(tool)
            except EmergentError as exc:  # no such tool (or disabled): say so, as the registry does
                self._tool_done(row, call, "error", f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""),
                                emit, tm)
                return None
            self._tool_done(row, call, "denied", f"refused: {tool!r} is not offered to {self.name}; call one "
                                                 "of the offered tools by its exact name", emit, tm)
            return None
        try:
            result = self.tools.call(tool, args, principal=self.principal, confidence=confidence, wait=False)
        except ApprovalPending as exc:
            aid = exc.fields.get("approval")
            return {"call": call, "approval": aid, "tool": tool, "args": args, "reason": exc.message}
        except PermissionDenied as exc:
            self._tool_done(row, call, "denied", f"refused: {exc.message}", emit, tm)
            return None
        except EmergentError as exc:
            self._tool_done(row, call, "error", f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""),
                            emit, tm)
            return None
        self._tool_done(row, call, "ok", result, emit, tm)
        return None

    def _tool_done(self, row: RunRow, call: dict[str, Any], outcome: str, result: Any, emit: Emit,
                   tm: float | None = None) -> None:
        st = row.state
        text = offline.format_result(result, limit=RESULT_CHARS)
        try:
            spec = self.tools.resolve(call["tool"])
            st["usage"]["cost"] += float(spec.cost or 0.0) if outcome == "ok" else 0.0
        except EmergentError:
            pass
        st["steps"].append({"n": len(st["steps"]) + 1, "kind": "tool", "tool": call["tool"], "args": call["args"],
                            "outcome": outcome, "text": text,
                            "ms": round((time.perf_counter() - tm) * 1e3, 2) if tm is not None else None})
        if outcome == "ok":
            st["sources"].append(Source("tool", f"{call['tool']}#{call.get('id', '')}", text[:500]).to_dict())
        if st["kind"] == "chat":
            st["messages"].append({"role": "tool", "tool_call_id": call["id"], "content": text})
        emit(RunEvent("tool_result", row.id, {"tool": call["tool"], "outcome": outcome, "result": text[:1000]}))

    def _pause(self, row: RunRow, pending: dict[str, Any], emit: Emit, t0: float) -> RunResult:
        row.state["pending"] = pending
        self.audit.append("assistant.paused", self.principal, {"run": row.id, "approval": pending["approval"],
                                                               "tool": pending["tool"]}, durable=True)
        self._account(row, t0)
        if not self.runs_store.save(row, status=WAITING, stop_reason="approval", pending_approval=pending["approval"]):
            return RunResult.of(self.runs_store.get(row.id))
        emit(RunEvent("approval", row.id, {"approval": pending["approval"], "tool": pending["tool"],
                                           "args": pending["args"], "reason": pending["reason"]}))
        emit(RunEvent("stopped", row.id, {"status": WAITING, "stop_reason": "approval"}))
        return RunResult.of(row)

    def _settle_pending(self, row: RunRow, emit: Emit) -> None:
        """After a pause (or a crash): the pending call's outcome becomes the tool's result."""
        st = row.state
        pending = st.get("pending")
        if pending is None:
            if st["queue"]:  # the driver died while this call may have run: never run it twice
                call = st["queue"].pop(0)
                self._tool_done(row, call, "error", "outcome unknown: the process running this call stopped "
                                                    "before it finished; check before repeating it", emit)
            return
        call, aid = pending["call"], pending["approval"]
        a = self.approvals.get(aid)
        tm = time.perf_counter()
        if a.actor != self.principal.key or a.tool.partition("@")[0] != call["tool"].partition("@")[0].strip():
            # A checkpoint naming a request this run did not file (edited in SQL): never run or use it up.
            self._tool_done(row, call, "error", f"error: approval {aid} is not this run's request (it is "
                                                f"{a.actor}'s, for {a.tool}); nothing ran", emit, tm)
        elif a.status == "approved":
            emit(RunEvent("tool_call", row.id, {"tool": call["tool"], "args": call["args"], "approval": aid}))
            try:
                result = self.tools.resume(aid)
            except PermissionDenied as exc:
                self._tool_done(row, call, "denied", f"refused: {exc.message}", emit, tm)
            except EmergentError as exc:
                self._tool_done(row, call, "error", f"error: {exc.message}", emit, tm)
            else:
                self._tool_done(row, call, "ok", result, emit, tm)
        elif a.status == "consumed":
            self._tool_done(row, call, "error", f"approval {aid} was used outside this run (by call "
                                                f"{a.consumed_by}); its result is not known here", emit, tm)
        else:
            self._tool_done(row, call, "rejected", f"{a.status} by {a.decided_by}: "
                                                   f"{a.decision_reason or 'no reason given'}; it did not run",
                            emit, tm)
        st["pending"] = None
        if st["queue"] and st["queue"][0].get("id") == call.get("id"):
            st["queue"].pop(0)
        row.pending_approval = None

    def _command(self, row: RunRow, cmd: offline.Command, who: Principal, emit: Emit, t0: float) -> RunResult:
        st = row.state
        st["steps"].append({"n": 1, "kind": "command", "command": cmd.name})
        confidence = 1.0 if who.is_human else None  # a person typed exactly this action
        if cmd.name == "help":
            return self._finish(row, COMPLETED, "answered", "\n".join(offline.COMMANDS.values()), emit, t0)
        if cmd.name == "status":
            return self._finish(row, COMPLETED, "answered", self._status_text(), emit, t0)
        if cmd.name == "recall":
            self._recall(row, cmd.text, emit)
            hits = st["recalled"]
            text = "\n".join(f"{i}. {h['text'][:300]} [{h['id']}] (score {h['score']:.3f})"
                             for i, h in enumerate(hits, 1)) or "(no memories matched)"
            return self._finish(row, COMPLETED, "answered", text, emit, t0)
        if cmd.name in ("approve", "reject"):
            return self._decide_command(row, cmd, who, emit, t0)
        if cmd.name == "remember":
            call = {"id": "cmd", "tool": "memory.remember", "args": {"text": cmd.text,
                                                                     "scope": self.spec.memory_scope}}
        else:
            call = {"id": "cmd", "tool": cmd.tool, "args": cmd.args or {}}
            name = cmd.tool.partition("@")[0].strip()
            patterns = st.get("tools") or self.spec.tools
            if not any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
                self._tool_done(row, call, "denied", f"refused: {name!r} is not offered to {self.name} (its tools: "
                                                     f"{', '.join(patterns)}); ws.tools.call runs it as you", emit)
                return self._finish(row, COMPLETED, "answered", _command_answer(st["steps"][-1]), emit, t0)
        st["queue"] = [call]
        # The call is checkpointed at the head of the queue before it runs: after a crash it is reported
        # unknown (never run again), not taken for a command that did nothing.
        if not self._checkpoint(row, t0):
            return RunResult.of(self.runs_store.get(row.id))
        paused = self._run_tool(row, call, emit, confidence=confidence)
        if paused is not None:
            return self._pause(row, paused, emit, t0)
        st["queue"] = []
        return self._finish(row, COMPLETED, "answered", _command_answer(st["steps"][-1]), emit, t0)

    def _decide_command(self, row: RunRow, cmd: offline.Command, who: Principal, emit: Emit, t0: float) -> RunResult:
        fn = self.approve if cmd.name == "approve" else self.reject
        resumed = fn(cmd.target, by=who, reason=cmd.text, on_event=emit)
        verb = "approved" if cmd.name == "approve" else "rejected"
        if resumed is None:
            text = f"{verb} {cmd.target} (no run of {self.name} was waiting on it)"
        else:
            text = f"{verb} {cmd.target}; run {resumed.run_id} is {resumed.status}" + \
                (f":\n{resumed.answer}" if resumed.answer else "")
            row.state["sources"] = [s.to_dict() for s in resumed.sources]
        return self._finish(row, COMPLETED, "answered", text, emit, t0)

    def _status_text(self) -> str:
        waiting = self.runs_store.list(self.name, status=WAITING, limit=20)
        lines = [f"{self.name}: {self.principal.key}, mode {self.mode}, memory scope {self.spec.memory_scope!r}",
                 f"tools offered: {', '.join(tool_from_function(s['function']['name']) for s in self.tool_schemas())}"]
        lines += [f"waiting: run {r.id} for approval {r.pending_approval} ({(r.state.get('pending') or {}).get('tool')})"
                  for r in waiting] or ["no run is waiting for an approval"]
        return "\n".join(lines)

    def _recall(self, row: RunRow, query: str, emit: Emit) -> list[dict[str, Any]]:
        """Recall through the gate (a read of the assistant's own scope) and keep the hits as sources."""
        tm = time.perf_counter()
        hits = self.tools.call("memory.recall", {"query": query[:4000], "k": self.spec.recall_k,
                                                 "scope": self.spec.memory_scope}, principal=self.principal)
        recalled = []
        for h in hits:
            rec = {"id": h["id"], "text": offline.shown(h["text"]), "score": float(h["score"])}
            if (h.get("meta") or {}).get("assistant_run"):
                rec["run_log"] = True  # what an earlier run said, not what the researcher taught
            recalled.append(rec)
        row.state["recalled"] = [{**h, "text": h["text"][:RECALLED_CHARS]} for h in recalled]
        row.state["sources"].extend(Source("memory", h["id"], h["text"][:500], h["score"]).to_dict() for h in recalled)
        row.state["steps"].append({"n": len(row.state["steps"]) + 1, "kind": "recall", "hits": len(recalled),
                                   "ms": round((time.perf_counter() - tm) * 1e3, 2)})
        emit(RunEvent("recall", row.id, {"hits": [Source("memory", h["id"], h["text"][:500], h["score"]).to_dict()
                                                  for h in recalled]}))
        return recalled

    # ------------------------------------------------------------------ endings
    def _over_budget(self, row: RunRow, budget: Budget, t0: float) -> str | None:
        u = row.state["usage"]
        with self._lock:
            if row.id in self._cancel:
                return "cancelled"
        if u["steps"] >= budget.max_steps and not row.state["queue"]:
            return "max_steps"
        if u.get("tool_calls", 0) >= budget.max_tool_calls and row.state["queue"]:
            return "max_tool_calls"
        if u["prompt_tokens"] + u["completion_tokens"] >= budget.max_tokens:
            return "max_tokens"
        if u["wall_s"] + (time.monotonic() - t0) >= budget.max_wall_s:
            return "wall_time"
        if u["cost"] >= budget.max_cost:
            return "cost"
        return None

    def _partial(self, row: RunRow, reason: str) -> str:
        done = [s for s in row.state["steps"] if s["kind"] == "tool"]
        what = {"max_steps": "the step budget", "max_tokens": "the token budget", "wall_time": "the time budget",
                "cost": "the cost budget", "max_tool_calls": "the tool-call budget",
                "cancelled": "a cancellation"}.get(reason, reason)
        tail = "; ".join(f"{s['tool']}: {s['outcome']}" for s in done[-5:])
        return f"Stopped by {what} before an answer." + (f" Tool calls so far: {tail}." if tail else "")

    def _account(self, row: RunRow, t0: float) -> None:
        row.state["usage"]["wall_s"] = round(row.state["usage"]["wall_s"] + (time.monotonic() - t0), 4)

    def _checkpoint(self, row: RunRow, t0: float) -> bool:
        """Save the run after a completed step (False: someone else owns it now — stop driving)."""
        u = row.state["usage"]
        wall = u["wall_s"]
        u["wall_s"] = round(wall + (time.monotonic() - t0), 4)
        ok = self.runs_store.save(row)
        u["wall_s"] = wall  # the running segment keeps counting from t0
        return ok

    def _finish(self, row: RunRow, status: str, reason: str, answer: str, emit: Emit, t0: float) -> RunResult:
        st = row.state
        answer = _scrub(answer, text=True)  # a tool's result or error in it may hold anything
        if status == COMPLETED and st["kind"] == "chat" and self.llm is not None:
            st["sources"] = self._cited(st["sources"], answer)
        self._account(row, t0)
        with self._lock:
            if reason == "cancelled" or row.id in self._cancel:
                status, reason = CANCELLED, "cancelled"
            self._cancel.discard(row.id)
        if status == COMPLETED and st["kind"] == "chat" and self.spec.remember_runs:
            self._remember_run(row, answer)
        self.audit.append("assistant.run_finished", self.principal, {
            "run": row.id, "status": status, "stop_reason": reason, "answer": personal_digest(answer),
            "sources": [s["ref"] for s in st["sources"]][:50], "usage": st["usage"]}, durable=True)
        if not self.runs_store.save(row, status=status, stop_reason=reason, answer=answer, pending_approval=None):
            return RunResult.of(self.runs_store.get(row.id))
        result = RunResult.of(row)
        emit(RunEvent("answer", row.id, {"text": answer, "sources": [s.to_dict() for s in result.sources],
                                         "mode": row.mode}))
        emit(RunEvent("stopped", row.id, {"status": status, "stop_reason": reason}))
        return result

    def _fail(self, row: RunRow, exc: EmergentError, emit: Emit, t0: float) -> RunResult:
        """A run that cannot go on: say why; without a model's answer, fall back on the memory passages."""
        st = row.state
        st["steps"].append({"n": len(st["steps"]) + 1, "kind": "error", "error": type(exc).__name__,
                            "text": offline.shown(exc.message)})
        text = f"I could not finish: {exc.message}" + (f" — {exc.hint}" if exc.hint else "")
        if isinstance(exc, LLMError) and st.get("recalled"):
            text += "\n\n" + offline.answer_from_memory(row.question, st["recalled"])
        return self._finish(row, FAILED, "error", text, emit, t0)

    def _cited(self, sources: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
        """The sources an answer used: the memories it cites as [mN] (all recalled ones when it cites none)
        and every tool result."""
        cited = {int(m) for m in _CITE.findall(answer)}
        mems = [s for s in sources if s["kind"] == "memory"]
        if cited:
            mems = [s for i, s in enumerate(mems, 1) if i in cited]
        return mems + [s for s in sources if s["kind"] == "tool"]

    def _audit_args(self, tool: str, args: Any) -> Any:
        """A model's tool call as the audit trail keeps it: personal arguments (a memory's text) as their
        digest, like the runner's own entries; an unknown tool's arguments are all digested."""
        from emergent.tools.runner import without_personal

        try:
            spec = self.tools.resolve(tool)
        except Exception:  # noqa: BLE001 - a name the model invented: keep nothing of what it sent
            return personal_digest(args)
        return without_personal(spec, args)

    def _remember_run(self, row: RunRow, answer: str) -> None:
        """Remember what happened (only when something did: a model's answer or tool results)."""
        tools = [s["tool"] for s in row.state["steps"] if s["kind"] == "tool"]
        if self.llm is None and not tools:
            return  # an offline answer is made of memories already held
        if self.autonomy is not None:  # not asked for (by design), but never against a deny, a pause or a suspension
            d = self.autonomy.explain(self.principal.key, "memory.remember", side_effect="write",
                                      resource=self.spec.memory_scope)
            if d.effect == "deny":
                row.state["steps"].append({"n": len(row.state["steps"]) + 1, "kind": "error", "error": "PermissionDenied",
                                           "text": f"not remembered: {d.reason}"})
                return
        text = (f"{row.asked_by} asked: {row.question[:1000]}\nI answered ({row.mode}): {answer[:2000]}"
                + (f"\nTools used: {', '.join(tools)}" if tools else ""))
        self.audit.append("assistant.remembered", self.principal, {"run": row.id, "scope": self.spec.memory_scope,
                                                                   "chars": len(text)}, durable=True)
        try:
            self.memory.remember(text, kind="episodic", importance=0.3, scope=self.spec.memory_scope,
                                 meta={"assistant_run": row.id, "asked_by": row.asked_by, "tools": tools})
        except EmergentError as exc:  # the answer stands; say that it was not remembered
            row.state["steps"].append({"n": len(row.state["steps"]) + 1, "kind": "error",
                                       "error": type(exc).__name__, "text": f"not remembered: {exc.message}"})

    # ------------------------------------------------------------------ checks
    def _halted(self) -> str | None:
        """Why this assistant may not act now (autonomy paused, or it is suspended), else None."""
        if self.autonomy is None:
            return None
        snap = self.autonomy.snapshot()
        if snap.paused is not None:
            return f"autonomy is paused by {snap.paused['by']}: {snap.paused['reason']}"
        s = snap.suspended.get(self.principal.key)
        if s is not None:
            return f"{self.principal.key} is suspended by {s['by']}: {s['reason']}"
        return None

    def _verify(self, who: Any) -> Principal:
        verify = getattr(getattr(self.autonomy, "principals", None), "verify", None)
        if verify is not None:
            return verify(who)  # type: ignore[no-any-return]
        if not isinstance(who, Principal):
            raise PrincipalError(f"{who!r} is not a principal", hint="pass user=ws.principal")
        return who

    def _mine(self, row: RunRow) -> None:
        if row.assistant != self.name:
            raise NotFoundError(f"run {row.id} belongs to assistant {row.assistant!r}, not {self.name!r}",
                                hint=f"ws.assistant({row.assistant!r}).resume(...)", run=row.id)

    def with_budget(self, **limits: Any) -> Assistant:
        """This assistant with other budget limits (same principal and services)."""
        spec = replace(self.spec, budget=replace(self.spec.budget, **limits))
        return Assistant(spec, principal=self.principal, tools=self.tools, memory=self.memory, runs=self.runs_store,
                         approvals=self.approvals, audit=self.audit, autonomy=self.autonomy, llm=self.llm,
                         clock=self.clock)


def _scrub(value: Any, *, text: bool = False) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD (strings inside lists and dicts too);
    ``text``: something a surface shows, so without terminal control characters either."""
    if isinstance(value, str):
        return offline.shown(value) if text else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _clean(res: Any) -> Any:
    """A model's answer whose text, tool names, ids and arguments are all encodable."""
    if not hasattr(res, "tool_calls"):  # a ChatResult (a dataclass) of emergent.providers.llm
        return res
    calls = [replace(c, id=_scrub(c.id), name=_scrub(c.name), arguments=_scrub(c.arguments)) for c in res.tool_calls]
    return replace(res, content=_scrub(res.content, text=True), model=_scrub(res.model, text=True),
                   finish_reason=_scrub(res.finish_reason, text=True), tool_calls=calls)


def _bounded(call: dict[str, Any]) -> dict[str, Any]:
    """A model's tool call whose arguments are too long to keep is marked and kept without them."""
    size = len(json.dumps(call["args"], default=str))
    if size <= ARGS_CHARS:
        return call
    return {**call, "args": {"omitted": f"{size:,} characters of arguments"}, "too_big": size}


def _command_answer(step: dict[str, Any]) -> str:
    """What a command run answers: the tool's result, or why it did not run."""
    tool, outcome, text = step.get("tool", ""), step.get("outcome"), step.get("text", "")
    if outcome == "ok" and tool == "memory.remember":
        return f"Remembered (memory {text})."
    if outcome == "ok":
        return f"{tool} returned: {text}"
    return f"{tool} did not run: {text}" if outcome in ("denied", "rejected") else f"{tool} failed: {text}"


__all__ = ["OFFLINE", "Assistant", "AssistantSpec", "Budget", "RunEvent", "RunResult", "Source",
           "tool_from_function", "tool_function_name"]

