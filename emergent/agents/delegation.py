"""Delegation by contract net: a task is announced, eligible agents bid, the best bid wins.

A bid has three parts, each in plain numbers:

- **capability**: the share of the task's skills the agent's card lists (1.0 when the task asks
  for none); an agent with none of them does not bid;
- **load**: the agent's open tasks (submitted, working or waiting for input);
- **confidence**: how sure the agent is it can do *this* text: 0.5 plus half the share of the
  task's words (4+ letters) that appear in its skills or description (a deterministic, offline
  estimate; a ``confidence`` function given to the service replaces it).

The rule (:data:`RULE`) is stated once and returned with every award.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from emergent.agents.card import AgentCard

RULE = ("highest score wins, score = capability × confidence ÷ (1 + load); ties go to the agent with "
        "fewer open tasks, then to the higher capability, then by name")

_WORD = re.compile(r"[a-z0-9]{4,}")
Confidence = Callable[[AgentCard, str], float]


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def default_confidence(card: AgentCard, text: str) -> float:
    """0.5 plus half the share of the task's words found in the card's skills and description."""
    asked = words(text)
    if not asked:
        return 0.5
    known = words(card.description) | {w for s in card.skills for w in words(s.replace("-", " ").replace("_", " "))}
    known |= set(card.skills)
    return round(0.5 + 0.5 * len(asked & known) / len(asked), 4)


@dataclass(frozen=True, slots=True)
class Bid:
    agent: str
    capability: float
    load: int
    confidence: float

    @property
    def score(self) -> float:
        return round(self.capability * self.confidence / (1 + self.load), 6)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}

    def describe(self) -> str:
        return (f"{self.agent}: capability {self.capability:.2f} × confidence {self.confidence:.2f} ÷ "
                f"(1 + {self.load} open) = {self.score:.3f}")


@dataclass(frozen=True, slots=True)
class Award:
    winner: str | None
    bids: list[Bid]
    rule: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {"winner": self.winner, "bids": [b.to_dict() for b in self.bids], "rule": self.rule,
                "explanation": self.explanation}


def bid(card: AgentCard, text: str, skills: Sequence[str], load: int,
        confidence: Confidence = default_confidence) -> Bid | None:
    """The card's bid for a task, or None when it has none of the skills asked for."""
    capability = card.has(skills)
    if capability <= 0:
        return None
    conf = min(1.0, max(0.0, float(confidence(card, text))))
    return Bid(card.name, round(capability, 4), int(load), conf)


def _order(b: Bid) -> tuple[float, int, float, str]:
    return (-b.score, b.load, -b.capability, b.agent)


def award(bids: Sequence[Bid], skills: Sequence[str] = ()) -> Award:
    """The winner of ``bids`` by :data:`RULE`, with the bids in rank order and why."""
    ranked = sorted(bids, key=_order)
    if not ranked:
        asked = f" with skill(s) {', '.join(skills)}" if skills else ""
        return Award(None, [], RULE, f"no eligible agent{asked} bid; nobody was awarded the task")
    win = ranked[0]
    lines = [f"awarded to {win.agent} by the rule: {RULE}.", "bids: " + "; ".join(b.describe() for b in ranked)]
    if len(ranked) > 1:
        second = ranked[1]
        why = (f"{win.agent} scored {win.score:.3f} against {second.agent}'s {second.score:.3f}"
               if win.score != second.score else
               f"{win.agent} tied with {second.agent} at {win.score:.3f} and won the tie-break")
        lines.append(why)
    return Award(win.agent, ranked, RULE, " ".join(lines))
