"""The AgentMonitor widget renders what the agents service holds after real actions: agents with
their cards and task counts, tasks and their states with the bids and the award, bus messages with
their sender, votes with tally and dissent, a vote without quorum escalated to a person, conflicts
resolved and why. The assertions read the widget's model values (what the front-end is sent)."""

from __future__ import annotations

import html
import time
from typing import Any

import sqlalchemy as sa

from emergent.ui.agents import AgentMonitor


def _cells(value: str) -> str:
    return html.unescape(value)


def test_the_monitor_shows_the_agents_their_tasks_messages_votes_and_conflicts(aws: Any, scene: Any) -> None:
    m = aws.agents.monitor()
    assert isinstance(m, AgentMonitor)
    agents, tasks = _cells(m.bodies["agents"].value), _cells(m.bodies["tasks"].value)
    messages, votes = _cells(m.bodies["messages"].value), _cells(m.bodies["votes"].value)
    conflicts = _cells(m.bodies["conflicts"].value)

    # agents: the card (skills, description, the tools the policy lets it use) and tasks by state
    for name, skills in (("scout", "search, literature"), ("stats", "stats, analysis"), ("critic", "review, literature")):
        assert f"<td>{name}</td><td>{skills}</td>" in agents
    card_tools = aws.agents.card("scout").tools
    assert f"{len(card_tools)} items:" in agents and ", ".join(card_tools) in agents  # folded, never cut
    assert "<td>completed 1</td><td>finds papers and reads abstracts</td>" in agents
    assert "<td>input-required 1</td><td>runs statistics on data tables</td>" in agents

    # tasks: the contract-net award (winner, bids with scores, the stated rule) and the refused delegation
    t = scene.task
    assert t.state == "completed" and t.assignee == "scout"
    row = tasks.split(f"<td>{t.id}</td>")[1].split("</tr>")[0]
    assert "data-state='completed'" in row and "<td>scout</td>" in row
    bids = ", ".join(f"{b['agent']} {b['score']:.3f}" for b in t.bids)
    assert f"<td>{bids}</td>" in row and len(t.bids) == 2  # scout and critic have the skill; stats does not bid
    assert "highest score wins, score = capability × confidence ÷ (1 + load)" in row
    assert "Optodes measure dissolved oxygen" in row  # the winner's answer (its own memory scope)
    refused = tasks.split(f"<td>{scene.refused.id}</td>")[1].split("</tr>")[0]
    assert "data-state='canceled'" in refused and "deny agent:scout → agents.delegate on agent:critic" in refused
    assert "agent:scout may not delegate to agent:critic" in scene.refusal
    a = scene.asked
    assert a.state == "input-required" and a.approval_id
    asked = tasks.split(f"<td>{a.id}</td>")[1].split("</tr>")[0]
    assert "data-state='input-required'" in asked and "<td>stats</td>" in asked and "<td>agent:critic</td>" in asked
    assert f"waiting for approval {a.approval_id}" in asked

    # messages: announce, bids, the award and the ballots, each stamped with its sender's principal
    for stream, sender, kind in (("contract-net", "human:", "announce"), ("contract-net", "agent:scout", "bid"),
                                 ("contract-net", "agent:critic", "bid"), ("tasks", "human:", "award"),
                                 ("votes", "agent:critic", "ballot"), ("proposals", "agent:stats", "proposal")):
        assert f"<td>{stream}</td><td>{sender}" in messages and f"</td><td>{kind}</td>" in messages, (stream, kind)
    assert "choice electrode, reason responds faster" in messages

    # votes: tally, winner, dissent; the vote without quorum says so and names its approval
    assert "<td>Which oxygen sensor do we buy?</td><td>majority</td><td>decided</td><td>optode</td>" in votes
    assert "<td>optode 2, electrode 1</td><td>agent:critic → electrode (responds faster)</td>" in votes
    nq = scene.no_quorum
    assert nq.status == "no-quorum" and nq.approval_id
    assert "<td>Publish the draft now?</td><td>quorum (quorum 3)</td><td>no-quorum</td><td>-</td>" in votes
    assert f"<td>{nq.approval_id}</td>" in votes and "no quorum: 1 of 3 voter(s) cast a ballot" in votes
    assert aws.autonomy.approvals.get(nq.approval_id).status == "pending"

    # conflicts: the rule, the winner and why
    assert "<td>priority</td><td>resolved</td><td>scout: deploy on Monday</td>" in conflicts
    assert "wins with the highest priority 2; set aside: stats ('deploy on Friday')" in conflicts
    counts = _cells(m.counts.value)
    assert "3 agents · " in counts and all(f"1 {s}" in counts for s in ("canceled", "completed", "input-required"))


