"""Votes among agents: majority, weighted and quorum, with the dissent recorded.

- **majority**: the option with more than half of the ballots cast wins; none has → no majority.
- **weighted**: each ballot counts its voter's weight (default 1); the heaviest option wins; a tie
  at the top → no majority.
- **quorum**: as majority, but only when at least ``quorum`` voters cast a ballot (``quorum`` is a
  count, or a share of the voters when below 1); fewer → no quorum.

A voter may abstain (a ballot without a choice). Whatever the method, a ``quorum`` given is
checked first. A vote that does not decide (no quorum, no majority) is *escalated*: the service
files an approval so a person decides. Every ballot is kept with its reason; the ballots for
anything but the winner are the **dissent**.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from emergent.errors import ValidationError

METHODS = ("majority", "weighted", "quorum")
DECIDED, NO_QUORUM, NO_MAJORITY, ESCALATED = "decided", "no-quorum", "no-majority", "escalated"


@dataclass(frozen=True, slots=True)
class Ballot:
    voter: str  # the voting agent's principal key
    choice: str | None  # None: abstained
    weight: float = 1.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VoteResult:
    id: str
    question: str
    options: list[str]
    method: str
    status: str  # decided | no-quorum | no-majority | escalated (a person was asked) | decided after that
    winner: str | None
    tally: dict[str, float]
    ballots: list[Ballot]
    explanation: str
    quorum: float | None = None
    approval_id: str | None = None
    called_by: str = ""
    decided_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    dissent: list[Ballot] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.winner is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ballots"] = [b.to_dict() for b in self.ballots]
        d["dissent"] = [b.to_dict() for b in self.dissent]
        return d

    def __str__(self) -> str:
        return f"vote {self.id} [{self.status}] {self.question!r}: {self.explanation}"


def check_vote(question: str, options: Sequence[str], method: str, quorum: float | None) -> list[str]:
    if not isinstance(question, str) or not question.strip():
        raise ValidationError("field 'question': a vote needs a question", field="question")
    if method not in METHODS:
        raise ValidationError(f"field 'method': {method!r} is not a voting method",
                              hint=f"use one of {', '.join(METHODS)}", field="method")
    opts = [str(o) for o in options]
    if len(opts) < 2 or len(set(opts)) != len(opts):
        raise ValidationError("field 'options': a vote needs at least two distinct options",
                              hint="e.g. options=['yes', 'no']", field="options")
    if method == "quorum" and quorum is None:
        raise ValidationError("field 'quorum': method 'quorum' needs a quorum",
                              hint="quorum=3 (voters) or quorum=0.6 (a share of the voters)", field="quorum")
    if quorum is not None and not (isinstance(quorum, int | float) and 0 < quorum < math.inf):
        raise ValidationError(f"field 'quorum': must be a finite number > 0, got {quorum}",
                              hint="quorum=3 (voters) or quorum=0.6 (a share of the voters)", field="quorum")
    return opts


def needed(quorum: float, voters: int) -> int:
    """Ballots a quorum needs: a count, or a share of the voters when below 1."""
    return math.ceil(quorum * voters - 1e-9) if quorum < 1 else int(math.ceil(quorum))


def tally(method: str, options: Sequence[str], ballots: Sequence[Ballot], *, voters: int,
          quorum: float | None = None) -> tuple[str, str | None, dict[str, float], str]:
    """(status, winner, tally, explanation) of a vote."""
    cast = [b for b in ballots if b.choice is not None]
    scores = {o: 0.0 for o in options}
    for b in cast:
        scores[b.choice] += b.weight if method == "weighted" else 1.0  # type: ignore[index]
    counts = ", ".join(f"{o}: {scores[o]:g}" for o in options)
    abst = len(ballots) - len(cast)
    turnout = f"{len(cast)} of {voters} voter(s) cast a ballot" + (f", {abst} abstained" if abst else "")
    if quorum is not None and len(cast) < needed(quorum, voters):
        return (NO_QUORUM, None, scores,
                f"no quorum: {turnout}; the quorum is {needed(quorum, voters)} ({counts}); a person decides")
    total = sum(scores.values())
    top = max(scores.values()) if scores else 0.0
    leaders = [o for o in options if scores[o] == top and top > 0]
    if method == "weighted":
        if len(leaders) != 1:
            return (NO_MAJORITY, None, scores, f"no decision: weighted tie between {', '.join(leaders) or 'nobody'} "
                                                f"({counts}; {turnout}); a person decides")
        return (DECIDED, leaders[0], scores, f"{leaders[0]} wins by weight {top:g} of {total:g} ({counts}; {turnout})")
    if len(leaders) == 1 and top > total / 2:
        return (DECIDED, leaders[0], scores, f"{leaders[0]} wins with {top:g} of {len(cast)} ballot(s), more than "
                                             f"half ({counts}; {turnout})")
    return (NO_MAJORITY, None, scores, f"no majority: no option has more than half of {len(cast)} ballot(s) "
                                       f"({counts}; {turnout}); a person decides")


def dissent(ballots: Sequence[Ballot], winner: str | None) -> list[Ballot]:
    """Ballots cast for anything but the winner (all cast ballots when nothing won)."""
    return [b for b in ballots if b.choice is not None and b.choice != winner]


def weights_for(voters: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    w = {v: 1.0 for v in voters}
    for name, value in (weights or {}).items():
        if name not in w:
            raise ValidationError(f"field 'weights': {name!r} is not one of the voters",
                                  hint=f"voters: {', '.join(voters)}", field="weights")
        if not 0 <= float(value) < math.inf:
            raise ValidationError(f"field 'weights': weight of {name!r} must be a finite number ≥ 0",
                                  field="weights")
        w[name] = float(value)
    return w
