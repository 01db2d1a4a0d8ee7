"""The agents service: assistants with cards that take tasks by contract net, vote and resolve
conflicts, talking over a bus (``memory`` or ``redis``).

- A task is announced on the ``contract-net`` stream, each eligible agent bids there as itself, the
  award (by :data:`emergent.agents.delegation.RULE`) goes to the ``tasks`` stream; a worker
  (:meth:`Agents.work`, run inline by :meth:`Agents.submit`) consumes it and runs
  ``assistant(agent).ask(text, user=<the delegating principal>)``. The task's state lives in SQL and
  moves by compare-and-set, so a redelivered or duplicated message never runs a task twice.
- Who may hand a task to whom is the policy rule ``agents.delegate`` (side effect ``write``) on
  resource ``agent:NAME``: *deny* refuses (audited), *ask* files an approval (the task waits in
  ``input-required``), *allow* goes. A human at the keyboard may by default; agents are asked.
- Votes and resolutions are stored with every ballot and proposal; one that does not decide files
  an approval so a person chooses (:meth:`Agents.decide_vote`, :meth:`Agents.decide_conflict`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from emergent.agents import _panel
from emergent.agents.bus import Bus, Message, open_bus
from emergent.agents.card import (
    CANCELED,
    COMPLETED,
    FAILED,
    INPUT_REQUIRED,
    SUBMITTED,
    WORKING,
    AgentCard,
    check_skills,
)
from emergent.agents.conflicts import Proposal, Resolution
from emergent.agents.consensus import VoteResult
from emergent.agents.delegation import Award, Bid, Confidence, award, bid, default_confidence
from emergent.agents.tables import agent_cards as cards_t
from emergent.agents.tasks import ABANDONED, LEASE_S, Task, TaskStore
from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, PermissionDenied, PrincipalError, UsageError, ValidationError
from emergent.principals import Principal, check_id

TASKS, CONTRACT_NET = "tasks", "contract-net"
WORKERS = "workers"  # the consumer group of task workers
#: acknowledged messages are kept this long for the monitor, then trimmed (pending ones never are)
RETAIN_S = 86_400.0
DELEGATE = "agents.delegate"
_TASK_ID = re.compile(r"^[0-9a-f]{16}$")
_RUN_STATES = {"completed": COMPLETED, "waiting_approval": INPUT_REQUIRED, "cancelled": CANCELED}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Refusal:
    """A refusal that is not the policy's (the target is suspended), shaped like a gate Decision."""

    reason: str
    effect: str = "deny"


def _tool_name(function_name: str) -> str:
    return function_name.replace("-", ".")


