"""The runner: every tool call passes the same chain of wrappers.

    telemetry → audit (outcome) → validate → gate (policy) → snapshot (files the call reads or
    runs) → approval → intent → circuit breaker → retry → timeout → execute

Each stage is a *layer* ``(call, next) -> result`` and the chain for a tool is composed once from
the layers that apply to it (no retry layer for a tool without a retry policy, no gate without an
autonomy service, no thread timeout for a sandboxed tool: the sandbox enforces its own), so the
hot path has no configuration ``if``s. A layer can be added for every tool with ``extra_layers``.

Every call names its :class:`~emergent.principals.Principal`; there is no default. A call the gate
answers with *ask* files an approval bound to the digest of what will run (tool, version,
validated arguments, the bytes of the files it reads or runs); the call runs only by consuming
that approval, once, while the digest still matches. Actions that change something record their
intent in the audit trail before they run and their outcome after; a failed audit write fails
the call.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from emergent.audit import _SECRET as _SECRET_KEY
from emergent.audit import canonical, personal_digest, redact
from emergent.autonomy.policy import Decision
from emergent.clock import Clock, SystemClock
from emergent.errors import (
    ApprovalPending,
    CircuitOpenError,
    EmergentError,
    PermissionDenied,
    PrincipalError,
    TimeoutExceeded,
    ToolExecutionError,
    ValidationError,
)
from emergent.principals import HOW_TO_GET_ONE, Principal
from emergent.tools.spec import RunsCode, SideEffect, ToolContext, ToolSpec

_ids = itertools.count(1)
_PREFIX = f"{os.getpid():x}{int(time.time()) % 100000:05d}"
#: longest string argument kept verbatim in the audit trail (longer: a prefix, its length and sha256)
AUDIT_STRING_MAX = 4096


@dataclass(slots=True)
class Call:
    spec: ToolSpec
    args: Any
    principal: Principal
    confidence: float | None = None
    cost: float | None = None
    wait: bool | float = True
    call_id: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    resource: str = ""
    decision: Decision | None = None
    attempts: int = 0
    approval: str | None = None  # the approval this call runs under (set by the runner, never by a caller)
    ctx: ToolContext | None = None
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 of what the call reads or runs
    digest: str = ""

    @property
    def actor(self) -> str:
        return self.principal.key


Handler = Callable[[Call], Any]
Layer = Callable[[Call, Handler], Any]


_OUTCOMES: dict[type[BaseException], str] = {
    ValidationError: "invalid", PermissionDenied: "denied", ApprovalPending: "pending",
    CircuitOpenError: "circuit_open", TimeoutExceeded: "timeout", PrincipalError: "denied"}


def _outcome(exc: BaseException) -> str:
    return _OUTCOMES.get(type(exc), "denied" if isinstance(exc, PermissionDenied) else "error")


def _error_class(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, ToolExecutionError) and exc.__cause__ else exc
    return type(cause).__name__


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > AUDIT_STRING_MAX:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{value[:512]}… [{len(value)} characters, sha256 {digest}]"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    return value


_PLAIN = (int, float, bool, type(None))


def without_personal(spec: ToolSpec, args: Any) -> Any:
    """``args`` with every personal argument of ``spec`` (``ToolSpec.personal_args``) reduced to
    :func:`personal_digest` (a value left out or ``None`` stays as it is)."""
    if not spec.personal_args or not isinstance(args, dict):
        return args
    return {k: personal_digest(v) if k in spec.personal_args and v is not None else v for k, v in args.items()}


def detached(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with no object the caller still holds: validation keeps nested values (a list
    inside a ``dict[str, Any]``) by reference, and a caller that changed one after its approval
    was filed would run something else under it."""
    if all(v.__class__ in _PLAIN or v.__class__ is str for v in kwargs.values()):
        return kwargs
    try:
        return copy.deepcopy(kwargs)
    except Exception:  # noqa: BLE001 - not copyable: the digest is taken again before it runs
        return kwargs


def audit_args(call: Call) -> Any:
    """The call's arguments as the audit trail records them: secrets redacted, personal content
    reduced to its length and sha256, long text hashed."""
    kwargs = call.kwargs
    if call.spec.personal_args:
        return _shorten(redact(without_personal(call.spec, kwargs or call.args or {}), call.spec.secret_args))
    if kwargs and not call.spec.secret_args and all(
            v.__class__ in _PLAIN or (v.__class__ is str and len(v) <= AUDIT_STRING_MAX) for v in kwargs.values()) \
            and not any(_SECRET_KEY.search(k) for k in kwargs):
        return kwargs  # the common case: short plain values, no secret-looking names
    return _shorten(redact(kwargs or call.args or {}, call.spec.secret_args))


