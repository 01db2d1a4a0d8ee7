"""The workflows service: start, wait for, resume, pause and cancel runs; saved workflows; templates.

``Workstation.workflows`` builds one with what it needs injected (SQL, the step services, the
audit trail, the clock, the executor id). Who acts is a :class:`~emergent.principals.Principal`:
the run's principal acts in every tool step (an agent is asked per policy). A run's start and end,
each step's outcome, each compensation, pause, cancel and resume are in the audit trail; a failed
audit write fails the action (a run whose end cannot be recorded is recorded failed).
"""

from __future__ import annotations

import builtins
import concurrent.futures as cf
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emergent.errors import (
    AuditWriteError,
    EmergentError,
    NotFoundError,
    OperationalError,
    PrincipalError,
    TimeoutExceeded,
    UsageError,
    ValidationError,
)
from emergent.workflows._gate import StepFailed, WaitingForApproval
from emergent.workflows._runs import StepState, TemplateInfo, WorkflowRun, states
from emergent.workflows.engine import Context, Driver
from emergent.workflows.executors import open_executor
from emergent.workflows.spec import Builder, Step, Workflow
from emergent.workflows.store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    LEASE_S,
    PAUSED,
    PENDING,
    RUN_FINAL,
    RUNNING,
    WAITING,
    RunRow,
    RunStore,
    StepRow,
    new_owner,
    owner_gone,
)
from emergent.workspace.audited import recorded, verified

TEMPLATES = Path(__file__).resolve().parent / "templates"
log = logging.getLogger(__name__)
RUN_STATES = (RUNNING, PAUSED, WAITING, COMPLETED, FAILED, CANCELLED)
#: sub-workflows nest at most this deep (a recursion between saved workflows is refused before it runs)
MAX_NESTING = 8


@dataclass(frozen=True)
class StepServices:
    """What steps call: the tool gate, assistants by name, the principal directory."""

    tools: Any
    assistant: Any
    principals: Any


@dataclass
class _Live:
    driver: Driver
    finished: threading.Event
    thread: threading.Thread | None = None
    then: list[Any] | None = None  # called once the run stopped (a sub-workflow settles its parent's step)
    failure: BaseException | None = None  # the run's end could not be recorded (e.g. a full disk): wait raises it


def _unrecorded(run_id: str, exc: BaseException) -> EmergentError:
    """The error ``wait`` raises when a run stopped but its end could not be written (a full disk...): the
    same kind of error as the cause, saying which run and how to continue it."""
    cls = type(exc) if isinstance(exc, EmergentError) else OperationalError
    why = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    hint = (f"{getattr(exc, 'hint', '') or 'fix the cause'}; then continue the run: emergent workflows resume "
            f"{run_id} (its completed steps do not run again)")
    msg = f"workflow run {run_id} stopped, but its state could not be recorded: {why}"
    fields = {**getattr(exc, "fields", {}), "run": run_id}
    try:
        return cls(msg, hint=hint, **fields)
    except TypeError:
        return OperationalError(msg, hint=hint, **fields)


def _durable(wf: Workflow) -> bool:
    """Whether a run's start and end entries are written before the call returns. A run of pure ``call``
    steps changes nothing outside its own rows, so its entries are buffered like a read-only action's (a
    buffered write that fails still fails the next one: the run's end, which is then recorded failed);
    a run with any step that crosses the gate writes them durably, as each such step's intent is."""
    return any(s.kind != "call" for s in wf.steps)


