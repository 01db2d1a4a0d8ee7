"""The runner: every tool call passes the same chain of wrappers.

    telemetry → audit → validate → gate (policy) → approval → circuit breaker → retry → timeout → execute

Each stage is a *layer* ``(call, next) -> result`` and the chain for a tool is composed once from
the layers that apply to it (no retry layer for a tool without a retry policy, no gate without an
autonomy service, no thread timeout for a sandboxed tool: the sandbox enforces its own), so the
hot path has no configuration ``if``s. A layer can be added for every tool with ``extra_layers``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from emergent.autonomy.policy import Decision, Request
from emergent.clock import Clock, SystemClock
from emergent.errors import (
    ApprovalPending,
    CircuitOpenError,
    EmergentError,
    PermissionDenied,
    TimeoutExceeded,
    ToolExecutionError,
    ValidationError,
)
from emergent.tools.spec import ToolContext, ToolSpec

_ids = itertools.count(1)
_PREFIX = f"{os.getpid():x}{int(time.time()) % 100000:05d}"


@dataclass(slots=True)
class Call:
    spec: ToolSpec
    args: Any
    actor: str = "user:local"
    roles: tuple[str, ...] = ()
    confidence: float | None = None
    cost: float | None = None
    wait: bool | float = True
    approved: str | None = None  # id of an approval already granted (resume)
    call_id: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    resource: str = ""
    decision: Decision | None = None
    attempts: int = 0


Handler = Callable[[Call], Any]
Layer = Callable[[Call, Handler], Any]


_OUTCOMES: dict[type[BaseException], str] = {
    ValidationError: "invalid", PermissionDenied: "denied", ApprovalPending: "pending",
    CircuitOpenError: "circuit_open", TimeoutExceeded: "timeout"}


def _outcome(exc: BaseException) -> str:
    return _OUTCOMES.get(type(exc), "error")


def _error_class(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, ToolExecutionError) and exc.__cause__ else exc
    return type(cause).__name__


# ---------------------------------------------------------------------- layers
def telemetry_layer(telemetry: Any, clock: Clock) -> Layer:
    def layer(call: Call, nxt: Handler) -> Any:
        t0 = time.perf_counter()
        try:
            result = nxt(call)
        except BaseException as exc:
            telemetry.record((clock.now(), call.call_id, call.spec.name, call.spec.version, call.actor,
                              (time.perf_counter() - t0) * 1000.0, _outcome(exc), call.attempts,
                              _error_class(exc), str(exc)[:500]))
            raise
        telemetry.record((clock.now(), call.call_id, call.spec.name, call.spec.version, call.actor,
                          (time.perf_counter() - t0) * 1000.0, "ok", call.attempts, None, None))
        return result
    return layer


def audit_layer(audit: Any) -> Layer:
    # Calls that act outside the workspace are on disk before the call returns; the rest are
    # buffered (written within a second, on read and on close) to keep in-process calls cheap.
    def layer(call: Call, nxt: Handler) -> Any:
        durable = call.spec.side_effect in ("external", "destructive")
        try:
            result = nxt(call)
        except BaseException as exc:
            d = call.decision
            audit.append("tool.call", call.actor, {
                "call": call.call_id, "tool": call.spec.key, "resource": call.resource,
                "decision": d.effect if d else None, "why": d.reason if d else None, "approval": call.approved,
                "outcome": _outcome(exc), "attempts": call.attempts, "error": _error_class(exc)}, durable=durable)
            raise
        d = call.decision
        audit.append("tool.call", call.actor, {
            "call": call.call_id, "tool": call.spec.key, "resource": call.resource,
            "decision": d.effect if d else None, "rule": d.rule_id if d else None, "approval": call.approved,
            "outcome": "ok", "attempts": call.attempts}, durable=durable)
        return result
    return layer


def validate_layer(call: Call, nxt: Handler) -> Any:
    spec = call.spec
    call.kwargs = spec.validate_args(call.args)
    if spec.resource_arg is not None:
        call.resource = str(call.kwargs.get(spec.resource_arg, ""))
    return nxt(call)


def gate_layer(autonomy: Any) -> Layer:
    def layer(call: Call, nxt: Handler) -> Any:
        spec = call.spec
        d = autonomy.decide(Request(call.actor, spec.name, spec.side_effect.value, call.resource,
                                    spec.cost if call.cost is None else call.cost, call.roles, call.confidence))
        call.decision = d
        if d.effect == "deny":
            raise PermissionDenied(f"{call.actor} may not run {spec.key}: {d.reason}",
                                   hint="ask a human for an override, or change the policy "
                                        "(`emergent policy explain`)", tool=spec.key, decision=d)
        return nxt(call)
    return layer


def approval_layer(approvals: Any) -> Layer:
    """On *ask*: file a request and wait for a human (``wait``: True, False or seconds)."""
    def layer(call: Call, nxt: Handler) -> Any:
        d = call.decision
        if d is None or d.effect != "ask" or call.approved:
            return nxt(call)
        req = approvals.request(actor=call.actor, tool=call.spec.key, args=dict(call.args or {}),
                                resource=call.resource or None, reason=d.reason, confidence=call.confidence)
        decided = req if call.wait is False else approvals.wait(
            req.id, None if call.wait is True else float(call.wait))
        if decided.status == "approved":
            call.approved = req.id
            return nxt(call)
        if decided.status == "pending":
            raise ApprovalPending(f"{call.spec.key} for {call.actor} waits for approval {req.id}",
                                  hint=f"approve it (`emergent approvals approve {req.id}`), then "
                                       f"resume with tools.resume({req.id!r})", approval=req.id)
        raise PermissionDenied(f"{call.spec.key} for {call.actor} was {decided.status} by "
                               f"{decided.decided_by}: {decided.decision_reason or 'no reason given'}",
                               hint="the action did not run", approval=req.id, tool=call.spec.key)
    return layer


class CircuitBreaker:
    """Per tool version: ``threshold`` consecutive failures open it for ``cooldown`` seconds, then
    one trial call (half-open) closes it again on success."""

    def __init__(self, clock: Clock, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.clock = clock
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures: dict[str, int] = {}
        self.open_until: dict[str, float] = {}

    def state(self, key: str) -> str:
        until = self.open_until.get(key)
        if until is None:
            return "closed"
        return "open" if self.clock.now() < until else "half-open"

    def layer(self, call: Call, nxt: Handler) -> Any:
        key = call.spec.key
        until = self.open_until.get(key)
        if until is not None and self.clock.now() < until:
            raise CircuitOpenError(f"tool {key} failed {self.failures.get(key, 0)} times in a row; its circuit is "
                                   f"open for {until - self.clock.now():.0f} s more",
                                   hint="fix the cause (see `emergent tools stats`) or wait", tool=key)
        try:
            result = nxt(call)
        except (ValidationError, PermissionDenied, ApprovalPending):
            raise
        except EmergentError:
            self._fail(key)
            raise
        except Exception as exc:
            self._fail(key)
            raise ToolExecutionError(f"tool {key} raised {type(exc).__name__}: {exc}",
                                     hint="see the cause below; the call's arguments were valid",
                                     tool=key) from exc
        if key in self.failures:
            self.failures.pop(key, None)
            self.open_until.pop(key, None)
        return result

    def _fail(self, key: str) -> None:
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        if n >= self.threshold:
            self.open_until[key] = self.clock.now() + self.cooldown


def retry_layer(sleep: Callable[[float], None] = time.sleep) -> Layer:
    """Retries on retryable errors only, with exponential backoff and jitter (tenacity).

    The first attempt runs directly; tenacity takes over only after a retryable failure."""
    def layer(call: Call, nxt: Handler) -> Any:
        policy = call.spec.retry
        call.attempts = 1
        try:
            return nxt(call)
        except Exception as exc:
            if not policy.is_retryable(exc) or policy.attempts < 2:
                raise
        import tenacity

        def attempt() -> Any:
            call.attempts += 1
            return nxt(call)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts - 1),
            wait=tenacity.wait_exponential_jitter(initial=policy.initial, max=policy.max_wait, jitter=policy.jitter),
            retry=tenacity.retry_if_exception(policy.is_retryable), reraise=True, sleep=sleep)
        return retrying(attempt)
    return layer


def count_layer(call: Call, nxt: Handler) -> Any:
    call.attempts = 1
    return nxt(call)


def timeout_layer(call: Call, nxt: Handler) -> Any:
    """Run in a daemon thread and stop waiting after ``spec.timeout`` (the thread is abandoned)."""
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append((True, nxt(call)))
        except BaseException as exc:
            box.append((False, exc))
        done.set()

    threading.Thread(target=run, name=f"tool-{call.spec.name}", daemon=True).start()
    if not done.wait(call.spec.timeout):
        raise TimeoutExceeded(f"tool {call.spec.key} did not finish within {call.spec.timeout} s",
                              hint="raise its timeout or make it faster; it was abandoned", tool=call.spec.key)
    ok, value = box[0]
    if ok:
        return value
    raise value


def compose(layers: Sequence[Layer], handler: Handler) -> Handler:
    for layer in reversed(layers):
        handler = (lambda lyr, nxt: lambda call: lyr(call, nxt))(layer, handler)
    return handler


# ---------------------------------------------------------------------- the runner
class ToolRunner:
    def __init__(self, registry: Any, *, autonomy: Any = None, telemetry: Any = None, audit: Any = None,
                 clock: Clock | None = None, context: Callable[[Call], ToolContext] | None = None,
                 breaker: CircuitBreaker | None = None, sleep: Callable[[float], None] = time.sleep,
                 extra_layers: Sequence[Layer] = ()) -> None:
        self.registry = registry
        self.autonomy = autonomy
        self.telemetry = telemetry
        self.audit = audit if audit is not None else getattr(autonomy, "audit", None)
        self.clock = clock or SystemClock()
        self.context = context or (lambda call: ToolContext(actor=call.actor, call_id=call.call_id))
        self.breaker = breaker or CircuitBreaker(self.clock)
        self.sleep = sleep
        self.extra_layers = list(extra_layers)
        self._chains: dict[int, tuple[ToolSpec, Handler]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def layers(self, spec: ToolSpec) -> list[Layer]:
        out: list[Layer] = []
        if self.telemetry is not None:
            out.append(telemetry_layer(self.telemetry, self.clock))
        if self.audit is not None:
            out.append(audit_layer(self.audit))
        out.append(validate_layer)
        if self.autonomy is not None:
            out += [gate_layer(self.autonomy), approval_layer(self.autonomy.approvals)]
        out += self.extra_layers
        out.append(self.breaker.layer)
        out.append(retry_layer(self.sleep) if spec.retry.attempts > 1 else count_layer)
        if spec.timeout and not spec.sandboxed:
            out.append(timeout_layer)
        return out

    def _execute(self, call: Call) -> Any:
        spec = call.spec
        ctx = self.context(call) if spec.context_param is not None else None
        return spec.check_result(spec.invoke(call.kwargs, ctx))

    def chain(self, spec: ToolSpec) -> Handler:
        hit = self._chains.get(id(spec))
        if hit is None or hit[0] is not spec:
            closure = getattr(self.registry, "closure", None)
            if closure is not None and (spec.requires or spec.python_requires):
                closure(spec)  # dependency conflicts and missing Python packages fail here, once
            hit = (spec, compose(self.layers(spec), self._execute))
            self._chains[id(spec)] = hit
        return hit[1]

    def call(self, ref: str | ToolSpec, args: Any = None, *, actor: str = "user:local", roles: Sequence[str] = (),
             confidence: float | None = None, cost: float | None = None, wait: bool | float = True,
             approved: str | None = None) -> Any:
        """Run tool ``ref`` (``name``, ``name@1.2.0``, ``name@^1``) with ``args`` as ``actor``."""
        spec = ref if isinstance(ref, ToolSpec) else self.registry.resolve(ref)
        call = Call(spec, args, actor, tuple(roles), confidence, cost, wait, approved,
                    f"{_PREFIX}-{next(_ids)}")
        return self.chain(spec)(call)

    def submit(self, ref: str | ToolSpec, args: Any = None, **kw: Any) -> Future[Any]:
        """Like :meth:`call`, in a background thread (a call that waits for approval resumes there)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tool-call")
        return self._pool.submit(self.call, ref, args, **kw)

    def resume(self, approval_id: str) -> Any:
        """Run the call an approval was filed for, once it is approved."""
        if self.autonomy is None:
            raise ValidationError("this runner has no autonomy gate, so there is nothing to resume")
        a = self.autonomy.approvals.get(approval_id)
        if a.status == "pending":
            raise ApprovalPending(f"approval {approval_id} is still pending",
                                  hint=f"`emergent approvals approve {approval_id}`", approval=approval_id)
        if a.status != "approved":
            raise PermissionDenied(f"approval {approval_id} was {a.status}: {a.decision_reason or ''}",
                                   hint="the action will not run", approval=approval_id)
        return self.call(a.tool, a.args, actor=a.actor, confidence=a.confidence, approved=approval_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
