"""Fixtures of the agents' surfaces: a workspace where real agents did real things (registered with
cards, a task awarded by contract net and run, a delegation refused by policy, a vote with dissent,
a vote without quorum escalated to a person, a conflict resolved by priority)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NOTES = {"scout": ["Optodes measure dissolved oxygen by luminescence quenching and drift little over months."],
         "stats": ["The buoy oxygen series has a seasonal cycle; detrend it before testing for a trend."],
         "critic": ["Electrodes respond faster than optodes but need frequent recalibration."]}


@dataclass
class Scene:
    """What was done, with the ids the surfaces must show."""

    task: Any  # awarded by contract net, completed
    refused: Any  # a delegation the policy refused (canceled)
    refusal: str  # the PermissionDenied message
    asked: Any  # an agent's hand-over the policy asks a person about (input-required, an approval)
    majority: Any  # decided, with one dissenting ballot
    no_quorum: Any  # escalated to a person (an approval)
    conflict: Any  # resolved by priority


def act(ws: Any) -> Scene:
    """Real actions through ``ws.agents`` as ``ws.principal`` (and one agent, for the refusal)."""
    from emergent.errors import PermissionDenied

    me, agents = ws.principal, ws.agents
    agents.register("scout", skills=["search", "literature"], description="finds papers and reads abstracts", by=me)
    agents.register("stats", skills=["stats", "analysis"], description="runs statistics on data tables", by=me)
    agents.register("critic", skills=["review", "literature"], description="reviews claims and methods", by=me)
    for name, notes in NOTES.items():
        ws.memory.ingest(notes, scope=name)
    task = agents.submit("search the literature on oxygen optodes", skills=["literature"], by=me)
    ws.autonomy.add_rule("agent:scout", "agents.delegate", "deny", resource="agent:critic", by=me)
    refusal = ""
    try:
        agents.delegate("review the optode paper", to="critic", by=agents.principal_of("scout"))
    except PermissionDenied as exc:
        refusal = exc.message
    refused = next(t for t in agents.tasks() if t.text == "review the optode paper")
    asked = agents.delegate("check the units of the oxygen series", to="stats", by=agents.principal_of("critic"))
    majority = agents.vote("Which oxygen sensor do we buy?", ["optode", "electrode"],
                           voters=["scout", "stats", "critic"], by=me,
                           ballots={"scout": ("optode", "drifts little"), "stats": "optode",
                                    "critic": ("electrode", "responds faster")})
    no_quorum = agents.vote("Publish the draft now?", ["yes", "no"], voters=["scout", "stats", "critic"],
                            method="quorum", quorum=3, by=me, ballots={"scout": "yes", "stats": None, "critic": None})
    conflict = agents.resolve([{"agent": "scout", "proposal": "deploy on Monday", "priority": 2, "confidence": 0.6},
                               {"agent": "stats", "proposal": "deploy on Friday", "priority": 1, "confidence": 0.9}],
                              rule="priority", by=me)
    return Scene(task, refused, refusal, asked, majority, no_quorum, conflict)


@pytest.fixture
def aws(home: Path) -> Iterator[Any]:
    from emergent import Workstation

    w = Workstation.open(home, embedder="hashing")
    yield w
    w.close()


@pytest.fixture
def scene(aws: Any) -> Scene:
    return act(aws)


@pytest.fixture
def acting() -> Any:
    """``act`` itself, for a test that opens its own workstation (a CLI test)."""
    return act