class Workflows:
    """Workflows of one workspace. ``executor`` is the default executor id for ``call`` steps."""

    def __init__(self, sql: Any, *, services: StepServices, audit: Any, clock: Any, executor: str = "threads",
                 max_workers: int = 32, workspace: Path | str | None = None, lease_s: float = LEASE_S,
                 checkpoint: str = "batched") -> None:
        self.store = RunStore(sql, lease_s=lease_s)
        self.services, self.audit, self.clock = services, audit, clock
        self.default_executor = executor
        self.max_workers = max_workers
        self.workspace = Path(workspace) if workspace is not None else None
        self.checkpoint = self._check_checkpoint(checkpoint)
        self.owner = new_owner()
        self._pool: cf.ThreadPoolExecutor | None = None
        self._executors: dict[str, Any] = {}
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        # runs this process stopped driving without recording their end (a full disk): its lease on them
        # is stale, and exactly one resume here may take them over (see _lease_gone and _continue)
        self._stranded: set[str] = set()
        self._tools_ready = False

    @staticmethod
    def _check_checkpoint(mode: str) -> str:
        if mode not in ("batched", "each"):
            raise ValidationError(f"checkpoint {mode!r} is not a checkpoint mode",
                                  hint="batched (pure call steps group-committed within 20 ms) or each", field="checkpoint")
        return mode

    # ------------------------------------------------------------------ resources
    @property
    def pool(self) -> cf.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="wf-step")
            return self._pool

    def executor(self, spec: str | None = None) -> Any:
        """The executor for ``spec`` (default: the configured one), opened once and kept."""
        key = spec or self.default_executor
        with self._lock:
            ex = self._executors.get(key)
            if ex is None:
                ex = self._executors[key] = open_executor(key, max_workers=self.max_workers)
            return ex

    def _context(self, executor: str | None, checkpoint: str | None) -> Context:
        return Context(self.store, self.services, self.audit, self.clock, self.executor(executor), self.pool,
                       self.owner, self._run_child, self._check_checkpoint(checkpoint or self.checkpoint))

    # ------------------------------------------------------------------ definitions
    def resolve(self, workflow: Workflow | Builder | str | Path | dict[str, Any]) -> Workflow:
        """A workflow from an object, a builder, a registered name, a template name, a YAML file or text."""
        if isinstance(workflow, Builder):
            workflow = workflow.workflow
        if isinstance(workflow, Workflow):
            return workflow.validate()
        if isinstance(workflow, dict):
            return Workflow.parse(workflow)
        if isinstance(workflow, Path) or (isinstance(workflow, str) and "\n" not in workflow and
                                           workflow.endswith((".yaml", ".yml"))):
            return Workflow.from_yaml(Path(workflow))
        if isinstance(workflow, str) and ("\n" in workflow or ":" in workflow):
            return Workflow.from_yaml(workflow)
        return self.named(str(workflow))

    def named(self, name: str) -> Workflow:
        data = self.store.get_def(name)
        if data is not None:
            return Workflow.from_data(data).validate()
        if name in self._template_names():
            return self.template(name)
        known = self.store.def_names() + self._template_names()
        raise NotFoundError(f"no workflow named {name!r}", hint=f"registered and templates: {', '.join(known) or 'none'}"
                                                                "; register one with ws.workflows.register(wf, by=...)",
                            workflow=name)

    def register(self, workflow: Workflow | Builder | str | Path, *, by: Any) -> Workflow:
        """Save ``workflow`` by its name (sub-workflows and ``start("name")`` find it)."""
        who = verified(self.services.principals, by)
        wf = self.resolve(workflow)
        data = wf.to_data()
        for raw in data["steps"]:
            if raw.get("kind") == "call" and not raw.get("fn"):
                raise ValidationError(f"step {raw['id']!r}: field 'fn': a saved workflow's call step needs a function "
                                      "importable by module:qualname (not a lambda or a local function)",
                                      step=raw["id"], field="fn")
        if not who.is_human:  # what a person saved (or a template) runs as whoever starts it: agents keep off
            calls = [st.id for st in wf.steps if st.kind == "call"]
            if calls:  # a saved call step runs Python in the process of whoever starts it, as them
                raise PrincipalError(f"{who.key} may not save call step {calls[0]!r}: a saved workflow's Python "
                                     "runs in the process of whoever starts it", hint="only a person saves call "
                                     "steps; use tool steps (the gate decides per principal)", principal=who.key)
            owner = self.store.def_owner(wf.name)
            if wf.name in self._template_names() or (owner is not None and owner != who.key):
                raise PrincipalError(f"{who.key} may not replace workflow {wf.name!r} "
                                     f"({'a template' if owner is None else 'saved by ' + owner})",
                                     hint="register it under a new name", principal=who.key, workflow=wf.name)
        with recorded(self.audit, "workflow.register", who, {"workflow": wf.name, "version": wf.version}):
            self.store.save_def(wf.name, wf.version, data, who.key, self.clock.now())
        return wf

    def templates(self) -> builtins.list[TemplateInfo]:
        out = []
        for name in self._template_names():
            try:
                wf = Workflow.from_yaml(self._template_text(name))
            except ValidationError:
                continue
            out.append(TemplateInfo(name, wf.description, dict(wf.inputs), str(TEMPLATES / f"{name}.yaml")))
        return out

    def template(self, name: str) -> Workflow:
        """Template ``name`` (``emergent/workflows/templates/NAME.yaml``); the files it needs are put in the
        workspace first when missing."""
        if name not in self._template_names():
            raise NotFoundError(f"no workflow template {name!r}",
                                hint=f"templates: {', '.join(self._template_names()) or 'none'}", template=name)
        mod = self._templates_module()
        if mod is not None and self.workspace is not None and hasattr(mod, "prepare"):
            mod.prepare(name, self.workspace)
        return Workflow.from_yaml(self._template_text(name))

    @staticmethod
    def _templates_module() -> Any:
        try:
            from emergent.workflows import templates as mod
        except ImportError:
            return None
        return mod

    def _template_names(self) -> builtins.list[str]:
        mod = self._templates_module()
        if mod is not None and hasattr(mod, "names"):
            return list(mod.names())
        return sorted(p.stem for p in TEMPLATES.glob("*.yaml"))

    def _template_text(self, name: str) -> str:
        mod = self._templates_module()
        if mod is not None and hasattr(mod, "text"):
            return str(mod.text(name))
        return (TEMPLATES / f"{name}.yaml").read_text(encoding="utf-8")

    # ------------------------------------------------------------------ running
    def start(self, workflow: Workflow | Builder | str | Path, inputs: dict[str, Any] | None = None, *,
              principal: Any, executor: str | None = None, checkpoint: str | None = None) -> str:
        """Start a run in the background as ``principal``; its id."""
        who = verified(self.services.principals, principal)
        wf = self.resolve(workflow)
        self._check_subflows(wf)
        values = self._inputs(wf, inputs)
        ctx = self._context(executor, checkpoint)
        run_id = "wf-" + uuid.uuid4().hex[:16]
        self._create(run_id, wf, values, who, None, ctx)
        self._launch(Driver(ctx, run_id=run_id, workflow=wf, inputs=values, principal=who), background=True)
        return run_id

    def run(self, workflow: Workflow | Builder | str | Path, inputs: dict[str, Any] | None = None, *,
            principal: Any, executor: str | None = None, timeout: float | None = None,
            checkpoint: str | None = None) -> WorkflowRun:
        """Run to its end (or a pause, a wait for approval, a cancel) and return it."""
        run_id = self.start(workflow, inputs, principal=principal, executor=executor, checkpoint=checkpoint)
        return self.wait(run_id, timeout)

    def _check_subflows(self, wf: Workflow, path: tuple[str, ...] = ()) -> None:
        """Sub-workflows exist (and are valid) before anything runs; none calls itself, directly or through
        others, and they nest at most MAX_NESTING deep."""
        path = (*path, wf.name)
        if len(path) > MAX_NESTING:
            raise ValidationError(f"sub-workflows nest deeper than {MAX_NESTING}: {' → '.join(path)}",
                                  hint="flatten the workflows", field="workflow")
        for s in wf.steps:
            if s.kind != "workflow":
                continue
            if isinstance(s.workflow, str) and s.workflow in path:
                raise ValidationError(f"step {s.id!r}: field 'workflow': sub-workflow cycle: "
                                      f"{' → '.join((*path[path.index(s.workflow):], s.workflow))}",
                                      hint="a workflow cannot run itself, directly or through others",
                                      step=s.id, field="workflow")
            try:
                child = self.named(s.workflow) if isinstance(s.workflow, str) else Workflow.parse(s.workflow or {})
            except (NotFoundError, ValidationError) as exc:
                raise ValidationError(f"step {s.id!r}: field 'workflow': {exc.message}", hint=exc.hint or None,
                                      step=s.id, field="workflow") from None
            self._check_subflows(child, path)

    @staticmethod
    def _inputs(wf: Workflow, given: dict[str, Any] | None) -> dict[str, Any]:
        given = dict(given or {})
        unknown = sorted(set(given) - set(wf.inputs))
        if unknown:
            raise ValidationError(f"workflow {wf.name!r} has no input {unknown[0]!r}",
                                  hint=f"its inputs: {', '.join(wf.inputs) or 'none'}", field=unknown[0])
        values = {**wf.inputs, **given}
        for k, v in given.items():
            try:
                json.dumps(v, allow_nan=False)
            except (TypeError, ValueError, RecursionError):
                raise ValidationError(f"input {k!r} is not JSON data ({type(v).__name__})",
                                      hint="inputs are JSON values: str, number (not NaN), bool, None, lists and "
                                           "mappings of them", field=k) from None
        missing = [k for k, v in values.items() if v is None and k not in given]
        if missing:
            raise ValidationError(f"workflow {wf.name!r} needs input {missing[0]!r}",
                                  hint=f"pass inputs={{{missing[0]!r}: ...}} (--input {missing[0]}=... on the CLI)",
                                  field=missing[0])
        return values

    def _create(self, run_id: str, wf: Workflow, inputs: dict[str, Any], who: Any, parent: str | None,
                ctx: Context) -> None:
        data = wf.to_data()
        if self.audit is not None:  # the intent, before anything runs (see _durable)
            self.audit.append("workflow.run.start", who, {"run": run_id, "workflow": wf.name, "version": wf.version,
                                                          "inputs": inputs, "parent": parent,
                                                          "executor": ctx.executor.name}, durable=_durable(wf))
        self.store.create(run_id=run_id, workflow=wf.name, version=wf.version, spec=data, inputs=inputs,
                          principal=who.key, parent=parent, owner=self.owner, now=self.clock.now())

    def _tools_loaded(self) -> None:
        """Load the tool registry's entry points once, here, before steps call tools from several threads
        at once (the registry's lazy first load is not safe to race; see /tmp request to the lead)."""
        if self._tools_ready:
            return
        with self._lock:
            load = getattr(getattr(self.services.tools, "registry", None), "load_entry_points", None)
            if load is not None:
                load()
            self._tools_ready = True

    def _launch(self, driver: Driver, *, background: bool, then: Any = None) -> _Live:
        if any(s.kind != "call" for s in driver.wf.steps):
            self._tools_loaded()
        live = _Live(driver, threading.Event(), then=[then] if then is not None else None)
        with self._lock:
            if len(self._live) > 256:  # runs started and never waited for: forget the finished ones
                for rid in [r for r, lv in self._live.items() if lv.finished.is_set()]:
                    del self._live[rid]
            self._live[driver.run_id] = live
        if background:
            live.thread = threading.Thread(target=self._drive, args=(live,), name=f"wf-{driver.run_id}", daemon=True)
            live.thread.start()
        else:
            self._drive(live)
        return live

    def _driving(self, run_id: str) -> _Live | None:
        """The run's driver in this process, while it still drives it."""
        live = self._live.get(run_id)
        return live if live is not None and not live.finished.is_set() else None

    def _drive(self, live: _Live) -> None:
        d = live.driver
        try:
            try:
                status = d.drive()
                error = d.error
            except Exception as exc:  # noqa: BLE001 - recorded as the run's failure
                status, error = FAILED, d.error or f"{type(exc).__name__}: {exc}"
            if status != RUNNING:  # RUNNING: another process took the run over
                try:
                    self._finish(d, status, error)
                except Exception as exc:  # noqa: BLE001 - e.g. a full disk: wait() raises it, never this thread
                    log.error("workflow run %s stopped %s but its end could not be recorded: %s", d.run_id,
                              status, exc)
                    live.failure = exc
                    with self._lock:
                        self._stranded.add(d.run_id)
        finally:
            with self._lock:
                live.finished.set()  # kept in _live until waited for: wait() returns what this process saw
                then, live.then = live.then, None
            for call in then or ():
                call()

    def _finish(self, d: Driver, status: str, error: str | None) -> None:
        outputs = getattr(d, "outputs_final", None) if status == COMPLETED else None
        if self.audit is not None:
            try:
                self.audit.append("workflow.run.finish", d.principal, {
                    "run": d.run_id, "workflow": d.wf.name, "status": status, "error": (error or "")[:500] or None,
                    "wall_s": round(d.wall_s, 6)}, durable=_durable(d.wf))
            except AuditWriteError as exc:
                status, outputs = FAILED, None
                error = f"the run's end could not be recorded in the audit trail: {exc.message}"
        d.ended_at = self.clock.now()
        self.store.finish(d.run_id, owner=self.owner, status=status, now=d.ended_at,
                          error=error if status in (FAILED, CANCELLED) else None, outputs=outputs)

    def wait(self, run_id: str, timeout: float | None = None) -> WorkflowRun:
        """Block until run ``run_id`` stops (ends, pauses, waits for an approval); TimeoutExceeded after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        live = self._live.get(run_id)
        if live is not None:
            if not live.finished.wait(timeout):
                raise TimeoutExceeded(f"workflow run {run_id} did not stop within {timeout:g} s",
                                      hint="it goes on in the background: wait(run_id) again or cancel(run_id)",
                                      run=run_id)
            with self._lock:
                self._live.pop(run_id, None)
            if live.failure is not None:
                raise _unrecorded(run_id, live.failure) from live.failure
            return self._with_stats(live)
        while True:
            row = self.store.get(run_id)
            if row.status != RUNNING or (row.lease_owner != self.owner and self._abandoned(row)):
                return self.get(run_id)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutExceeded(f"workflow run {run_id} did not stop within {timeout:g} s", run=run_id)
            time.sleep(0.05)

    def _with_stats(self, live: _Live) -> WorkflowRun:
        """The run as this process drove it: the run's row, and its steps from memory (they equal the
        checkpoints written: the driver flushed them before it stopped), with timing stats."""
        d = live.driver
        row = self.store.get(d.run_id, spec=False)
        if row.lease_owner is not None or row.updated_at > d.ended_at:  # someone drove it since: read it all
            return self.get(d.run_id)
        rows = [StepRow(n.key, n.step.id, n.status, n.attempt, n.output, n.error, n.approval_id, n.seq,
                        n.started_at, n.finished_at) for n in d.nodes.values() if n.persisted]
        seen = {r.key for r in rows}  # steps a resumed run never reached again (a failed one) keep their row
        rows += [p for k, p in d.prior.items() if k not in seen]
        rows.sort(key=lambda r: (r.seq if r.seq is not None else 1 << 30, r.started_at or 0.0))
        run = WorkflowRun(row.id, row.workflow, row.version, row.status, row.principal, row.inputs, row.outputs,
                          row.error, row.created_at, row.updated_at, states(d.wf, rows), row.parent)
        run.stats = {"wall_s": d.wall_s, "steps": sum(1 for n in d.nodes.values() if n.status != PENDING)}
        return run

    def abandoned(self, run_id: str) -> bool:
        """True when run ``run_id`` reads ``running`` but nothing drives it (its process was killed, or its
        lease ran out): it stays so until someone resumes it (``emergent workflows resume``)."""
        return self._abandoned(self.store.get(run_id, spec=False))

    def _abandoned(self, row: RunRow) -> bool:
        return row.status == RUNNING and self._lease_gone(row)

    def _lease_gone(self, row: RunRow) -> bool:
        """The lease ran out, or its owner was a process on this host that no longer exists."""
        if row.lease_owner == self.owner and row.id in self._stranded and self._driving(row.id) is None:
            return True  # this process holds it, but its driver stopped without recording the end
        return (row.lease_until or 0.0) < self.clock.now() or owner_gone(row.lease_owner)

    def resume(self, run_id: str, *, principal: Any, workflow: Workflow | Builder | None = None,
               executor: str | None = None, timeout: float | None = None) -> WorkflowRun:
        """Continue a run that was paused, waits for a decided approval, or whose process died; blocks.
        Completed steps are not run again. ``workflow``: the same workflow, when its call steps' functions
        cannot be imported by name (lambdas, local functions)."""
        who = verified(self.services.principals, principal)
        if self._driving(run_id) is not None:
            return self.wait(run_id, timeout)
        row = self.store.get(run_id)
        if row.status in RUN_FINAL:
            return self.get(run_id)
        if not who.is_human and who.key != row.principal:
            raise PrincipalError(f"{who.key} may not resume run {run_id} of {row.principal}",
                                 hint="the run's own principal or a person resumes it", principal=who.key)
        if row.lease_owner is not None and not self._lease_gone(row):
            # a pause asked from elsewhere leaves the driver finishing its running steps with the lease:
            # a second driver now would find those steps "running" and run or compensate them twice
            pausing = " (pausing: its running steps are finishing)" if row.status == PAUSED else ""
            raise UsageError(f"workflow run {run_id} is being driven by {row.lease_owner}{pausing}",
                             hint="wait for it (ws.workflows.wait(run_id)), or pause it and resume it once it "
                                  "is paused", run=run_id)
        wf = self._spec_of(row, workflow)
        actor = self.services.principals.get(row.principal)
        if workflow is None and who.key != actor.key and not actor.is_human and _has_calls(wf):
            # the stored call steps name functions the run's agent chose: imported here, they would run
            # in this process with its rights (a person's), not in the agent's own process
            raise PrincipalError(f"run {run_id} of {actor.key} has Python call steps: resuming it as {who.key} "
                                 "would run functions the agent chose in this process",
                                 hint=f"resume it as {actor.key} (its own process), or pass the workflow with your "
                                      "code: resume(run_id, workflow=wf, principal=...)", principal=who.key)
        ctx = self._context(executor, None)
        live = self._continue(row, wf, actor, who, ctx, background=True)
        return self.wait(live.driver.run_id, timeout)

    def _spec_of(self, row: RunRow, workflow: Workflow | Builder | None) -> Workflow:
        if workflow is not None:
            wf = workflow.workflow if isinstance(workflow, Builder) else workflow
            if wf.name != row.workflow:
                raise ValidationError(f"run {row.id} is of workflow {row.workflow!r}, not {wf.name!r}",
                                      field="workflow")
            wf.validate()
            differs = _first_difference(wf.to_data(), row.spec)
            if differs is not None:  # only the run's own steps run under it (they were audited at its start)
                raise ValidationError(f"run {row.id} was started with another version of {wf.name!r}: {differs} "
                                      "differs", hint="pass the workflow the run started with (only functions "
                                      "that cannot be found by name are taken from it), or start a new run",
                                      field="workflow")
            return wf
        wf = Workflow.from_data(row.spec)
        for s in wf.steps:
            if s.kind == "call" and s.fn is None:
                raise ValidationError(f"step {s.id!r}: field 'fn': its function cannot be found by name (a lambda or "
                                      "a local function)", hint="pass the workflow again: resume(run_id, "
                                      "workflow=wf, principal=...)", step=s.id, field="fn")
        return wf

    def _continue(self, row: RunRow, wf: Workflow, actor: Any, who: Any, ctx: Context, *, background: bool,
                  then: Any = None) -> _Live:
        if row.lease_owner == self.owner:  # the claim below cannot tell two threads of this process apart
            with self._lock:
                if row.id not in self._stranded or self._driving(row.id) is not None:
                    raise UsageError(f"workflow run {row.id} is being driven by this process",
                                     hint="wait for it: ws.workflows.wait(run_id)", run=row.id)
                self._stranded.discard(row.id)
        if not self.store.claim(row, owner=self.owner, now=self.clock.now()):
            raise UsageError(f"workflow run {row.id} was taken over by another process just now",
                             hint="wait for it: ws.workflows.wait(run_id)", run=row.id)
        if self.audit is not None:
            try:
                self.audit.append("workflow.run.resume", who, {"run": row.id, "was": row.status,
                                                               "after": "abandoned" if row.status == RUNNING
                                                               else row.status}, durable=True)
            except AuditWriteError:
                self.store.finish(row.id, owner=self.owner, status=row.status, now=self.clock.now(), error=row.error)
                raise
        driver = Driver(ctx, run_id=row.id, workflow=wf, inputs=row.inputs, principal=actor,
                        prior=self.store.steps(row.id))
        return self._launch(driver, background=background, then=then)

    def pause(self, run_id: str, *, by: Any) -> None:
        """No new step starts; the running ones finish; the run is ``paused`` until resumed."""
        self._control(run_id, PAUSED, by)

    def cancel(self, run_id: str, *, by: Any) -> None:
        """Stop the run: no new step starts, running ones are abandoned (their outcome ignored)."""
        self._control(run_id, CANCELLED, by)

    def _control(self, run_id: str, what: str, by: Any) -> None:
        who = verified(self.services.principals, by)
        row = self.store.get(run_id)
        if row.status in RUN_FINAL:
            raise UsageError(f"workflow run {run_id} is already {row.status}", run=run_id)
        if what == PAUSED and row.status != RUNNING:
            raise UsageError(f"workflow run {run_id} is {row.status}, not running: there is nothing to pause",
                             hint="resume it (ws.workflows.resume) or cancel it", run=run_id)
        if not who.is_human and who.key != row.principal:
            raise PrincipalError(f"{who.key} may not {'pause' if what == PAUSED else 'cancel'} run {run_id}",
                                 hint="the run's own principal or a person does", principal=who.key)
        kind = "workflow.run.pause" if what == PAUSED else "workflow.run.cancel"
        with recorded(self.audit, kind, who, {"run": run_id, "was": row.status}):
            live = self._driving(run_id)
            if live is not None:
                live.driver.request(what)
            elif row.status == RUNNING and not self._abandoned(row):
                self.store.request(run_id, what, now=self.clock.now())  # its driver sees it within a second
            elif what == CANCELLED or row.status == RUNNING:
                self.store.request(run_id, what, now=self.clock.now())

    # ------------------------------------------------------------------ sub-workflows
    def _run_child(self, step: Step, inputs: dict[str, Any], *, principal: Any, parent: str,
                   run_id: str) -> cf.Future[Any]:
        """A sub-workflow step: its own run (id derived from the parent's and the step's; resumed, not
        restarted, when it exists already), driven by its own thread. The future settles when the child
        stops, so no thread of the engine's pool waits on it (a fan-out over sub-workflows cannot starve
        the pool their own steps need)."""
        out: cf.Future[Any] = cf.Future()
        out.set_running_or_notify_cancel()
        try:
            wf = Workflow.from_data(step.workflow) if isinstance(step.workflow, dict) else \
                self.named(str(step.workflow))
            self._check_depth(parent)
            ctx = self._context(None, None)
            try:
                row: RunRow | None = self.store.get(run_id)
            except NotFoundError:
                row = None

            def then() -> None:
                self._settle_child(out, wf.name, run_id)

            with self._lock:  # still running here (an earlier attempt that timed out): settle with it
                live = self._live.get(run_id)
                if live is not None and not live.finished.is_set():
                    live.then = [*(live.then or []), then]
                    return out
            if row is None:
                values = self._inputs(wf, inputs)
                self._create(run_id, wf, values, principal, parent, ctx)
                self._launch(Driver(ctx, run_id=run_id, workflow=wf, inputs=values, principal=principal),
                             background=True, then=then)
            elif row.status == RUNNING and not self._abandoned(row):
                raise StepFailed(f"sub-workflow run {run_id} is being driven by {row.lease_owner}",
                                 hint="wait for it, or pause it and resume this run", run=run_id)
            elif row.status not in RUN_FINAL:
                self._continue(row, wf, principal, principal, ctx, background=True, then=then)
            else:
                then()
        except BaseException as exc:  # noqa: BLE001 - the step's outcome
            if not out.done():
                out.set_exception(exc)
        return out

    def _check_depth(self, parent: str) -> None:
        depth, up = 1, self.store.get(parent, spec=False).parent
        while up is not None:  # a saved workflow changed since the start check: still bounded
            depth, up = depth + 1, self.store.get(up, spec=False).parent
            if depth >= MAX_NESTING:
                raise StepFailed(f"sub-workflows nest deeper than {MAX_NESTING} (run {parent})",
                                 hint="flatten the workflows")

    def _settle_child(self, out: cf.Future[Any], name: str, run_id: str) -> None:
        try:
            child = self.get(run_id)
            if child.status == COMPLETED:
                out.set_result(child.outputs or {})
            elif child.status in (WAITING, PAUSED):  # the step waits with it; resuming the parent resumes it
                approval = next((s.approval_id for s in child.steps if s.status == WAITING), None)
                out.set_exception(WaitingForApproval(approval, {"run_id": run_id}))
            else:
                out.set_exception(StepFailed(f"sub-workflow {name!r} (run {run_id}) ended {child.status}: "
                                             f"{child.error or ''}", hint=f"emergent workflows show {run_id}",
                                             run=run_id))
        except BaseException as exc:  # noqa: BLE001 - the step's outcome
            if not out.done():
                out.set_exception(exc)

    # ------------------------------------------------------------------ reading
    def get(self, run_id: str) -> WorkflowRun:
        row = self.store.get(run_id)
        wf = Workflow.from_data(row.spec)
        return WorkflowRun(row.id, row.workflow, row.version, row.status, row.principal, row.inputs, row.outputs,
                           row.error, row.created_at, row.updated_at, states(wf, self.store.steps(run_id)),
                           row.parent)

    def runs(self, limit: int = 20, status: str | None = None) -> builtins.list[WorkflowRun]:
        if status is not None and status not in RUN_STATES:
            raise ValidationError(f"{status!r} is not a run status", hint=f"one of: {', '.join(RUN_STATES)}",
                                  field="status")
        out = []
        for row in self.store.recent(limit=limit, status=status):
            wf = Workflow.from_data(row.spec)
            out.append(WorkflowRun(row.id, row.workflow, row.version, row.status, row.principal, row.inputs,
                                   row.outputs, row.error, row.created_at, row.updated_at,
                                   states(wf, self.store.steps(row.id)), row.parent))
        return out

    def widget(self) -> Any:
        from emergent.ui.workflows import WorkflowRuns

        return WorkflowRuns(self)

    def close(self) -> None:
        """Pause runs still going (they resume later from their checkpoints), then free the threads."""
        going = [lv for lv in list(self._live.values()) if not lv.finished.is_set()]
        for live in going:  # all at once: a parent's sub-workflow step then settles with its paused child
            live.driver.request(PAUSED)
        deadline = time.monotonic() + 5.0
        for live in going:
            if not live.finished.wait(max(0.0, deadline - time.monotonic())):
                # never cancelled for closing: a cancelled run cannot be resumed. Its running step goes on
                # in its thread and the run ends paused; if this process exits first, the run is left
                # running under a dead owner and resume applies the interrupted-step rule to that step
                log.warning("workflow run %s is still finishing a running step as the service closes",
                            live.driver.run_id)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for ex in self._executors.values():
            ex.close()
        self._executors.clear()


__all__ = ["StepServices", "StepState", "TemplateInfo", "WorkflowRun", "Workflows"]


def _has_calls(wf: Workflow | dict[str, Any]) -> bool:
    """Whether ``wf`` or an inline sub-workflow in it has a Python ``call`` step."""
    steps = wf.steps if isinstance(wf, Workflow) else wf.get("steps") or []
    for s in steps:
        kind, child = (s.kind, s.workflow) if not isinstance(s, dict) else (s.get("kind"), s.get("workflow"))
        if kind == "call" or (kind == "workflow" and isinstance(child, dict) and _has_calls(child)):
            return True
    return False


def _first_difference(given: dict[str, Any], stored: dict[str, Any]) -> str | None:
    """Where ``given`` (a workflow's stored form) differs from the one a run started with, or None."""
    def norm(x: Any) -> Any:
        return json.loads(json.dumps(x, sort_keys=True, default=repr))

    g, s = norm(given), norm(stored)
    g_steps, s_steps = g.pop("steps", []), s.pop("steps", [])
    for key in sorted(set(g) | set(s)):
        if g.get(key) != s.get(key):
            return f"field {key!r}"
    if [x.get("id") for x in g_steps] != [x.get("id") for x in s_steps]:
        return "the list of steps"
    for a, b in zip(g_steps, s_steps, strict=True):
        if a != b:
            return f"step {a.get('id')!r}"
    return None