class Agents:
    """Cards, tasks, delegation, votes and resolutions over one bus."""

    def __init__(self, sql: Any, *, bus: str | Bus = "memory", redis: Any = None, namespace: str = "emergent",
                 assistant: Callable[..., Any], autonomy: Any, principals: Any, audit: Any,
                 clock: Clock | None = None, consumer: str | None = None, claim_idle_ms: int = 30_000,
                 confidence: Confidence = default_confidence, retain_s: float = RETAIN_S,
                 bus_secret: bytes | None = None, lease_s: float = LEASE_S) -> None:
        self.sql = sql
        self.assistant = assistant
        self.autonomy = autonomy
        self.principals = principals
        self.audit = audit
        self.clock = clock or SystemClock()
        self.bus = bus if isinstance(bus, Bus) else open_bus(bus, audit=audit, redis=redis, namespace=namespace,
                                                               principals=principals, secret=bus_secret)
        self.store = TaskStore(sql, clock=self.clock, lease_s=lease_s)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.retain_s = retain_s
        self.confidence = confidence
        self.handled = 0  # tasks this process ran (a duplicate message adds nothing)
        self._last_claim = 0.0

    # ------------------------------------------------------------------ cards
    def register(self, name: str, *, skills: Sequence[str] | str, description: str = "", by: Principal) -> AgentCard:
        """Give agent ``name`` a card (creates its assistant and principal the first time)."""
        who = self.principals.verify(by)
        check_id(name, "field 'name': agent name")
        slugs = check_skills(skills)
        if not who.is_human:
            d = self.autonomy.decide_for(who, "agents.register", "write", resource=f"agent:{name}")
            if d.effect != "allow":
                raise PermissionDenied(f"{who.key} may not register agent {name!r}: {d.reason}",
                                       hint="a person registers agents (ws.agents.register(..., by=ws.principal))")
        agent = self.assistant(name).principal
        now = self.clock.now()
        self.audit.append("agents.register", who, {"agent": name, "principal": agent.key, "skills": slugs,
                                                   "description": description[:500]}, durable=True)
        update = cards_t.update().where(cards_t.c.name == name).values(description=description,
                                                                       skills=json.dumps(slugs), updated_at=now)
        try:
            with self.sql.begin() as conn:
                if conn.execute(update).rowcount == 0:
                    conn.execute(cards_t.insert(), {"name": name, "description": description,
                                                    "skills": json.dumps(slugs), "principal": agent.key,
                                                    "created_by": who.key, "created_at": now, "updated_at": now})
        except sa.exc.IntegrityError:  # another process registered it between our update and insert
            with self.sql.begin() as conn:
                conn.execute(update)
        return self.card(name)

    def _card(self, r: Any, tools: bool) -> AgentCard:
        found = [_tool_name(s["function"]["name"]) for s in self.assistant(r.name).tool_schemas()] if tools else []
        return AgentCard(r.name, r.description, json.loads(r.skills), found, r.principal, r.created_by, r.created_at)

    def cards(self, *, tools: bool = True) -> list[AgentCard]:
        """Every registered agent's card; ``tools``: read what the policy lets each use (not denied)."""
        with self.sql.connect() as conn:
            rows = list(conn.execute(sa.select(cards_t).order_by(cards_t.c.name)))
        return [self._card(r, tools) for r in rows]

    def card(self, name: str, *, tools: bool = True) -> AgentCard:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(cards_t).where(cards_t.c.name == name)).first()
        if r is None:
            known = [c.name for c in self.cards(tools=False)]
            raise NotFoundError(f"no agent {name!r} is registered",
                                hint=f"registered: {', '.join(known) or 'none'}; "
                                     "ws.agents.register(name, skills=[...], by=ws.principal) adds one", agent=name)
        return self._card(r, tools)

    def principal_of(self, name: str) -> Principal:
        """A registered agent's principal (issued by the directory, never built from the name alone)."""
        return self.principals.get(self.card(name, tools=False).principal)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ tasks
    def _check_text(self, text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("field 'task': a task needs its text", hint="e.g. 'summarise the notes on X'",
                                  field="task")
        return text.strip()

    def _new_task(self, text: str, skills: list[str], who: Principal) -> Task:
        task = self.store.create(text, skills=skills, submitted_by=who.key)
        self.audit.append("agents.task.submitted", who, {"task": task.id, "skills": skills, "text": text[:500]},
                          durable=True)
        return task

    def submit(self, task_text: str, *, skills: Sequence[str] | str = (), by: Principal, wait: bool = True,
               timeout: float = 120.0) -> Task:
        """Contract net: announce, collect bids, award by the stated rule, run (``wait``) as the winner."""
        who = self.principals.verify(by)
        text, slugs = self._check_text(task_text), check_skills(skills)
        task = self._new_task(text, slugs, who)
        self.bus.publish(CONTRACT_NET, {"type": "announce", "task": task.id, "skills": slugs, "text": text[:500]},
                         principal=who)
        aw, refused = self._auction(task, who)
        note = f" Not eligible (policy): {'; '.join(refused)}." if refused else ""
        self.store.update(task.id, bids=[b.to_dict() for b in aw.bids], award=aw.explanation + note)
        if aw.winner is None:
            return self._finish(task.id, FAILED, who, expect={SUBMITTED}, error=aw.explanation + note)
        return self._hand_over(task.id, aw.winner, who, confidence=aw.bids[0].confidence, wait=wait, timeout=timeout)

    def _auction(self, task: Task, who: Principal) -> tuple[Award, list[str]]:
        load = self.store.load()
        bids: list[Bid] = []
        refused: list[str] = []
        suspended = self.autonomy.suspended()
        for c in self.cards(tools=False):
            if c.principal in suspended:
                refused.append(f"{c.name} is suspended")
                continue
            d = self._may_delegate(who, c.name)
            if d.effect == "deny":
                refused.append(f"{who.key} may not delegate to {c.name}: {d.reason}")
                continue
            b = bid(c, task.text, task.skills, load.get(c.name, 0), self.confidence)
            if b is not None:
                bids.append(b)
                self.bus.publish(CONTRACT_NET, {"type": "bid", "task": task.id, **b.to_dict()},
                                 principal=self.principals.get(c.principal))
        return award(bids, task.skills), refused

    def delegate(self, task: str, to: str, *, by: Principal, wait: bool = True, timeout: float = 120.0) -> Task:
        """Hand a task (an id of a submitted task, or new text) to agent ``to``, if policy lets ``by``."""
        who = self.principals.verify(by)
        card = self.card(to, tools=False)
        if isinstance(task, str) and _TASK_ID.match(task):
            t = self.store.get(task)
            if who.key != t.submitted_by and not who.is_human:
                raise PrincipalError(f"{who.key} may not delegate task {t.id}: {t.submitted_by} submitted it",
                                     hint="its submitter or a person may delegate it", task=t.id)
            if t.state != SUBMITTED or t.assignee is not None:
                raise ValidationError(f"task {t.id} is {t.state}" + (f" with {t.assignee}" if t.assignee else ""),
                                      hint="only a submitted task nobody holds can be delegated", task=t.id)
        else:
            t = self._new_task(self._check_text(task), [], who)
        self.store.update(t.id, award=f"delegated directly by {who.key} to {to} (no contract net)")
        return self._hand_over(t.id, to, who, confidence=self.confidence(card, t.text), wait=wait, timeout=timeout)

    def _may_delegate(self, who: Principal, to: str, confidence: float | None = None) -> Any:
        """The gate's decision; for an agent, its confidence is the target's (bid) confidence in the task."""
        return self.autonomy.decide_for(who, DELEGATE, "write", resource=f"agent:{to}", confidence=confidence)

    def _digest(self, task: Task, to: str) -> str:
        return hashlib.sha256(json.dumps([task.id, to, task.text]).encode()).hexdigest()

    def _hand_over(self, task_id: str, to: str, who: Principal, *, confidence: float, wait: bool,
                   timeout: float) -> Task:
        task = self.store.get(task_id)
        d = self._may_delegate(who, to, confidence)
        if d.effect != "deny" and f"agent:{to}" in self.autonomy.suspended():
            d = _Refusal(f"agent:{to} is suspended")
        if d.effect == "deny":
            self.audit.append("agents.delegate.denied", who, {"task": task.id, "to": f"agent:{to}",
                                                              "reason": d.reason}, durable=True)
            self.store.move(task.id, CANCELED, expect={SUBMITTED}, error=f"refused: {d.reason}")
            raise PermissionDenied(f"{who.key} may not delegate to agent:{to}: {d.reason}",
                                   hint=f"a person adds a rule allowing it (tool {DELEGATE}, resource agent:{to}); "
                                        "nothing was handed over", task=task.id)
        if d.effect == "ask":  # the assignee is recorded only with the filed approval (never before it)
            a = self.autonomy.approvals.request(
                principal=who, tool=DELEGATE, args={"task": task.id, "to": to, "text": task.text[:500]},
                reason=f"{who.key} asks to hand task {task.id} to agent:{to} ({d.reason})",
                digest=self._digest(task, to), resource=f"agent:{to}")
            return self._finish(task.id, INPUT_REQUIRED, who, expect={SUBMITTED}, approval_id=a.id, assignee=to,
                                delegated_by=who.key, error=f"waiting for approval {a.id} of the delegation")
        if not self.store.assign(task.id, to, delegated_by=who.key):  # another delegation got there first
            now = self.store.get(task.id)
            raise UsageError(f"task {task.id} is {now.state}" + (f" with {now.assignee}" if now.assignee else ""),
                             hint="only a submitted task nobody holds can be delegated; nothing was handed over",
                             task=task.id)
        try:
            self.audit.append("agents.delegate", who, {"task": task.id, "to": f"agent:{to}", "decision": d.reason},
                              durable=True)
        except BaseException:
            self.store.unassign(task.id, to)  # not audited: not handed over
            raise
        self.bus.publish(TASKS, {"type": "award", "task": task.id, "to": to}, principal=who)
        return self.wait(task.id, timeout=timeout) if wait else self.store.get(task.id)

    def _finish(self, task_id: str, state: str, who: Principal, *, expect: set[str], lease: float | None = None,
                **values: Any) -> Task:
        moved = self.store.move(task_id, state, expect=expect, lease=lease, **values)
        if moved is not None:
            self.audit.append(f"agents.task.{state}", who, {"task": task_id, **{k: str(v)[:500] for k, v in
                                                                                 values.items()}}, durable=True)
        return moved or self.store.get(task_id)

    def wait(self, task_id: str, timeout: float = 120.0) -> Task:
        """Work the ``tasks`` stream until the task is no longer submitted or working."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.store.get(task_id)
            if t.state not in (SUBMITTED, WORKING) or time.monotonic() >= deadline:
                return t
            self.work(max_messages=10, block_ms=100)

    def resume(self, task_id: str, *, by: Principal, wait: bool = True, timeout: float = 120.0) -> Task:
        """Continue a task in ``input-required`` once a person decided its approval."""
        who = self.principals.verify(by)
        t = self.store.get(task_id)
        if t.state != INPUT_REQUIRED or not t.approval_id:
            return t
        a = self.autonomy.approvals.get(t.approval_id)
        if a.status == "pending":
            return t
        assert t.assignee is not None
        if t.run_id:  # the agent's own run waits on a tool approval: its assistant continues it
            return self._settle_run(t, self.assistant(t.assignee).resume(t.run_id), who, expect={INPUT_REQUIRED})
        if a.status != "approved":
            return self._finish(t.id, CANCELED, who, expect={INPUT_REQUIRED},
                                error=f"delegation {a.status} by {a.decided_by}: {a.decision_reason or 'no reason'}")
        delegator = self.principals.get(a.actor)
        self.autonomy.approvals.consume(a.id, principal=delegator, tool=DELEGATE, digest=self._digest(t, t.assignee),
                                        files={}, call_id=t.id)
        self.store.move(t.id, SUBMITTED, expect={INPUT_REQUIRED}, error=None)
        self.audit.append("agents.delegate", who, {"task": t.id, "to": f"agent:{t.assignee}",
                                                   "decision": f"approved: {a.id}"}, durable=True)
        self.bus.publish(TASKS, {"type": "award", "task": t.id, "to": t.assignee}, principal=delegator)
        return self.wait(t.id, timeout=timeout) if wait else self.store.get(t.id)

    def cancel(self, task_id: str, *, by: Principal) -> Task:
        who = self.principals.verify(by)
        t = self.store.get(task_id)
        if who.key not in (t.submitted_by, t.delegated_by) and not who.is_human:
            raise PermissionDenied(f"{who.key} may not cancel task {t.id}", hint="its submitter or a person may")
        if t.state == WORKING:  # its worker died (lease run out): failed as abandoned, never run again
            return self._abandon(t.id) or self.store.get(task_id)
        return self._finish(task_id, CANCELED, who, expect={SUBMITTED, INPUT_REQUIRED}, error=f"canceled by {who.key}")

    # ------------------------------------------------------------------ the worker
    @property
    def worker(self) -> Principal:
        """The worker's own principal (``service:agents``) for the bus's bookkeeping (claims, acks)."""
        return self.principals.service("agents")  # type: ignore[no-any-return]

    def work(self, *, max_messages: int | None = None, block_ms: int = 0, count: int = 10,
             claim: bool | None = None) -> int:
        """Handle award messages from the ``tasks`` stream, first any a dead worker left unacknowledged
        for ``claim_idle_ms`` (looked for every few seconds; ``claim=True``: now); returns how many
        messages were handled."""
        n = 0
        while max_messages is None or n < max_messages:
            msgs = self._claimed(claim) + self.bus.consume(TASKS, WORKERS, self.consumer, count=count,
                                                           block_ms=block_ms)
            claim = False
            if not msgs:
                return n
            for m in msgs:
                self._handle(m)
                n += 1
        return n

    def _claimed(self, now_please: bool | None) -> list[Message]:
        now = time.monotonic()
        if now_please is False or (now_please is None and now - self._last_claim < min(self.claim_idle_ms / 1000,
                                                                                        5.0)):
            return []
        self._last_claim = now
        self.trim()
        self.reap()
        return self.bus.claim(TASKS, WORKERS, self.consumer, min_idle_ms=self.claim_idle_ms, by=self.worker)

    def trim(self, older_than_s: float | None = None) -> int:
        """Drop the agents' streams' history older than ``older_than_s`` (default ``retain_s``) that
        every consumer group acknowledged; a worker does it every few seconds. Returns how many went."""
        keep = self.retain_s if older_than_s is None else older_than_s
        # the workers' group is created first: an award published before any worker read is kept
        n = self.bus.trim(TASKS, older_than_s=keep, by=self.worker, groups=(WORKERS,))
        return n + sum(self.bus.trim(s, older_than_s=keep, by=self.worker)  # history: read by nobody
                       for s in (CONTRACT_NET, _panel.VOTES, _panel.PROPOSALS))

    def _handle(self, m: Message) -> None:
        body = m.body
        tid = body.get("task") if body.get("type") == "award" else None
        started = None
        if isinstance(tid, str):
            try:
                t = self.store.get(tid)
            except NotFoundError:
                t = None
            if t is not None and t.assignee == body.get("to"):
                if t.state == SUBMITTED and f"agent:{t.assignee}" in self.autonomy.suspended():
                    self._finish(t.id, CANCELED, self.worker, expect={SUBMITTED},
                                 error=f"agent:{t.assignee} is suspended: it gets no task")
                else:
                    started = self.store.move(t.id, WORKING, expect={SUBMITTED})
                if started is None and self.store.get(t.id).state == WORKING and self._abandon(t.id) is None:
                    return  # a live worker holds it: leave the message pending (claimed again if it dies)
        if started is not None:
            self._run(started)
        self.bus.ack(TASKS, WORKERS, m.id, by=self.worker)  # done, or a duplicate for a task past submitted

    def _abandon(self, task_id: str) -> Task | None:
        """Fail the working task if its worker's lease ran out (audited); None while a live worker holds it."""
        gone = self.store.abandon(task_id)
        if gone is not None:
            self.audit.append("agents.task.failed", self.worker, {"task": task_id, "error": ABANDONED}, durable=True)
        return gone

    def reap(self) -> int:
        """Fail every working task whose worker's lease ran out (it died: on the in-process bus its award
        died with it, so no message will bring the task back); a worker does it every few seconds.
        Such a task may have taken effect, so it is never run again. Returns how many were failed."""
        return sum(self._abandon(tid) is not None for tid in self.store.expired())

    def _run(self, t: Task) -> None:
        assert t.assignee is not None and t.delegated_by is not None
        agent = self.principal_of(t.assignee)
        self.audit.append("agents.task.working", agent, {"task": t.id, "for": t.delegated_by}, durable=True)
        self.handled += 1
        lease = [t.lease_until]
        stop = threading.Event()

        def heartbeat() -> None:  # renews the lease while ask() runs; the finish is fenced on it
            while not stop.wait(self.store.lease_s / 3):
                try:
                    new = self.store.renew(t.id, lease[0])  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001 - SQL away for a moment: try again at the next beat
                    log.warning("could not renew the lease of agent task %s", t.id, exc_info=True)
                    continue
                if new is None:
                    return  # lost it (failed as abandoned, or canceled): the finish will find it moved
                lease[0] = new

        beat = threading.Thread(target=heartbeat, name=f"agent-task-{t.id}", daemon=True)
        beat.start()
        try:
            res = self.assistant(t.assignee).ask(t.text, user=self.principals.get(t.delegated_by))
        except Exception as exc:  # noqa: BLE001 - a crash of the run fails this task only, with the reason
            stop.set()
            beat.join()
            log.warning("agent task %s (agent:%s) failed: %s: %s", t.id, t.assignee, type(exc).__name__, exc)
            self._finish(t.id, FAILED, agent, expect={WORKING}, lease=lease[0], error=f"{type(exc).__name__}: {exc}")
            return  # never raised into whoever works the stream (another person's submit(), the CLI worker)
        except BaseException:  # an interrupt: stop renewing, so the lease runs out and the task is failed
            stop.set()
            raise
        stop.set()
        beat.join()
        self._settle_run(t, res, agent, expect={WORKING}, lease=lease[0])

    def _settle_run(self, t: Task, res: Any, who: Principal, *, expect: set[str], lease: float | None = None) -> Task:
        state = _RUN_STATES.get(res.status, FAILED)
        values: dict[str, Any] = {"run_id": res.run_id, "answer": res.answer or None}
        if state == INPUT_REQUIRED:
            values["approval_id"] = res.pending_approval
            values["error"] = f"waiting for approval {res.pending_approval} ({(res.pending_tool or {}).get('tool')})"
        elif state != COMPLETED:
            values["error"] = f"run {res.run_id} {res.status}: {res.stop_reason}"
        else:
            values["error"] = None
        return self._finish(t.id, state, who, expect=expect, lease=lease, **values)

    # ------------------------------------------------------------------ votes and conflicts
    def vote(self, question: str, options: Sequence[str], *, voters: Sequence[str], method: str = "majority",
             quorum: float | None = None, weights: Mapping[str, float] | None = None, by: Principal,
             ballots: Mapping[str, Any] | None = None,
             score: Callable[[AgentCard, str, str], float] | None = None) -> VoteResult:
        """Ask ``voters`` (registered agents) to vote; see :mod:`emergent.agents.consensus`. Each
        agent votes for the option it scores highest by ``score(card, question, option)`` (default:
        the memories of its own scope that mention the option, recalled as itself, plus its card's
        matching words; nothing, or a tie, → it abstains), unless ``ballots`` gives its choice
        (``name: choice``, ``(choice, reason)``, or None to abstain)."""
        return _panel.vote(self, question, options, voters=voters, method=method, quorum=quorum, weights=weights,
                           by=by, ballots=ballots, score=score)

    def decide_vote(self, vote_id: str, choice: str, *, by: Principal, reason: str = "") -> VoteResult:
        """A person settles an escalated vote: approves its approval and records ``choice``."""
        return _panel.decide_vote(self, vote_id, choice, by=by, reason=reason)

    def resolve(self, proposals: Sequence[Proposal | Mapping[str, Any]], *, rule: str = "priority",
                by: Principal) -> Resolution:
        """Resolve conflicting proposals by ``rule`` (priority, confidence, escalate), explained."""
        return _panel.resolve(self, proposals, rule=rule, by=by)

    def decide_conflict(self, resolution_id: str, agent: str, *, by: Principal, reason: str = "") -> Resolution:
        """A person settles an escalated conflict by choosing ``agent``'s proposal."""
        return _panel.decide_conflict(self, resolution_id, agent, by=by, reason=reason)

    # ------------------------------------------------------------------ reading
    def task(self, task_id: str) -> Task:
        return self.store.get(task_id)

    def tasks(self, *, state: str | None = None, assignee: str | None = None, limit: int = 50) -> list[Task]:
        return self.store.list(state=state, assignee=assignee, limit=limit)

    def messages(self, stream: str | None = None, limit: int = 100) -> list[Message]:
        """The newest messages (of one stream, or of all), oldest first."""
        names = [stream] if stream else self.bus.streams()
        found = [m for s in names for m in self.bus.history(s, limit)]
        found.sort(key=lambda m: tuple(int(x) for x in m.id.split("-")))
        return found[-limit:]

    def votes(self, limit: int = 20) -> list[VoteResult]:
        return _panel.votes(self, limit)

    def vote_result(self, vote_id: str) -> VoteResult:
        return _panel.get_vote(self, vote_id)

    def resolutions(self, limit: int = 20) -> list[Resolution]:
        return _panel.resolutions(self, limit)

    def monitor(self) -> Any:
        """The ``AgentMonitor`` widget (emergent.ui.agents): agents, tasks, messages, votes."""
        from emergent.ui.agents import AgentMonitor

        return AgentMonitor(self)

    def close(self) -> None:
        self.bus.close()