def content_digest(spec: ToolSpec, kwargs: dict[str, Any], files: dict[str, str]) -> str:
    """sha256 over the tool and its version (and what that version is: :func:`tool_fingerprint`),
    the validated arguments and the files' hashes."""
    body = canonical({"tool": spec.key, "code": tool_fingerprint(spec), "args": kwargs, "files": files})
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


_BODIES: dict[int, tuple[Any, str]] = {}


def tool_fingerprint(spec: ToolSpec) -> str:
    """What a tool version is, beyond its name and number: its declaration (side effect, schema,
    source, ...) and its function's source text (its bytecode where there is no source). A
    different function registered later under the same ``name@version`` is another tool: an
    approval granted for the first does not run the second."""
    func = spec.func
    hit = _BODIES.get(id(func))
    if hit is None or hit[0] is not func:
        import inspect

        try:
            body = inspect.getsource(func)
        except (OSError, TypeError):
            code = getattr(func, "__code__", None)
            body = repr((code.co_code, code.co_names)) if code is not None else \
                f"{type(func).__module__}.{type(func).__qualname__}"
        if len(_BODIES) > 4096:
            _BODIES.clear()
        hit = _BODIES[id(func)] = (func, body)
    ident = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"
    text = canonical({"spec": spec.describe(), "func": ident, "body": hit[1]})
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def is_change(spec: ToolSpec) -> bool:
    """Actions whose intent is recorded before they run (everything but a plain in-process read)."""
    return spec.side_effect != SideEffect.READ or spec.runs_code != RunsCode.NO


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
    """The outcome of every call. Reads are buffered (written within a second, on read and on
    close); the outcome of a change is written before the call returns."""
    def layer(call: Call, nxt: Handler) -> Any:
        durable = is_change(call.spec)
        try:
            result = nxt(call)
        except BaseException as exc:
            d = call.decision
            audit.append("tool.call", call.principal, {
                "call": call.call_id, "tool": call.spec.key, "resource": call.resource, "args": audit_args(call),
                "decision": d.effect if d else None, "why": d.reason if d else None, "approval": call.approval,
                "outcome": _outcome(exc), "attempts": call.attempts, "error": _error_class(exc),
                "message": str(exc)[:500]}, durable=durable and call.decision is not None)
            raise
        d = call.decision
        audit.append("tool.call", call.principal, {
            "call": call.call_id, "tool": call.spec.key, "resource": call.resource, "args": audit_args(call),
            "decision": d.effect if d else None, "rule": d.rule_id if d else None, "approval": call.approval,
            "outcome": "ok", "attempts": call.attempts}, durable=durable)
        return result
    return layer


def intent_layer(audit: Any) -> Layer:
    """Before a change runs: its intent, on disk (a failed write stops the call here)."""
    def layer(call: Call, nxt: Handler) -> Any:
        d = call.decision
        audit.append("tool.intent", call.principal, {
            "call": call.call_id, "tool": call.spec.key, "resource": call.resource, "args": audit_args(call),
            "files": call.files, "decision": d.effect if d else None, "rule": d.rule_id if d else None,
            "approval": call.approval}, durable=True)
        return nxt(call)
    return layer


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_claims(confidence: Any, cost: Any) -> None:
    """A caller's ``confidence`` is a number from 0 to 1 and its ``cost`` a finite number >= 0: NaN
    compares false with every threshold (``nan < 0.9`` is False, so it passed as confident)."""
    if confidence is not None and (not _number(confidence) or not 0.0 <= confidence <= 1.0):
        raise ValidationError(f"confidence must be a number from 0 to 1, got {confidence!r}",
                              hint="give how sure the agent is, e.g. confidence=0.8, or leave it out (counts as 0)",
                              field="confidence")
    if cost is not None and (not _number(cost) or not 0.0 <= cost < math.inf):
        raise ValidationError(f"cost must be a finite number >= 0, got {cost!r}",
                              hint="give the expected cost of the call, or leave it out", field="cost")


def validate_layer(context: Callable[[Call], ToolContext]) -> Layer:
    def layer(call: Call, nxt: Handler) -> Any:
        spec = call.spec
        if call.confidence is not None or call.cost is not None:
            check_claims(call.confidence, call.cost)
        call.kwargs = spec.validate_args(call.args)
        if spec.resource_arg is not None:
            value = call.kwargs.get(spec.resource_arg)
            if value is None and spec.resource_kind == "scope" and call.principal.is_agent:
                value = call.kwargs[spec.resource_arg] = call.principal.id  # an agent's own scope
            call.resource = "" if value is None else canonical_resource(spec.resource_kind, str(value))
        if spec.context_param is not None or spec.reads is not None:
            call.ctx = context(call)
        return nxt(call)
    return layer


