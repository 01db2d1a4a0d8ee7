"""The engine: one run, driven event by event.

A step is started the moment the steps it depends on are final. Its outcome is handled on the thread
that produced it, under the run's lock, and whatever became ready is started from there: on a threads
executor ready ``call`` steps go to a queue that at most ``max_workers`` runner tasks drain (a runner
takes the step it just made ready itself, so a chain stays on one thread); other steps get a future
whose done-callback does the same. The driver thread only keeps time (timeouts, retry delays), writes
the group commit and renews the lease. There are no rounds: a slow branch never holds a fast one
(LangGraph's supersteps would).

Checkpoints (``workflow_steps``): a step that crosses the gate (tool, notebook, assistant,
sub-workflow) is recorded ``running`` in one transaction before its side effect starts and
``completed`` with its output in another after it ends. ``call`` steps (pure Python compute, no
side effect) are group-committed: their completions are buffered and written with one
``executemany`` at most ``flush_s`` (20 ms) later or every 512 rows, always before
a gate-crossing step starts and before the run pauses, waits or ends (``checkpoint="each"`` writes
every one at once instead). A process killed before a flush runs those pure steps again on resume;
no side effect repeats. A gate-crossing step found ``running`` on resume (its process died during
it) is run again only when that is safe: a read-only tool, a sub-workflow (it resumes from its own
checkpoints), or a step with ``retries`` left; otherwise it fails, saying it may have taken effect.

Failure: a step that raises, times out (``timeout_s``) or returns the wrong type (``output``) is
retried (``retries``, ``retry_delay_s``); when it still fails, no new step starts, the running ones
finish, and the completed steps with a ``compensate`` action are undone in reverse completion order.
A step whose tool call waits for a person's approval is ``waiting_approval``; the other branches go
on, and the run waits (releasing its lease) once nothing else can run.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emergent.errors import (
    AuditWriteError,
    EmergentError,
    PermissionDenied,
    PrincipalError,
    TimeoutExceeded,
    UsageError,
    ValidationError,
)
from emergent.workflows._gate import StepFailed, WaitingForApproval, child_run_id, run_gate_step
from emergent.workflows._refs import Missing as _Missing
from emergent.workflows._refs import holds, resolve, type_ok
from emergent.workflows.spec import Step, Workflow, refs_in
from emergent.workflows.store import (
    CANCELLED,
    COMPENSATED,
    COMPLETED,
    FAILED,
    PAUSED,
    PENDING,
    RUNNING,
    SKIPPED,
    WAITING,
    RunStore,
    StepRow,
    step_tuple,
)

log = logging.getLogger("emergent.workflows")

FLUSH_S = 0.02
FLUSH_ROWS = 512


def _invoke(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """What an executor runs for a ``call`` step (module level: a Dask worker imports it)."""
    return fn(**kwargs)


# ---------------------------------------------------------------- state
@dataclass(slots=True, eq=False)
class Node:
    key: str
    step: Step
    item: Any = None
    status: str = PENDING
    attempt: int = 0
    output: Any = None
    error: str | None = None
    approval_id: str | None = None
    seq: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    persisted: bool = False
    token: int = 0
    future: Any = None
    resume: StepRow | None = None  # what a previous process left (resume)


@dataclass(slots=True, eq=False)
class Group:
    step: Step
    deps: list[str]
    dependents: list[str] = field(default_factory=list)
    waiting: int = 0
    nodes: list[Node] = field(default_factory=list)
    remaining: int = 0
    status: str = PENDING
    has_refs: bool = False


@dataclass
class Context:
    """What a driver needs from the service (injected; the engine never sees a Workstation)."""

    store: RunStore
    services: Any
    audit: Any
    clock: Any
    executor: Any
    pool: cf.ThreadPoolExecutor
    owner: str
    run_child: Callable[..., Any]
    checkpoint: str = "batched"
    flush_s: float = FLUSH_S


class Driver:
    """Drives one run to its end, a pause, a wait for approval, or a cancel."""

    def __init__(self, ctx: Context, *, run_id: str, workflow: Workflow, inputs: dict[str, Any], principal: Any,
                 prior: list[StepRow] | None = None) -> None:
        self.ctx, self.run_id, self.wf, self.inputs, self.principal = ctx, run_id, workflow, inputs, principal
        self._now = ctx.clock.now
        self.cv = threading.Condition()  # guards everything below; held briefly, never while a step runs
        self._write_lock = threading.Lock()  # checkpoints are written one at a time, in the order taken
        self._runners_max = int(getattr(ctx.executor, "runners", 0))  # threads executor: queue + runners
        self._rlock = threading.Lock()
        self._calls: deque[tuple[str, Node, int, Any]] = deque()
        self._runners = 0
        self._work: list[tuple[str, Node, int, Any]] = []
        self._cancels: list[Any] = []
        self._quiet: list[str] = []  # call steps completed since the last checkpoint (audited with it)
        self._skipped: list[str] = []
        self.groups: dict[str, Group] = {}
        self.nodes: dict[str, Node] = {}
        self.outputs: dict[str, Any] = {}
        self.active = 0
        self.timers: list[tuple[float, int, str, str, int]] = []
        self.retrying = 0  # retry timers pending
        self._tick = 0
        self.seq = 0
        self.rows_new: list[tuple[Any, ...]] = []
        self.rows_upd: list[tuple[Any, ...]] = []
        self.flush_at: float | None = None
        self.stop: str | None = None  # paused | cancelled | failed
        self.error: str | None = None
        self.done = threading.Event()
        self.result_status: str | None = None
        self.started = time.perf_counter()
        self.wall_s = 0.0
        self.ended_at = float("inf")  # when the service recorded the run's end
        self._renew_at = time.monotonic() + min(1.0, ctx.store.lease_s / 3)
        self.prior = {r.key: r for r in (prior or [])}
        self.seq = max([r.seq or 0 for r in self.prior.values()] + [0])
        deps = workflow.dependencies()
        for s in workflow.steps:
            self.groups[s.id] = Group(s, list(deps[s.id]),
                                      has_refs=bool(s.args) and any(True for _ in refs_in(s.args)))
        for g in self.groups.values():
            g.waiting = len(g.deps)
            for d in g.deps:
                self.groups[d].dependents.append(g.step.id)

    # ------------------------------------------------------------------ control (any thread)
    def request(self, what: str) -> None:
        """Pause or cancel: no new step starts; running ones finish (pause) or are abandoned (cancel)."""
        with self.cv:
            self._control(what)
            self.cv.notify()
        self._after()

    # ------------------------------------------------------------------ the loop
    def drive(self) -> str:
        """Run until nothing can run any more; the run's status (the service records it)."""
        try:
            with self.cv:
                for g in [g for g in self.groups.values() if not g.deps]:
                    self._ready(g)
            self._after()
            self._loop()
            with self.cv:
                return self._end()
        except BaseException as exc:
            self.error = self.error or f"the engine failed: {type(exc).__name__}: {exc}"
            self._abort()
            raise
        finally:
            self.wall_s = time.perf_counter() - self.started
            self.done.set()

    def _loop(self) -> None:
        """The driver thread: timers (timeouts, retry delays), the group commit, the lease. Outcomes are
        handled by the threads they arrive on (see :meth:`_on_done`), so a chain of steps never waits
        for this thread to wake up."""
        now = time.monotonic
        while True:
            with self.cv:
                if not self.active and not self.retrying:
                    break  # (a timeout timer left by a finished step keeps nothing alive)
                t = now()
                wake = self._renew_at
                if self.timers:
                    wake = min(wake, self.timers[0][0])
                if self.flush_at is not None:
                    wake = min(wake, self.flush_at)
                if wake > t:
                    self.cv.wait(wake - t)
                    t = now()
                if self.timers and self.timers[0][0] <= t:
                    self._fire_timers()
                batch = self._take() if self.flush_at is not None and t >= self.flush_at else None
                renew = t >= self._renew_at
            if batch is not None:
                self._write(batch)  # outside the lock: steps keep completing while SQLite writes
            if renew:
                self._renew()
            self._after()

    def _on_done(self, key: str, token: int, fut: cf.Future[Any]) -> None:
        """A step's future is done (called on the thread that finished it)."""
        try:
            value, ok = fut.result(), True
        except BaseException as exc:  # noqa: BLE001 - every failure of a step is its outcome
            value, ok = exc, False
        self._handle(key, token, ok, value)

    def _handle(self, key: str, token: int, ok: bool, value: Any, *, runner: bool = False) -> None:
        """Take an outcome (on the thread it arrived on) and start what became ready."""
        with self.cv:
            try:
                self._event(key, token, ok, value)
            except Exception as exc:  # noqa: BLE001 - e.g. the database went away: the run fails, loudly
                self._broken(exc)
            work, self._work = self._work, []
            cancels, self._cancels = self._cancels, []
        self._cancel(cancels)
        self._start_work(work, runner=runner)

    def _start_work(self, work: list[tuple[str, Node, int, Any]], *, runner: bool = False) -> None:
        """Outside the lock: hand ready steps over. On a threads executor, ``call`` steps go to a queue that
        runner tasks drain (a runner that just finished a step takes the next one itself: a chain runs on
        one thread, and a fan-out costs no future per step)."""
        calls = []
        for item in work:
            if item[0] == "call" and self._runners_max:
                calls.append(item)
            else:
                self._dispatch(item)
        if calls:
            self._queue_calls(calls, runner=runner)

    def _queue_calls(self, calls: list[tuple[str, Node, int, Any]], *, runner: bool) -> None:
        with self._rlock:
            self._calls.extend(calls)
            want = len(self._calls) - (1 if runner else 0)  # a runner handing over comes back for one
            more = max(0, min(want, self._runners_max - self._runners))
            self._runners += more
        for _ in range(more):
            try:
                self.ctx.executor.submit(self._runner)
            except RuntimeError as exc:  # the executor is closing: what is queued fails
                with self._rlock:
                    self._runners -= 1
                    stranded, self._calls = list(self._calls), deque()
                for _, node, token, _payload in stranded:
                    self._handle(node.key, token, False, exc)
                return

    def _runner(self) -> None:
        """A task on a threads executor: run queued ``call`` steps until the queue is empty."""
        while True:
            with self._rlock:
                if not self._calls:
                    self._runners -= 1
                    return
                _, node, token, (fn, args) = self._calls.popleft()
            if token != node.token:
                continue  # given up (timed out, cancelled) before it started
            try:
                value, ok = fn(**args), True
            except BaseException as exc:  # noqa: BLE001 - every failure of a step is its outcome
                value, ok = exc, False
            self._handle(node.key, token, ok, value, runner=True)

    def _broken(self, exc: BaseException) -> None:
        """The engine itself failed while handling an outcome: no new step starts, the run fails."""
        self.error = self.error or f"the engine failed: {type(exc).__name__}: {exc}"
        self.stop = "cancelled" if self.stop == "cancelled" else "failed"
        self.cv.notify()

    def _after(self) -> None:
        """Outside the lock: start the work made ready, cancel the futures given up."""
        with self.cv:
            work, self._work = self._work, []
            cancels, self._cancels = self._cancels, []
        self._cancel(cancels)
        self._start_work(work)

    def _dispatch(self, item: tuple[str, Node, int, Any]) -> None:
        kind, node, token, payload = item
        if kind == "call":
            fn, args = payload
            try:
                fut = self.ctx.executor.submit(_invoke, fn, args)
            except Exception as exc:  # noqa: BLE001 - e.g. a cluster that went away: the step's outcome
                fut = cf.Future()
                fut.set_exception(exc)
        elif node.step.kind == "workflow":  # its own run on its own thread; the future settles when it stops
            try:
                inputs = resolve(node.step.inputs, self.inputs, self.outputs, node.item)
                fut = self.ctx.run_child(node.step, inputs, principal=self.principal, parent=self.run_id,
                                         run_id=child_run_id(self.run_id, node.key))
            except Exception as exc:  # noqa: BLE001 - the step's outcome
                fut = cf.Future()
                fut.set_exception(exc)
        else:
            args, resume = payload
            try:
                fut = self.ctx.pool.submit(self._gate_step, node, args, resume)
            except RuntimeError as exc:  # the service is closing
                fut = cf.Future()
                fut.set_exception(exc)
        node.future = fut
        fut.add_done_callback(functools.partial(self._on_done, node.key, token))

    def _cancel(self, futures: list[Any]) -> None:
        cancel = getattr(self.ctx.executor, "cancel", None)
        for fut in futures:
            if cancel is not None:
                cancel(fut)
            fut.cancel()

    def _event(self, key: str, token: int, ok: bool, value: Any) -> None:
        node = self.nodes[key]
        if token != node.token or node.status != RUNNING:
            return  # a late outcome of an attempt that timed out or was cancelled
        self.active -= 1
        if not self.active:
            self.cv.notify()
        node.future = None
        if not ok:
            if isinstance(value, WaitingForApproval):
                self._waiting(node, value)
            else:
                self._failed(node, value)
            return
        if node.step.output != "any" and not type_ok(node.step.output, value):
            self._failed(node, StepFailed(f"step {node.key!r} returned {type(value).__name__}, but its output is "
                                          f"declared {node.step.output!r}", hint="fix the step or its output: field"))
            return
        self._completed(node, value)

    # ------------------------------------------------------------------ readiness
    def _ready(self, g: Group) -> None:
        """All of ``g``'s dependencies are final: skip it, expand its fan-out, or start it."""
        sid = g.step.id
        if g.deps and all(self.groups[d].status == SKIPPED for d in g.deps):
            self._skip_group(g, "every step it needs was skipped")
            return
        if g.step.foreach is None:
            node = self._node(sid, g.step, None)
            g.nodes, g.remaining = [node], 1
            self._begin(node)
            return
        try:
            items = resolve(g.step.foreach, self.inputs, self.outputs, None)
        except _Missing as exc:
            items = exc
        if not isinstance(items, list | tuple):
            node = self._node(sid, g.step, None)
            g.nodes, g.remaining = [node], 1
            self._fail_now(node, f"step {sid!r}: field 'foreach': needs a list, got "
                                 f"{type(items).__name__ if not isinstance(items, Exception) else items}")
            return
        g.nodes = [self._node(f"{sid}[{i}]", g.step, it) for i, it in enumerate(items)]
        g.remaining = len(g.nodes)
        g.status = RUNNING
        if not g.nodes:
            self._group_done(g)
        for node in list(g.nodes):
            self._begin(node)

    def _node(self, key: str, step: Step, item: Any) -> Node:
        node = Node(key, step, item)
        prior = self.prior.get(key)
        if prior is not None:
            node.attempt, node.persisted, node.resume = prior.attempt, True, prior
            node.seq, node.started_at, node.finished_at = prior.seq, prior.started_at, prior.finished_at
        self.nodes[key] = node
        return node

    def _begin(self, node: Node) -> None:
        """Start ``node`` — unless a previous process finished it (resume), or the run is stopping."""
        prior = node.resume
        if prior is not None and prior.status in (COMPLETED, SKIPPED):
            node.status, node.output = prior.status, prior.output
            self._settle(node)
            return
        if prior is not None and prior.status in (FAILED, COMPENSATED):
            # the run was failing when its process died (maybe halfway through compensating): a failed step
            # is final (its retries were spent), a compensated one was undone: neither runs again, and the
            # run goes on failing, compensating what is still completed
            node.status, node.output, node.error = prior.status, prior.output, prior.error
            node.finished_at = prior.finished_at
            if self.stop != "failed":
                self.error = prior.error if prior.status == FAILED and prior.error else (
                    f"step {node.key!r} had {prior.status} before the run was resumed")
                self._stopping("failed")
            return
        if self.stop is not None:
            return  # pausing, failing or cancelled: it stays pending
        if prior is not None and prior.status == RUNNING and not self._safe_again(node, prior):
            self._fail_now(node, f"step {node.key!r} was interrupted while running (its process died); it may "
                                 "have taken effect, so it is not run again (give a step retries ≥ 1 when running "
                                 "it twice is safe)")
            return
        when = node.step.when
        if when is not None:
            try:
                ok = holds(when.op, resolve(when.ref, self.inputs, self.outputs, node.item), when.value)
            except (_Missing, TypeError) as exc:
                self._fail_now(node, f"step {node.key!r}: field 'when': {exc}")
                return
            if not ok:
                node.status = SKIPPED
                node.finished_at = self._now()
                self._skipped.append(node.key)
                self._record(node, batched=True)
                self._settle(node)
                return
        self._start(node)

    def _safe_again(self, node: Node, prior: StepRow) -> bool:
        """May a step whose process died while it ran be run again? (pure, read-only, resumable, or retries)"""
        step = node.step
        if step.kind in ("call", "workflow") or prior.attempt <= step.retries:
            return True
        if step.kind == "tool":
            try:
                return str(self.ctx.services.tools.resolve(step.tool).side_effect) == "read"
            except EmergentError:
                return False
        return False

    def _start(self, node: Node) -> None:
        """Mark ``node`` running and queue it for dispatch (outside the lock)."""
        step = node.step
        g = self.groups[step.id]
        try:
            args = resolve(step.args, self.inputs, self.outputs, node.item) if g.has_refs else step.args
            fn = step.callable() if step.kind == "call" else None
        except (_Missing, EmergentError) as exc:
            self._fail_now(node, f"step {node.key!r}: field 'args': {exc}" if isinstance(exc, _Missing)
                           else exc.message)
            return
        node.attempt += 1
        node.token += 1
        node.status = RUNNING
        node.started_at = self._now()
        node.error = None
        if step.kind == "call":
            if self.ctx.checkpoint == "each":
                self._record(node, batched=False)
            self._work.append(("call", node, node.token, (fn, args)))
        else:
            resume = node.resume if node.resume is not None and node.attempt == node.resume.attempt + 1 else None
            try:
                self._gate_intent(node, args)
            except AuditWriteError as exc:
                self._failed(node, exc, retry=False)  # the intent is not on record: the step does not run
                return
            self._work.append(("gate", node, node.token, (args, resume)))
        self.active += 1
        if step.timeout_s is not None:
            self._timer(step.timeout_s, "timeout", node)

    # ------------------------------------------------------------------ gate-crossing steps (engine process)
    def _gate_intent(self, node: Node, args: dict[str, Any]) -> None:
        """The step's ``running`` row (with everything buffered before it) and its audited intent,
        both durable before its side effect starts."""
        node.approval_id = None
        self._record(node, batched=False)
        if self.ctx.audit is not None:
            self.ctx.audit.append("workflow.step", self.principal, {
                "run": self.run_id, "step": node.key, "kind": node.step.kind, "attempt": node.attempt,
                "phase": "intent", "target": node.step.tool or node.step.notebook or node.step.assistant or
                (node.step.workflow if isinstance(node.step.workflow, str) else "(inline)")}, durable=True)

    def _gate_step(self, node: Node, args: dict[str, Any], resume: StepRow | None) -> Any:
        """Run a tool / notebook / assistant / sub-workflow step as the run's principal (pool thread)."""
        return run_gate_step(self.ctx.services, node.step, node.key, args, resume,
                             principal=self.principal, run_id=self.run_id,
                             wire=lambda v: resolve(v, self.inputs, self.outputs, node.item))

    # ------------------------------------------------------------------ outcomes
    def _completed(self, node: Node, value: Any) -> None:
        node.status, node.output = COMPLETED, value
        node.finished_at = self._now()
        self.seq += 1
        node.seq = self.seq
        pure = node.step.kind == "call"
        try:
            if pure:
                self._quiet.append(node.key)
            self._record(node, batched=pure and self.ctx.checkpoint == "batched")
            if not pure:
                self._audit_step(node, durable=True)
        except (AuditWriteError, ValidationError) as exc:
            node.status, node.output = RUNNING, None
            self._failed(node, exc, retry=False)
            return
        self._settle(node)

    def _failed(self, node: Node, exc: BaseException, *, retry: bool = True) -> None:
        if isinstance(exc, cf.CancelledError):
            exc = StepFailed(f"step {node.key!r} was cancelled by its executor")
        msg = exc.message if isinstance(exc, EmergentError) else f"{type(exc).__name__}: {exc}"
        if not msg.startswith(f"step {node.key!r}"):
            msg = f"step {node.key!r}: {msg}"
        node.error = msg[:2000]
        final = not retry or isinstance(exc, PermissionDenied | PrincipalError | UsageError) \
            or node.attempt > node.step.retries or self.stop is not None
        if not final:
            node.status = PENDING
            self._record(node, batched=False)
            self._timer(node.step.retry_delay_s, "retry", node)
            return
        self._fail_now(node, node.error)

    def _fail_now(self, node: Node, error: str) -> None:
        node.status, node.error = FAILED, error
        node.finished_at = self._now()
        try:
            self._record(node, batched=False)
            self._audit_step(node, durable=True)
        except AuditWriteError:
            pass  # the run fails anyway; its end is audited (or fails loudly) in _end
        if self.stop != "failed":
            self.error = error
            self._stopping("failed")

    def _waiting(self, node: Node, w: WaitingForApproval) -> None:
        node.status, node.approval_id = WAITING, w.approval
        node.output = w.ref or None
        try:
            self._record(node, batched=False)
            self._audit_step(node, durable=True)
        except AuditWriteError as exc:
            self._fail_now(node, f"step {node.key!r}: {exc.message}")

    def _settle(self, node: Node) -> None:
        """``node`` is final (completed or skipped): its group may be done."""
        g = self.groups[node.step.id]
        g.remaining -= 1
        if g.remaining == 0:
            self._group_done(g)

    def _skip_group(self, g: Group, why: str) -> None:
        node = self._node(g.step.id, g.step, None)
        g.nodes, g.remaining = [node], 1
        if node.resume is not None and node.resume.status == SKIPPED:
            node.status = SKIPPED
        else:
            node.status, node.error, node.finished_at = SKIPPED, why, self._now()
            self._record(node, batched=True)
        self._settle(node)

    def _group_done(self, g: Group) -> None:
        sid = g.step.id
        if g.step.foreach is None:
            g.status = g.nodes[0].status
            self.outputs[sid] = g.nodes[0].output
        else:
            g.status = COMPLETED
            self.outputs[sid] = [n.output for n in g.nodes]
        for d in g.dependents:
            dg = self.groups[d]
            dg.waiting -= 1
            if dg.waiting == 0:
                self._ready(dg)

    # ------------------------------------------------------------------ timers
    def _timer(self, delay: float, what: str, node: Node) -> None:
        self._tick += 1
        at = time.monotonic() + delay
        if not self.timers or at < self.timers[0][0]:
            self.cv.notify()  # the driver sleeps until the earliest timer
        heapq.heappush(self.timers, (at, self._tick, what, node.key, node.token))
        if what == "retry":
            self.retrying += 1

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, what, key, token = heapq.heappop(self.timers)
            if what == "retry":
                self.retrying -= 1
            node = self.nodes[key]
            if token != node.token:
                continue
            if what == "timeout" and node.status == RUNNING:
                self.active -= 1
                self._give_up(node)
                self._failed(node, TimeoutExceeded(
                    f"step {key!r} timed out after {node.step.timeout_s:g} s (attempt {node.attempt})",
                    hint="raise timeout_s, or make the step faster"))
            elif what == "retry" and node.status == PENDING and self.stop is None:
                self._start(node)

    def _give_up(self, node: Node) -> None:
        """Ignore ``node``'s running attempt from now on; its future is cancelled outside the lock."""
        node.token += 1
        if node.future is not None:
            self._cancels.append(node.future)
            node.future = None

    # ------------------------------------------------------------------ pause / cancel / failure
    def _control(self, what: str) -> None:
        if what == "cancelled":
            self._stopping("cancelled")
            for node in list(self.nodes.values()):
                if node.status == RUNNING:
                    self.active -= 1
                    self._give_up(node)
                    node.status, node.error = CANCELLED, "cancelled while running"
                    self._record(node, batched=False)
            self.timers.clear()
            self.retrying = 0
        elif what == "paused" and self.stop is None:
            self._stopping("paused")
            self.timers = [t for t in self.timers if t[2] != "retry"]  # a retry starts again on resume
            heapq.heapify(self.timers)
            self.retrying = 0

    def _stopping(self, why: str) -> None:
        if self.stop in ("cancelled",):
            return
        if self.stop == "failed" and why == "paused":
            return
        self.stop = why

    def _renew(self) -> None:
        """Extend the lease (outside the lock); a pause or cancel written by another process is seen here."""
        self._renew_at = time.monotonic() + min(1.0, self.ctx.store.lease_s / 3)
        try:
            if self.ctx.store.renew(self.run_id, owner=self.ctx.owner, now=self._now()):
                return
            row = self.ctx.store.get(self.run_id)
        except Exception as exc:  # noqa: BLE001 - a transient database error: try again at the next renewal
            log.warning("could not renew the lease of workflow run %s: %s", self.run_id, exc)
            return
        with self.cv:
            if row.status in (PAUSED, CANCELLED):
                self._control(row.status)
            elif row.lease_owner != self.ctx.owner:
                self._control("cancelled")  # another process drives it now: stop without writing its end
                self.stop = "lost"

    # ------------------------------------------------------------------ checkpoints
    def _record(self, node: Node, *, batched: bool) -> None:
        row = step_tuple(node.key, node.step.id, node.status, node.attempt, node.output, node.error,
                         node.approval_id, node.seq, node.started_at, node.finished_at)
        (self.rows_upd if node.persisted else self.rows_new).append(row)
        node.persisted = True
        if batched:
            if self.flush_at is None:
                self.flush_at = time.monotonic() + self.ctx.flush_s
                self.cv.notify()
            elif len(self.rows_new) + len(self.rows_upd) >= FLUSH_ROWS:
                self.flush()
        else:
            self.flush()

    def flush(self) -> None:
        """Write the buffered step rows now (under the lock: before a side effect starts, or at the end)."""
        self._write(self._take())

    def _take(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, Any] | None]:
        """Take the buffered rows (and the pure steps' audit entry) and the write lock, which keeps the
        writes in the order the rows were taken; :meth:`_write` releases it."""
        new, upd = self.rows_new, self.rows_upd
        self.rows_new, self.rows_upd = [], []
        self.flush_at = None
        note = None
        if (self._quiet or self._skipped) and self.ctx.audit is not None:
            note = {"run": self.run_id, "completed": self._quiet, "skipped": self._skipped}
        self._quiet, self._skipped = [], []
        self._write_lock.acquire()
        return new, upd, note

    def _write(self, batch: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, Any] | None]) -> None:
        """One transaction for the rows, one audit entry for the pure steps among them (a failed audit
        write fails the run)."""
        new, upd, note = batch
        try:
            if new or upd:
                self.ctx.store.write_steps(self.run_id, new, upd)
            if note is not None:
                self.ctx.audit.append("workflow.steps", self.principal, note)
        except AuditWriteError as exc:
            self.error = self.error or f"the audit trail could not be written: {exc.message}"
            self.stop = self.stop or "failed"
        finally:
            self._write_lock.release()

    def _audit_step(self, node: Node, *, durable: bool) -> None:
        if self.ctx.audit is None:
            return
        data: dict[str, Any] = {"run": self.run_id, "step": node.key, "kind": node.step.kind, "status": node.status,
                                "attempt": node.attempt}
        if node.error:
            data["error"] = node.error[:500]
        if node.approval_id:
            data["approval"] = node.approval_id
        self.ctx.audit.append("workflow.step", self.principal, data, durable=durable)

    # ------------------------------------------------------------------ the end
    def _end(self) -> str:
        if self.stop == "lost":
            self.result_status = RUNNING
            return RUNNING
        if self.stop == "failed":
            self._compensate()
        if self.stop in ("failed", "cancelled"):
            for n in self.nodes.values():
                if n.status in (PENDING, WAITING):
                    n.status = CANCELLED
                    self._record(n, batched=True)
        self.flush()
        waiting = any(n.status == WAITING for n in self.nodes.values())
        status = {"failed": FAILED, "cancelled": CANCELLED, "paused": PAUSED}.get(self.stop or "")
        if status is None:
            status = WAITING if waiting else COMPLETED
        outputs = None
        if status == COMPLETED:
            try:
                outputs = {k: resolve(v, self.inputs, self.outputs, None) for k, v in self.wf.outputs.items()}
            except _Missing as exc:
                status, self.error = FAILED, f"outputs: {exc}"
        self.result_status = status
        self.outputs_final = outputs
        return status

    def _abort(self) -> None:
        self.result_status = FAILED
        self.outputs_final = None
        with contextlib.suppress(Exception):  # the run is recorded failed by the service
            self.flush()

    def _compensate(self) -> None:
        """Undo completed steps that say how, newest first, each a tool call as the run's principal."""
        todo = sorted((n for n in self.nodes.values() if n.status == COMPLETED and n.step.compensate is not None),
                      key=lambda n: n.seq or 0, reverse=True)
        for node in todo:
            comp = node.step.compensate
            assert comp is not None
            outputs = {**self.outputs, node.step.id: node.output}
            data = {"run": self.run_id, "step": node.key, "tool": comp.tool}
            try:
                args = resolve(comp.args, self.inputs, outputs, node.item)
                if self.ctx.audit is not None:
                    self.ctx.audit.append("workflow.compensate", self.principal, {**data, "phase": "intent"},
                                          durable=True)
                self.ctx.services.tools.call(comp.tool, args, principal=self.principal, wait=False)
            except (EmergentError, _Missing, Exception) as exc:  # noqa: BLE001 - reported, the others still run
                why = exc.message if isinstance(exc, EmergentError) else str(exc)
                node.error = f"compensation failed: {why}"[:2000]
                self.error = f"{self.error}; step {node.key!r}: compensation failed: {why}"
                self._record(node, batched=False)
                if self.ctx.audit is not None:
                    self.ctx.audit.append("workflow.compensate", self.principal,
                                          {**data, "phase": "failed", "error": why[:500]}, durable=True)
                continue
            node.status = COMPENSATED
            self._record(node, batched=False)
            if self.ctx.audit is not None:
                self.ctx.audit.append("workflow.compensate", self.principal, {**data, "phase": "done"},
                                      durable=True)


__all__ = ["Context", "Driver", "StepFailed", "child_run_id"]
