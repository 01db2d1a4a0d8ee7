"""Agents (``ws.agents``): assistants with A2A-style cards that take tasks by contract net, vote and
resolve conflicts, talking over a bus chosen by string id (``memory`` or ``redis`` Streams).

Nothing here imports Redis, widgets or the assistant until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emergent.agents.card import FINAL_STATES, TASK_STATES, AgentCard

if TYPE_CHECKING:
    from emergent.agents.bus import Bus, Message, open_bus
    from emergent.agents.conflicts import Proposal, Resolution
    from emergent.agents.consensus import Ballot, VoteResult
    from emergent.agents.delegation import Award, Bid
    from emergent.agents.service import Agents
    from emergent.agents.tasks import Task

__all__ = ["FINAL_STATES", "TASK_STATES", "AgentCard", "Agents", "Award", "Ballot", "Bid", "Bus", "Message",
           "Proposal", "Resolution", "Task", "VoteResult", "open_bus"]

_WHERE = {"Agents": "service", "Bus": "bus", "Message": "bus", "open_bus": "bus", "Proposal": "conflicts",
          "Resolution": "conflicts", "Ballot": "consensus", "VoteResult": "consensus", "Award": "delegation",
          "Bid": "delegation", "Task": "tasks"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"emergent.agents.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'emergent.agents' has no attribute {name!r}")
