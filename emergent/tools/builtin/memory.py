"""``memory.remember``, ``memory.recall`` and ``memory.forget`` over the workstation's memory service.

The ``scope`` argument is the gate's resource (kind ``scope``): an agent that leaves it out acts
in its own scope (the runner fills in its id); an agent reaches another scope only when a human's
rule allows it (``agent:NAME memory.* allow`` on resource ``assistant/*``), otherwise the gate
refuses. Humans may use any scope.
"""

from __future__ import annotations

from typing import Any

from emergent.errors import ValidationError
from emergent.tools.builtin._common import services
from emergent.tools.spec import SideEffect, ToolContext, tool

MAX_K = 100


@tool(name="memory.remember", version="1.1.0", side_effect=SideEffect.WRITE, resource="scope",
      resource_kind="scope", tags=("memory",), personal=("text", "meta"))
def remember(text: str, ctx: ToolContext, kind: str = "episodic", importance: float = 0.5,
             scope: str | None = None, meta: dict[str, Any] | None = None) -> str:
    """Remember a piece of text; returns the memory's id.

    Args:
        text: what to remember
        kind: episodic, semantic, procedural, ...
        importance: 0 (trivia) to 1 (must not forget)
        scope: agent[/user[/session]], such as "assistant/alice"; an agent's own scope when left out
        meta: extra JSON metadata
    """
    rec = services(ctx).memory.remember(text, kind=kind, importance=importance, scope=scope, meta=meta)
    return str(rec.id)


@tool(name="memory.recall", version="1.2.0", resource="scope", resource_kind="scope", tags=("memory",),
      personal=("query",))
def recall(query: str, ctx: ToolContext, k: int = 5, scope: str | None = None) -> list[dict[str, Any]]:
    """Recall the memories most relevant to a query, best first (id, text, score, kind, event time, meta).

    Args:
        query: what to look for
        k: how many memories to return (1 to 100)
        scope: agent[/user[/session]], such as "assistant/alice"; an agent's own scope when left out
    """
    if not 1 <= k <= MAX_K:
        raise ValidationError(f"k must be between 1 and {MAX_K}, got {k}", hint="ask for fewer memories", field="k")
    hits = services(ctx).memory.recall(query, k=k, scope=scope)
    return [{"id": h.record.id, "text": h.text, "score": float(h.score), "kind": h.record.kind.value,
             "at": h.record.created_at, "meta": h.record.meta} for h in hits]


@tool(name="memory.forget", version="1.0.0", side_effect=SideEffect.DESTRUCTIVE, resource="scope",
      resource_kind="scope", tags=("memory",))
def forget(memory_id: str, ctx: ToolContext, scope: str | None = None) -> int:
    """Forget one memory by id (short- and long-term); returns how many were forgotten (0 or 1).

    Args:
        memory_id: the memory's id, as remember or recall gave it
        scope: agent[/user[/session]] the memory is in; an agent's own scope when left out
    """
    return services(ctx).memory.forget(memory_id, principal=ctx.principal, scope=scope)


TOOLS = [remember, recall, forget]
#: the functions of these tools: they answer from this process in milliseconds, so the REST API runs
#: their calls on its quick pool (it goes by function, not by what a tool declares about itself)
QUICK_TOOLS = frozenset(spec.func for spec in (remember, recall))
#: those of them that only read: the REST API may answer their calls on its event loop
READ_TOOLS = frozenset({recall.func})
