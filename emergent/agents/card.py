"""What an agent is to the others: an A2A-style card, and the states of a task.

A card names the agent, says what it is good at (skills) and which tools the policy lets it use.
The tools are never stored: they are read from the autonomy policy each time a card is built, so a
rule that denies a tool takes it off every card at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emergent.errors import ValidationError

SUBMITTED, WORKING, INPUT_REQUIRED, COMPLETED, FAILED, CANCELED = (
    "submitted", "working", "input-required", "completed", "failed", "canceled")
#: the A2A task states, in the order a task moves through them
TASK_STATES: tuple[str, ...] = (SUBMITTED, WORKING, INPUT_REQUIRED, COMPLETED, FAILED, CANCELED)
FINAL_STATES = frozenset({COMPLETED, FAILED, CANCELED})
#: states a task holds while it counts against its agent's load
OPEN_STATES = frozenset({SUBMITTED, WORKING, INPUT_REQUIRED})

_SKILL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_skills(skills: Iterable[str] | str, field_name: str = "skills") -> list[str]:
    """Skills as lower-case slugs, de-duplicated, in the order given."""
    if isinstance(skills, str):
        skills = [s for s in re.split(r"[,\s]+", skills) if s]
    out: list[str] = []
    for s in skills:
        slug = str(s).strip().lower()
        if not _SKILL.match(slug):
            raise ValidationError(f"field {field_name!r}: skill {s!r} is not a slug",
                                  hint="use 1-64 characters from a-z, 0-9 and _ . - (e.g. 'search', 'stats')",
                                  field=field_name)
        if slug not in out:
            out.append(slug)
    return out


@dataclass(frozen=True, slots=True)
class AgentCard:
    """An agent as the others see it (A2A's AgentCard, reduced to what a workstation uses)."""

    name: str
    description: str
    skills: list[str]
    tools: list[str]
    principal: str
    created_by: str = ""
    created_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def has(self, skills: Iterable[str]) -> float:
        """The share of ``skills`` this agent has (1.0 when none are asked for)."""
        wanted = list(skills)
        if not wanted:
            return 1.0
        return sum(1 for s in wanted if s in self.skills) / len(wanted)

    def to_dict(self) -> dict[str, Any]:
        """The card in A2A's shape: skills as objects with an id and a name."""
        return {"name": self.name, "description": self.description,
                "skills": [{"id": s, "name": s} for s in self.skills], "tools": list(self.tools),
                "principal": self.principal, "created_by": self.created_by, "created_at": self.created_at,
                "defaultInputModes": ["text"], "defaultOutputModes": ["text"]}

    def __str__(self) -> str:
        return f"{self.name} ({self.principal}): skills {', '.join(self.skills) or 'none'}; " \
               f"{len(self.tools)} tool(s)"


#: approvals an escalated agents vote or conflict filed: approving one must record a choice, so
#: ``emergent agents decide`` / ``ws.agents.decide_vote|decide_conflict`` do it (they approve and
#: record the option or the winning proposal); the approvals CLI and inbox point there instead
NEEDS_A_CHOICE = ("agents.vote", "agents.resolve")


def choice_hint(a: Any, *, python: bool = False) -> str | None:
    """How to decide an approval that needs a choice (None for one that is approved as it is)."""
    if a.tool not in NEEDS_A_CHOICE or a.status != "pending":
        return None
    args = a.args or {}
    item = str(args.get("vote") or args.get("resolution") or "ID")
    if python:
        call = "decide_vote" if a.tool == "agents.vote" else "decide_conflict"
        return f"this approval needs a choice: ws.agents.{call}({item!r}, CHOICE, by=ws.principal)"
    return f"this approval needs a choice: emergent agents decide {item} CHOICE"
