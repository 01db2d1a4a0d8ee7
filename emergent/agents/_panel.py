"""Votes and conflict resolutions of the agents service: ballots and proposals on the bus, results
in SQL, an approval for a person when they do not decide (helpers of :class:`~emergent.agents.Agents`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from emergent.agents import conflicts, consensus
from emergent.agents.card import AgentCard
from emergent.agents.conflicts import Proposal, Resolution
from emergent.agents.consensus import Ballot, VoteResult
from emergent.agents.delegation import words
from emergent.agents.tables import agent_ballots, agent_resolutions, agent_votes
from emergent.errors import NotFoundError, PermissionDenied, PrincipalError, UsageError, ValidationError
from emergent.principals import Principal

if TYPE_CHECKING:
    from emergent.agents.service import Agents

VOTES, PROPOSALS = "votes", "proposals"
Score = Callable[[AgentCard, str, str], float]


def card_score(card: AgentCard, question: str, option: str) -> float:
    """How many of the option's words the agent's card (skills, description) holds."""
    known = words(card.description) | set(card.skills) | {w for s in card.skills for w in words(s)}
    return float(len((words(option) | {option.lower()}) & known))


def _mentions(text: str, option: str) -> bool:
    low = text.lower()
    return option.lower() in low or any(w in low for w in words(option))


def recall_score(agents: Agents, question: str, options: list[str]) -> Score:
    """The default, offline strategy: each agent recalls its own memory scope through the gate (one
    ``memory.recall`` as itself for the question and the options) and scores an option by the
    memories that mention it, plus the words of its card that match it."""
    cache: dict[str, list[str]] = {}

    def texts(card: AgentCard) -> list[str]:
        if card.name not in cache:
            bot = agents.assistant(card.name)
            hits = bot.tools.call("memory.recall", {"query": f"{question} {' '.join(options)}"[:4000], "k": 10,
                                                    "scope": bot.spec.memory_scope}, principal=bot.principal)
            cache[card.name] = [str(h["text"]) for h in hits]
        return cache[card.name]

    def score(card: AgentCard, q: str, option: str) -> float:
        return sum(1.0 for t in texts(card) if _mentions(t, option)) + card_score(card, q, option)

    return score


_NONE = object()


def _ballot(card: AgentCard, question: str, options: list[str], given: Any, score: Score, weight: float) -> Ballot:
    if given is not _NONE:  # an explicit ballot: a choice, (choice, reason), or None to abstain
        choice, reason = (given if isinstance(given, tuple | list) else (given, "explicit ballot"))
        if choice is not None and str(choice) not in options:
            raise ValidationError(f"field 'ballots': {card.name}'s choice {choice!r} is not an option",
                                  hint=f"options: {', '.join(options)}", field="ballots")
        return Ballot(card.principal, None if choice is None else str(choice), weight, str(reason or "abstained"))
    scored = sorted(((float(score(card, question, o)), -i, o) for i, o in enumerate(options)), reverse=True)
    best, _, choice = scored[0]
    listing = ", ".join(f"{o} {s:g}" for s, _, o in scored)
    if best <= 0:
        return Ballot(card.principal, None, weight, "abstained: nothing it knows bears on any option")
    if len(scored) > 1 and scored[1][0] == best:
        return Ballot(card.principal, None, weight, f"abstained: no preference ({listing})")
    return Ballot(card.principal, choice, weight, f"scored {choice!r} {best:g}, the highest of {listing}")


def _escalate(agents: Agents, tool: str, called_by: Principal, item: str, args: dict[str, Any], why: str) -> str:
    """File the approval a person decides, as the agents service (``service:agents``): the service is
    what asks (no agent did), so any person, the caller of the vote too, may decide it."""
    args = {**args, "called_by": called_by.key}
    digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()
    a = agents.autonomy.approvals.request(principal=agents.worker, tool=tool, args=args, reason=why, digest=digest,
                                          resource=item)
    return a.id  # type: ignore[no-any-return]


@contextlib.contextmanager
def _withdrawn_on_failure(agents: Agents, approval: str | None, what: str) -> Iterator[None]:
    """The escalation's approval is withdrawn (best effort) if ``what`` could not be recorded after it was
    filed: it would wait in the inbox for a choice that nothing can take (deciding it says 'not found')."""
    try:
        yield
    except BaseException as exc:
        if approval is not None:
            _withdraw(agents, approval, f"{what} could not be recorded ({type(exc).__name__}); nothing to decide")
        raise


def _withdraw(agents: Agents, approval: str, reason: str) -> bool:
    try:
        agents.autonomy.approvals.reject(approval, by=agents.worker, reason=reason)
        return True
    except Exception:  # noqa: BLE001 - a full disk, or decided meanwhile: deciding the item withdraws it later
        return False


def _withdraw_orphans(agents: Agents, tool: str, item: str) -> bool:
    """Withdraw pending escalations for ``item`` (``vote:ID``, ``conflict:ID``) that was never recorded
    (the process that filed them failed, or was killed, before it recorded the item)."""
    found = [a for a in agents.autonomy.approvals.list("pending") if a.tool == tool and a.resource == item
             and a.actor == agents.worker.key]
    return any([_withdraw(agents, a.id, f"{item} was never recorded (its call failed as it was made); "
                                        "nothing to decide") for a in found])


def _may_speak_for(agents: Agents, who: Principal, tool: str, others: Sequence[AgentCard], what: str) -> None:
    """A person may; an agent needs a rule allowing ``tool`` on each other agent (resource ``agent:NAME``)."""
    if who.is_human:
        return
    for c in {c.name: c for c in others}.values():
        # confidence 1: whether it may speak for another is the rule's to say, not a doubt about a task
        d = agents.autonomy.decide_for(who, tool, "write", resource=f"agent:{c.name}", confidence=1.0)
        if d.effect != "allow":
            raise PermissionDenied(f"{who.key} may not {what.format(name=c.principal)}: {d.reason}",
                                   hint=f"each agent speaks for itself; a person may, or adds a rule allowing "
                                        f"tool {tool} on resource agent:{c.name}")


def vote(agents: Agents, question: str, options: Sequence[str], *, voters: Sequence[str], method: str,
         quorum: float | None, weights: Mapping[str, float] | None, by: Principal,
         ballots: Mapping[str, Any] | None, score: Score | None) -> VoteResult:
    who = agents.principals.verify(by)
    opts = consensus.check_vote(question, options, method, quorum)
    names = list(dict.fromkeys(voters))
    if not names:
        raise ValidationError("field 'voters': a vote needs voters", hint="name registered agents", field="voters")
    unknown = set(ballots or {}) - set(names)
    if unknown:
        raise ValidationError(f"field 'ballots': {sorted(unknown)} are not voters", field="ballots")
    w = consensus.weights_for(names, weights)
    cards = [agents.card(n, tools=False) for n in names]
    # a ballot is its voter's: an agent gives only its own, unless a rule lets it speak for another
    spoken_for = [c for c in cards if c.principal != who.key
                  and (score is not None or weights is not None or c.name in (ballots or {}))]
    _may_speak_for(agents, who, "agents.vote", spoken_for, "cast {name}'s ballot")
    vid = uuid.uuid4().hex[:16]
    how = score or recall_score(agents, question, opts)
    suspended = agents.autonomy.suspended()
    cast = [Ballot(c.principal, None, w[c.name], "abstained: suspended") if c.principal in suspended else
            _ballot(c, question, opts, (ballots or {}).get(c.name, _NONE), how, w[c.name]) for c in cards]
    status, winner, scores, text = consensus.tally(method, opts, cast, voters=len(names), quorum=quorum)
    approval = None
    if winner is None:
        approval = _escalate(agents, "agents.vote", who, f"vote:{vid}",
                             {"vote": vid, "question": question, "options": opts, "tally": scores},
                             f"vote {vid} did not decide ({status}): {text}")
        text += f"; escalated to a person as approval {approval}"
    with _withdrawn_on_failure(agents, approval, f"vote {vid}"):
        return _record_vote(agents, vid, question, opts, method, status, winner, scores, cast, text, quorum,
                            approval, who, cards)


def _record_vote(agents: Agents, vid: str, question: str, opts: list[str], method: str, status: str,
                 winner: str | None, scores: dict[str, float], cast: list[Ballot], text: str, quorum: float | None,
                 approval: str | None, who: Principal, cards: list[AgentCard]) -> VoteResult:
    now = agents.clock.now()
    res = VoteResult(vid, question, opts, method, status, winner, scores, cast, text, quorum, approval, who.key,
                     None, now, now, consensus.dissent(cast, winner))
    agents.audit.append("agents.vote", who, {"vote": vid, "question": question[:500], "method": method,
                                             "status": status, "winner": winner, "tally": scores,
                                             "ballots": [b.to_dict() for b in cast], "approval": approval},
                        durable=True)
    for c, b in zip(cards, cast, strict=True):  # each ballot is a message from its voter (after the vote's entry)
        agents.bus.publish(VOTES, {"type": "ballot", "vote": vid, "choice": b.choice,
                                   "reason": b.reason}, principal=agents.principals.get(c.principal))
    with agents.sql.begin() as conn:
        conn.execute(agent_votes.insert(), {
            "id": vid, "question": question, "options": json.dumps(opts), "method": method, "quorum": quorum,
            "status": status, "winner": winner, "tally": json.dumps(scores), "explanation": text,
            "approval_id": approval, "called_by": who.key, "decided_by": None, "created_at": now, "updated_at": now})
        conn.execute(agent_ballots.insert(), [{"vote_id": vid, **b.to_dict()} for b in cast])
    return res


def _vote_row(agents: Agents, r: Any) -> VoteResult:
    with agents.sql.connect() as conn:
        bs = [Ballot(b.voter, b.choice, b.weight, b.reason) for b in conn.execute(
            sa.select(agent_ballots).where(agent_ballots.c.vote_id == r.id).order_by(agent_ballots.c.voter))]
    return VoteResult(r.id, r.question, json.loads(r.options), r.method, r.status, r.winner, json.loads(r.tally),
                      bs, r.explanation, r.quorum, r.approval_id, r.called_by, r.decided_by, r.created_at,
                      r.updated_at, consensus.dissent(bs, r.winner))


def get_vote(agents: Agents, vote_id: str) -> VoteResult:
    with agents.sql.connect() as conn:
        r = conn.execute(sa.select(agent_votes).where(agent_votes.c.id == vote_id)).first()
    if r is None:
        raise NotFoundError(f"no vote {vote_id!r}", hint="ws.agents.votes() lists them", vote=vote_id)
    return _vote_row(agents, r)


def votes(agents: Agents, limit: int) -> list[VoteResult]:
    with agents.sql.connect() as conn:
        rows = list(conn.execute(sa.select(agent_votes).order_by(agent_votes.c.created_at.desc()).limit(limit)))
    return [_vote_row(agents, r) for r in rows]


def _human(agents: Agents, by: Principal, what: str) -> Principal:
    who = agents.principals.verify(by)
    if not who.is_human:
        raise PrincipalError(f"{who.key} may not {what}", hint="a person decides what the agents escalated")
    return who  # type: ignore[no-any-return]


def _settle_approval(agents: Agents, approval_id: str, who: Principal, reason: str) -> str:
    """Approve the escalation's approval if it still waits; if it was rejected or expired first (in the
    inbox, by the CLI), the person's choice is recorded anyway (the approval only asked for a person):
    returns what happened to it, for the explanation and the audit entry."""
    a = agents.autonomy.approvals.get(approval_id)
    if a.status == "pending":
        try:
            agents.autonomy.approvals.approve(approval_id, by=who, reason=reason)
            return "approved"
        except UsageError:  # expired just now, or decided by someone else meanwhile: read what it is
            a = agents.autonomy.approvals.get(approval_id)
            if a.status == "pending":
                raise
    return f"{a.status}" + (f" by {a.decided_by}" if a.decided_by else "")


def decide_vote(agents: Agents, vote_id: str, choice: str, *, by: Principal, reason: str) -> VoteResult:
    who = _human(agents, by, "decide an escalated vote")
    try:
        v = get_vote(agents, vote_id)
    except NotFoundError as exc:
        if _withdraw_orphans(agents, "agents.vote", f"vote:{vote_id}"):
            exc.hint = "it was never recorded (the call failed as it was made); its approval was withdrawn"
        raise
    if v.winner is not None or not v.approval_id:
        raise UsageError(f"vote {vote_id} is not waiting for a person ({v.status})", vote=vote_id)
    if choice not in v.options:
        raise ValidationError(f"field 'choice': {choice!r} is not an option of vote {vote_id}",
                              hint=f"options: {', '.join(v.options)}", field="choice")
    approval = _settle_approval(agents, v.approval_id, who, f"chose {choice!r}. {reason}".strip())
    text = f"{v.explanation}; {who.key} chose {choice!r}" + (f": {reason}" if reason else "")
    if approval != "approved":
        text += f" (its approval was {approval} first)"
    now = agents.clock.now()
    agents.audit.append("agents.vote.decided", who, {"vote": vote_id, "choice": choice, "reason": reason,
                                                     "approval": approval}, durable=True)
    with agents.sql.begin() as conn:  # only if nobody decided it meanwhile (another process, at the same time)
        done = conn.execute(agent_votes.update().where(agent_votes.c.id == vote_id, agent_votes.c.winner.is_(None))
                            .values(status=consensus.DECIDED, winner=choice, explanation=text, decided_by=who.key,
                                    updated_at=now)).rowcount
    if done != 1:
        now_v = get_vote(agents, vote_id)
        raise UsageError(f"vote {vote_id} was decided meanwhile by {now_v.decided_by}: {now_v.winner!r}; "
                         f"your choice {choice!r} was not recorded", hint="emergent agents votes shows it", vote=vote_id)
    return get_vote(agents, vote_id)


def resolve(agents: Agents, proposals: Sequence[Proposal | Mapping[str, Any]], *, rule: str,
            by: Principal) -> Resolution:
    who = agents.principals.verify(by)
    if rule not in conflicts.RULES:
        raise ValidationError(f"field 'rule': {rule!r} is not a resolution rule",
                              hint=f"use one of {', '.join(conflicts.RULES)}", field="rule")
    if len(proposals) < 1:
        raise ValidationError("field 'proposals': nothing to resolve", field="proposals")
    props = []
    for i, p in enumerate(proposals):
        q = conflicts.proposal_of(p, i)
        props.append(Proposal(q.agent, q.proposal, q.priority, q.confidence, agents.card(q.agent, tools=False).principal))
    _may_speak_for(agents, who, "agents.resolve", [agents.card(p.agent, tools=False) for p in props
                                                   if p.principal != who.key], "file a proposal as {name}")
    off = sorted({p.principal for p in props} & set(agents.autonomy.suspended()))
    if off:
        raise PermissionDenied(f"{', '.join(off)} {'is' if len(off) == 1 else 'are'} suspended: no proposal from it",
                               hint="a person unsuspends it first (emergent policy unsuspend agent:NAME)")
    rid = uuid.uuid4().hex[:16]
    status, winner, text = conflicts.decide(rule, props)
    approval = None
    if status == conflicts.ESCALATED:
        approval = _escalate(agents, "agents.resolve", who, f"conflict:{rid}",
                             {"resolution": rid, "proposals": [p.to_dict() for p in props]}, text)
        text += f" (approval {approval})"
    with _withdrawn_on_failure(agents, approval, f"resolution {rid}"):
        return _record_resolution(agents, rid, rule, status, winner, text, approval, who, props)


def _record_resolution(agents: Agents, rid: str, rule: str, status: str, winner: Proposal | None, text: str,
                       approval: str | None, who: Principal, props: list[Proposal]) -> Resolution:
    now = agents.clock.now()
    idx = props.index(winner) if winner is not None else None
    agents.audit.append("agents.resolve", who, {"resolution": rid, "rule": rule, "status": status, "winner": idx,
                                                "proposals": [p.to_dict() for p in props], "approval": approval},
                        durable=True)
    for p in props:  # each proposal is a message from its agent (after the resolution's entry)
        agents.bus.publish(PROPOSALS, {"type": "proposal", "resolution": rid, "proposal": p.proposal,
                                       "priority": p.priority, "confidence": p.confidence},
                           principal=agents.principals.get(p.principal))
    with agents.sql.begin() as conn:
        conn.execute(agent_resolutions.insert(), {
            "id": rid, "rule": rule, "status": status, "proposals": json.dumps([p.to_dict() for p in props]),
            "winner": idx, "explanation": text, "approval_id": approval, "called_by": who.key, "decided_by": None,
            "created_at": now, "updated_at": now})
    return get_resolution(agents, rid)


def _resolution_row(r: Any) -> Resolution:
    props = [Proposal(**p) for p in json.loads(r.proposals)]
    return Resolution(r.id, r.rule, r.status, props, props[r.winner] if r.winner is not None else None,
                      r.explanation, r.approval_id, r.called_by, r.decided_by, r.created_at, r.updated_at)


def get_resolution(agents: Agents, rid: str) -> Resolution:
    with agents.sql.connect() as conn:
        r = conn.execute(sa.select(agent_resolutions).where(agent_resolutions.c.id == rid)).first()
    if r is None:
        raise NotFoundError(f"no resolution {rid!r}", hint="ws.agents.resolutions() lists them", resolution=rid)
    return _resolution_row(r)


def resolutions(agents: Agents, limit: int) -> list[Resolution]:
    with agents.sql.connect() as conn:
        rows = list(conn.execute(sa.select(agent_resolutions).order_by(agent_resolutions.c.created_at.desc())
                                 .limit(limit)))
    return [_resolution_row(r) for r in rows]


def decide_conflict(agents: Agents, rid: str, agent: str, *, by: Principal, reason: str) -> Resolution:
    who = _human(agents, by, "decide an escalated conflict")
    try:
        res = get_resolution(agents, rid)
    except NotFoundError as exc:
        if _withdraw_orphans(agents, "agents.resolve", f"conflict:{rid}"):
            exc.hint = "it was never recorded (the call failed as it was made); its approval was withdrawn"
        raise
    if res.status != conflicts.ESCALATED or not res.approval_id:
        raise UsageError(f"resolution {rid} is not waiting for a person ({res.status})", resolution=rid)
    idx = next((i for i, p in enumerate(res.proposals) if p.agent == agent), None)
    if idx is None:
        raise ValidationError(f"field 'agent': {agent!r} made no proposal in resolution {rid}",
                              hint=f"proposers: {', '.join(p.agent for p in res.proposals)}", field="agent")
    approval = _settle_approval(agents, res.approval_id, who, f"chose {agent}'s proposal. {reason}".strip())
    text = f"{res.explanation}; {who.key} chose {agent}'s {res.proposals[idx].proposal!r}" + \
        (f": {reason}" if reason else "")
    if approval != "approved":
        text += f" (its approval was {approval} first)"
    agents.audit.append("agents.resolve.decided", who, {"resolution": rid, "winner": idx, "reason": reason,
                                                        "approval": approval}, durable=True)
    with agents.sql.begin() as conn:  # only if nobody decided it meanwhile (another process, at the same time)
        done = conn.execute(agent_resolutions.update().where(agent_resolutions.c.id == rid,
                                                             agent_resolutions.c.status == conflicts.ESCALATED)
                            .values(status=conflicts.RESOLVED, winner=idx, explanation=text, decided_by=who.key,
                                    updated_at=agents.clock.now())).rowcount
    if done != 1:
        now_r = get_resolution(agents, rid)
        raise UsageError(f"resolution {rid} was decided meanwhile by {now_r.decided_by}; your choice of {agent}'s "
                         "proposal was not recorded", hint="emergent agents conflicts shows it", resolution=rid)
    return get_resolution(agents, rid)
