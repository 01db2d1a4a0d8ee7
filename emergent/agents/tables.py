"""SQL tables of the agents branch (migration ``agents_0001``): cards, tasks, votes, ballots, resolutions."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

agent_cards = sa.Table(
    "agent_cards", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("skills", sa.Text, nullable=False),  # JSON list of slugs
    sa.Column("principal", sa.String(100), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

agent_tasks = sa.Table(
    "agent_tasks", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("skills", sa.Text, nullable=False),  # JSON list
    sa.Column("state", sa.String(24), nullable=False, index=True),
    sa.Column("assignee", sa.String(64), nullable=True, index=True),
    sa.Column("submitted_by", sa.String(100), nullable=False),
    sa.Column("delegated_by", sa.String(100), nullable=True),  # who handed it to its agent
    sa.Column("bids", sa.Text, nullable=True),  # JSON list of bids
    sa.Column("award", sa.Text, nullable=True),  # the rule and why the winner won
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("approval_id", sa.String(40), nullable=True, index=True),
    sa.Column("answer", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

agent_votes = sa.Table(
    "agent_votes", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("options", sa.Text, nullable=False),  # JSON list
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("quorum", sa.Float, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("winner", sa.Text, nullable=True),
    sa.Column("tally", sa.Text, nullable=False),  # JSON option -> score
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("approval_id", sa.String(40), nullable=True),
    sa.Column("called_by", sa.String(100), nullable=False),
    sa.Column("decided_by", sa.String(100), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

agent_ballots = sa.Table(
    "agent_ballots", metadata,
    sa.Column("vote_id", sa.String(32), primary_key=True),
    sa.Column("voter", sa.String(100), primary_key=True),  # the voting agent's principal key
    sa.Column("choice", sa.Text, nullable=True),  # None: abstained
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

agent_resolutions = sa.Table(
    "agent_resolutions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("rule", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("proposals", sa.Text, nullable=False),  # JSON list
    sa.Column("winner", sa.Integer, nullable=True),  # index into proposals
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("approval_id", sa.String(40), nullable=True),
    sa.Column("called_by", sa.String(100), nullable=False),
    sa.Column("decided_by", sa.String(100), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)