def test_refresh_shows_a_person_deciding_the_escalated_vote_and_a_new_task(aws: Any, scene: Any) -> None:
    m = AgentMonitor(aws.agents)
    me = aws.principal
    aws.agents.decide_vote(scene.no_quorum.id, "no", by=me, reason="the data is not checked yet")
    aws.agents.submit("compute the oxygen trend statistics", skills=["stats"], by=me)
    assert "compute the oxygen trend" not in m.bodies["tasks"].value  # nothing changes until it re-reads
    m.refresh_button.click()
    votes, tasks = _cells(m.bodies["votes"].value), _cells(m.bodies["tasks"].value)
    row = votes.split("<td>Publish the draft now?</td>")[1].split("</tr>")[0]
    assert "<td>decided</td><td>no</td>" in row and f"{me.key} chose 'no': the data is not checked yet" in row
    assert aws.autonomy.approvals.get(scene.no_quorum.approval_id).status == "approved"
    assert "compute the oxygen trend statistics" in tasks and "<td>stats</td>" in tasks
    stats = _cells(m.bodies["agents"].value).split("<td>stats</td>")[1].split("</tr>")[0]
    assert "input-required 1, completed 1" in stats  # in the order a task moves through


def test_polling_rereads_the_service_until_it_is_switched_off(aws: Any) -> None:
    me = aws.principal
    m = AgentMonitor(aws.agents, poll_s=0.1)
    try:
        assert m.polling and m.poll_toggle.value
        assert "no agents yet" in m.bodies["agents"].value
        aws.agents.register("scout", skills=["search"], by=me)
        deadline = time.monotonic() + 10
        while "<td>scout</td>" not in m.bodies["agents"].value and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "<td>scout</td>" in m.bodies["agents"].value
        m.poll_toggle.value = False  # the switch in the widget
        assert not m.polling
        aws.agents.register("stats", skills=["stats"], by=me)
        time.sleep(0.3)
        assert "<td>stats</td>" not in m.bodies["agents"].value
    finally:
        m.close()
    assert not m.polling


def test_what_agents_wrote_is_shown_as_text_never_as_markup(aws: Any) -> None:
    me = aws.principal
    aws.agents.register("scout", skills=["search"], description="<img src=x onerror=alert(1)> finds", by=me)
    aws.agents.submit("<script>alert('task')</script> search this", skills=["search"], by=me)
    m = aws.agents.monitor()
    raw = "".join(b.value for b in m.bodies.values())
    assert "<img" not in raw and "<script>" not in raw
    assert "&lt;img src=x onerror=alert(1)&gt; finds" in raw and "&lt;script&gt;" in raw
    assert "&lt;script&gt;" in m.html()


def test_a_failed_read_is_shown_in_the_monitor_and_the_last_view_is_kept(aws: Any, scene: Any) -> None:
    m = aws.agents.monitor()
    before = m.bodies["tasks"].value
    with aws.sql.begin() as conn:  # the tasks table gone (a broken store): reading fails for real
        conn.execute(sa.text("ALTER TABLE agent_tasks RENAME TO agent_tasks_away"))
    try:
        m.refresh()
        assert "agent_tasks" in m.message.value and "emergent-agents-error" in m.message.value
        assert m.bodies["tasks"].value == before
    finally:
        with aws.sql.begin() as conn:
            conn.execute(sa.text("ALTER TABLE agent_tasks_away RENAME TO agent_tasks"))
    m.refresh()
    assert m.message.value == ""


def test_an_empty_workspace_says_how_to_begin(aws: Any) -> None:
    m = aws.agents.monitor()
    for key, hint in (("agents", "ws.agents.register(name, skills=[...], by=ws.principal)"),
                      ("tasks", "ws.agents.submit(text"), ("votes", "no votes yet"), ("messages", "no messages")):
        assert hint in html.unescape(m.bodies[key].value), key
    bundle = m._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "no agents yet" in bundle["text/html"]


def test_the_dashboard_rows_are_cheap_and_show_each_agents_tasks(home: Any, scene: Any) -> None:
    from emergent import Workstation
    from emergent.ui.agent_rows import dashboard_rows

    with Workstation.open(home, embedder="hashing") as fresh:  # another process's view of the workspace
        rows = dashboard_rows(fresh.agents)
        assert "memory" not in vars(fresh)  # no agent's assistant (nor the memory stores) was opened
    assert rows == [{"agent": "critic", "skills": "review, literature", "tasks": "none"},
                    {"agent": "scout", "skills": "search, literature", "tasks": "1 completed"},
                    {"agent": "stats", "skills": "stats, analysis", "tasks": "1 input-required"}]
