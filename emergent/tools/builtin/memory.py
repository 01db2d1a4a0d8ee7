"""``memory.remember`` and ``memory.recall`` over the workstation's memory service."""

from __future__ import annotations

from typing import Any

from emergent.tools.builtin._common import services
from emergent.tools.spec import SideEffect, ToolContext, tool


@tool(name="memory.remember", version="1.0.0", side_effect=SideEffect.WRITE, tags=("memory",))
def remember(text: str, ctx: ToolContext, kind: str = "episodic", importance: float = 0.5,
             scope: str | None = None, meta: dict[str, Any] | None = None) -> str:
    """Remember a piece of text; returns the memory's id.

    Args:
        text: what to remember
        kind: episodic, semantic, procedural, ...
        importance: 0 (trivia) to 1 (must not forget)
        scope: agent/user/session scope such as "agent:scout"
        meta: extra JSON metadata
    """
    rec = services(ctx).memory.remember(text, kind=kind, importance=importance, scope=scope, meta=meta)
    return str(rec.id)


@tool(name="memory.recall", version="1.0.0", tags=("memory",))
def recall(query: str, ctx: ToolContext, k: int = 5, scope: str | None = None) -> list[dict[str, Any]]:
    """Recall the memories most relevant to a query, best first.

    Args:
        query: what to look for
        k: how many memories to return
        scope: agent/user/session scope such as "agent:scout"
    """
    hits = services(ctx).memory.recall(query, k=k, scope=scope)
    return [{"id": h.record.id, "text": h.text, "score": float(h.score)} for h in hits]


TOOLS = [remember, recall]