def canonical_resource(kind: str | None, value: str) -> str:
    """The resource as the gate matches it: one spelling per thing, so a rule cannot be dodged by
    writing ``HTTP://Host:443/x`` for ``https://host/x`` (paths are canonical-checked by the file
    tools themselves, which refuse ``..``, ``.`` and absolute paths)."""
    if kind != "url":
        return value
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(value.strip())
        host = (parts.hostname or "").rstrip(".").lower()
        port = parts.port
    except ValueError:
        return value
    scheme = parts.scheme.lower()
    if not host.isascii() or "xn--" in host:
        host = _client_host(host)
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def _client_host(host: str) -> str:
    """The host as the HTTP client connects to it (IDNA, UTS 46): ``db。intranet.example`` (an
    ideographic full stop) and ``db．intranet.example`` are ``db.intranet.example`` to it, and
    ``xn--bcher-kva.example`` is ``bücher.example``; written in its Unicode form, so both spellings
    of a host are one. A host the client refuses stays as written (nothing is fetched from it)."""
    try:
        import httpx

        return str(httpx.URL(f"http://{host}/").host).rstrip(".").lower()
    except Exception:  # noqa: BLE001 - not a host the client accepts (or no client): no other spelling
        return host


def snapshot_layer(call: Call, nxt: Handler) -> Any:
    """After the gate (a refused call reads nothing): read the files the call reads or runs."""
    snapshot(call)
    return nxt(call)


def snapshot(call: Call) -> None:
    """Read the files the call reads or runs, once; bind the call's digest to them."""
    assert call.ctx is not None and call.spec.reads is not None
    contents = call.spec.reads(call.kwargs, call.ctx)
    call.ctx.contents = contents
    call.files = {p: hashlib.sha256(b).hexdigest() for p, b in sorted(contents.items())}
    call.digest = content_digest(call.spec, call.kwargs, call.files)


def gate_layer(autonomy: Any) -> Layer:
    def layer(call: Call, nxt: Handler) -> Any:
        d = decide(autonomy, call)
        call.decision = d
        if d.effect == "deny":
            raise PermissionDenied(f"{call.actor} may not run {call.spec.key}: {d.reason}",
                                   hint="ask a human for an override, or change the policy "
                                        "(`emergent policy explain`)", tool=call.spec.key, decision=d)
        return nxt(call)
    return layer


def decide(autonomy: Any, call: Call) -> Decision:
    spec = call.spec
    cost = max(spec.cost, call.cost or 0.0)
    return autonomy.decide(autonomy.request_for(
        call.principal, spec.name, spec.side_effect.value, call.resource, cost=cost, confidence=call.confidence,
        network=spec.network, scope_resource=spec.resource_kind == "scope"))


