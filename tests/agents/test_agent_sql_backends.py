"""The agents service on each SQL backend (SQLite, and PostgreSQL when EMERGENT_TEST_POSTGRES_URL is
set): cards upserted, tasks through the contract net, votes with ballots, an escalation decided,
conflicts resolved, every listing newest first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def sws(sql_url: str, tmp_path: Path) -> Iterator[Any]:
    from emergent import Workstation

    w = Workstation.open(tmp_path / "home", embedder="hashing", database_url=sql_url)
    yield w
    w.close()


def test_cards_tasks_votes_and_conflicts_round_trip_on_each_sql_backend(sws: Any) -> None:
    me, ag = sws.principal, sws.agents
    ag.register("scout", skills=["search", "literature"], description="finds papers", by=me)
    ag.register("stats", skills=["stats"], by=me)
    again = ag.register("scout", skills=["search"], description="finds papers fast", by=me)  # an update, not a copy
    assert (again.skills, again.description) == (["search"], "finds papers fast")
    assert [c.name for c in ag.cards(tools=False)] == ["scout", "stats"]
    first = ag.submit("search the notes on buoys", skills=["search"], by=me)
    second = ag.delegate("tabulate the buoy counts", to="stats", by=me)
    assert (first.state, first.assignee, second.state) == ("completed", "scout", "completed")
    assert first.bids[0]["agent"] == "scout" and "highest score wins" in (first.award or "")
    assert [t.id for t in ag.tasks()] == [second.id, first.id]
    assert ag.store.load() == {}  # nothing open
    v = ag.vote("Ship it?", ["yes", "no"], voters=["scout", "stats"], method="quorum", quorum=2, by=me,
                ballots={"scout": ("yes", "tested"), "stats": None})
    assert v.status == "no-quorum" and v.winner is None and v.quorum == 2
    decided = ag.decide_vote(v.id, "yes", by=me, reason="enough")
    assert (decided.winner, decided.decided_by) == ("yes", me.key)
    assert [(b.voter, b.choice) for b in decided.ballots] == [("agent:scout", "yes"), ("agent:stats", None)]
    w = ag.vote("Which?", ["a", "b"], voters=["scout", "stats"], method="weighted", weights={"scout": 2.5, "stats": 1},
                by=me, ballots={"scout": "a", "stats": "b"})
    assert (w.winner, w.tally) == ("a", {"a": 2.5, "b": 1.0})
    assert [x.id for x in ag.votes()] == [w.id, v.id]
    r = ag.resolve([{"agent": "scout", "proposal": "now", "priority": 1, "confidence": 0.5},
                    {"agent": "stats", "proposal": "later", "priority": 1, "confidence": 0.5}], rule="priority", by=me)
    assert r.status == "escalated" and r.winner is None
    done = ag.decide_conflict(r.id, "stats", by=me)
    assert done.winner is not None and done.winner.agent == "stats" and ag.resolutions()[0].id == r.id