def approval_layer(autonomy: Any) -> Layer:
    """On *ask*: file a request bound to the call's digest and wait for a human (``wait``: True,
    False or seconds); then, or when resuming, consume the approval (once, digest unchanged)."""
    approvals = autonomy.approvals

    def layer(call: Call, nxt: Handler) -> Any:
        d = call.decision
        if call.approval is None:
            if d is None or d.effect != "ask":
                return nxt(call)
            call.kwargs = detached(call.kwargs)  # what is approved is what runs, whoever holds the originals
            if not call.digest:
                call.digest = content_digest(call.spec, call.kwargs, call.files)
            req = approvals.request(principal=call.principal, tool=call.spec.key, args=call.kwargs,
                                    digest=call.digest, files=call.files, resource=call.resource or None,
                                    reason=d.reason, confidence=call.confidence, audit_args=audit_args(call))
            decided = req if call.wait is False else approvals.wait(
                req.id, None if call.wait is True else float(call.wait))
            if decided.status == "pending":
                raise ApprovalPending(f"{call.spec.key} for {call.actor} waits for approval {req.id}",
                                      hint=f"a human approves it and runs it: `emergent approvals approve {req.id} "
                                           f"--run` (or ws.tools.resume({req.id!r}) after approving)",
                                      approval=req.id)
            if decided.status != "approved":
                if call.spec.personal_args:
                    approvals.redact(req.id, call.spec.personal_args, by=call.principal)
                raise PermissionDenied(f"{call.spec.key} for {call.actor} was {decided.status} by "
                                       f"{decided.decided_by}: {decided.decision_reason or 'no reason given'}",
                                       hint="the action did not run", approval=req.id, tool=call.spec.key)
            call.approval = req.id
            again = decide(autonomy, call)  # time passed: a pause or a suspension stops it now
            if again.effect == "deny":
                raise PermissionDenied(f"{call.actor} may no longer run {call.spec.key}: {again.reason}",
                                       hint="the approval was not used", approval=req.id, tool=call.spec.key)
            if call.spec.reads is not None:
                snapshot(call)  # what runs is what is on disk now, and it must be what was approved
            else:
                call.digest = content_digest(call.spec, call.kwargs, call.files)  # and the arguments now
        if not call.digest:
            call.digest = content_digest(call.spec, call.kwargs, call.files)
        approvals.consume(call.approval, principal=call.principal, tool=call.spec.key, digest=call.digest,
                          files=call.files, call_id=call.call_id)
        if not call.spec.personal_args:
            return nxt(call)
        try:
            return nxt(call)
        finally:  # consumed: it never runs again, so it need not keep the personal content it ran with
            approvals.redact(call.approval, call.spec.personal_args, by=call.principal)
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
        self.context = context or (lambda call: ToolContext(principal=call.principal, call_id=call.call_id))
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
        out.append(validate_layer(self.context))
        if self.autonomy is not None:
            out.append(gate_layer(self.autonomy))
        if spec.reads is not None:
            out.append(snapshot_layer)
        if self.autonomy is not None:
            out.append(approval_layer(self.autonomy))
        if self.audit is not None and is_change(spec):
            out.append(intent_layer(self.audit))
        out += self.extra_layers
        out.append(self.breaker.layer)
        out.append(retry_layer(self.sleep) if spec.retry.attempts > 1 else count_layer)
        if spec.timeout and not spec.sandboxed:
            out.append(timeout_layer)
        return out

    def _execute(self, call: Call) -> Any:
        spec = call.spec
        ctx = (call.ctx or self.context(call)) if spec.context_param is not None else None
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

    def _principal(self, principal: Any) -> Principal:
        if self.autonomy is not None:
            try:
                return self.autonomy.principals.verify(principal)  # type: ignore[no-any-return]
            except PrincipalError:
                if self.audit is not None:
                    self.audit.append("tool.refused", "system:gate",
                                      {"claimed": repr(principal)[:200], "why": "not a principal of this workspace"},
                                      durable=True)
                raise
        if not isinstance(principal, Principal):
            raise PrincipalError(f"{principal!r} is not a principal: every tool call needs one", hint=HOW_TO_GET_ONE)
        return principal

    def call(self, ref: str | ToolSpec, args: Any = None, *, principal: Principal, confidence: float | None = None,
             cost: float | None = None, wait: bool | float = True) -> Any:
        """Run tool ``ref`` (``name``, ``name@1.2.0``, ``name@^1``) with ``args`` as ``principal``.

        ``confidence`` (0..1) and ``cost`` count only for agents; ``wait``: True blocks until an
        approval is decided, False raises :class:`ApprovalPending` at once, a number waits that long."""
        who = self._principal(principal)
        spec = ref if isinstance(ref, ToolSpec) else self.registry.resolve(ref)
        call = Call(spec, args, who, confidence, cost, wait, f"{_PREFIX}-{next(_ids)}")
        return self.chain(spec)(call)

    def submit(self, ref: str | ToolSpec, args: Any = None, **kw: Any) -> Future[Any]:
        """Like :meth:`call`, in a background thread (a call that waits for approval resumes there)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tool-call")
        return self._pool.submit(self.call, ref, args, **kw)

    def resume(self, approval_id: str) -> Any:
        """Run the call approval ``approval_id`` was granted for: as its requester, the exact tool
        version and arguments, at most once, and only if the files it reads are unchanged."""
        if self.autonomy is None:
            raise ValidationError("this runner has no autonomy gate, so there is nothing to resume")
        a = self.autonomy.approvals.get(approval_id)
        if a.status == "pending":
            raise ApprovalPending(f"approval {approval_id} is still pending",
                                  hint=f"`emergent approvals approve {approval_id}`", approval=approval_id)
        if a.status != "approved":
            why = f"was already used (by call {a.consumed_by})" if a.status == "consumed" else \
                f"was {a.status}: {a.decision_reason or ''}"
            raise PermissionDenied(f"approval {approval_id} {why}", hint="the action will not run",
                                   approval=approval_id)
        who = self.autonomy.principals.get(a.actor)
        spec = self.registry.resolve(a.tool)
        call = Call(spec, a.args, who, a.confidence, None, False, f"{_PREFIX}-{next(_ids)}", approval=approval_id)
        return self.chain(spec)(call)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
