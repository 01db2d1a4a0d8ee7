"""From a signal to a proposal draft: the change from rules, the words from the LLM or a template.

The *change* is always derived deterministically from the signal and the current config (a model
never invents a config key). The *text* (title, rationale, expected impact, risk, confidence) is
written by the LLM when one is configured and by a template otherwise, or when the LLM fails; the
draft's ``strategy`` says which (``llm:<model>``, ``template`` or ``template (llm failed: ...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from emergent.errors import LLMError
from emergent.proposals.signals import Signal
from emergent.providers.llm import TEMPLATE, ChatModel, strategy_of

Current = Callable[[str], dict[str, Any]]


class Expected(BaseModel):
    metric: str
    direction: Literal["increase", "decrease"]
    how_measured: str


class ProposalDraft(BaseModel):
    title: str = Field(max_length=300)
    rationale: str
    kind: Literal["config", "policy", "tool", "job"]
    target: str
    change: dict[str, Any]
    expected: Expected
    risk: Literal["low", "medium", "high"] = "low"
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    evidence: list[dict[str, Any]] = []
    strategy: str = TEMPLATE


class ProposalText(BaseModel):
    """What the LLM is asked to write."""

    title: str = Field(max_length=300)
    rationale: str
    risk: Literal["low", "medium", "high"]
    confidence: float = Field(ge=0.0, le=1.0)


def _tool_retry(s: Signal, cur: Current) -> dict[str, Any]:
    tools = cur("tools")
    r = tools.get("retry", {}).get(s.subject, {"attempts": 1, "initial": 0.2, "max_wait": 5.0})
    return {"namespace": "tools", "changes": {"retry": {**tools.get("retry", {}),
                                                        s.subject: {**r, "attempts": int(r["attempts"]) + 1}}}}


def _tool_backoff(s: Signal, cur: Current) -> dict[str, Any]:
    tools = cur("tools")
    r = tools.get("retry", {}).get(s.subject, {"attempts": 1, "initial": 0.2, "max_wait": 5.0})
    new = {**r, "initial": float(r["initial"]) * 2, "max_wait": float(r["max_wait"]) * 2}
    return {"namespace": "tools", "changes": {"retry": {**tools.get("retry", {}), s.subject: new}}}


def _tool_timeout(s: Signal, cur: Current) -> dict[str, Any]:
    tools = cur("tools")
    p95_s = round(s.value / 1000.0 * 1.5, 3)
    return {"namespace": "tools", "changes": {"timeouts": {**tools.get("timeouts", {}), s.subject: p95_s}}}


def _recall(s: Signal, cur: Current) -> dict[str, Any]:
    m = cur("memory")
    return {"namespace": "memory", "changes": {"candidates": min(2000, int(m["candidates"]) * 2),
                                               "w_text": m["w_text"] or 1.0}}


def _growth(s: Signal, cur: Current) -> dict[str, Any]:
    m = cur("memory")
    return {"namespace": "memory", "changes": {"dedup_similarity": round(max(0.8, m["dedup_similarity"] - 0.03), 3)}}


def _friction(s: Signal, cur: Current) -> dict[str, Any]:
    actor, _, tool = s.subject.partition("|")
    return {"rule": {"subject": actor, "tool": tool, "effect": "allow",
                     "note": f"approved {s.value:.0%} of the time"}}


def _job(s: Signal, cur: Current) -> dict[str, Any]:
    return {"job": s.subject, "retries": "+1", "alert": True}


# kind, target template, change builder, title, rationale, metric, direction, risk, confidence
TEMPLATES: dict[str, tuple[str, Callable[[Signal, Current], dict[str, Any]], str, str, str, str, str, float]] = {
    "tool_failure_rate": ("config", _tool_retry, "Retry {subject} once more on transient failures",
                          "{summary}. An extra retry with backoff absorbs transient errors (429, 5xx, dropped "
                          "connections) without changing the tool.", "tool failure rate", "decrease", "low", 0.7),
    "circuit_open": ("config", _tool_backoff, "Back off longer before retrying {subject}",
                     "{summary}. Doubling the backoff gives the service time to recover before the breaker trips.",
                     "circuit-open refusals", "decrease", "low", 0.6),
    "tool_latency": ("config", _tool_timeout, "Set the timeout of {subject} to 1.5 x its p95 latency",
                     "{summary}. A timeout just above the observed p95 ends hung calls early.",
                     "tool p95 latency", "decrease", "medium", 0.5),
    "low_recall_hit_rate": ("config", _recall, "Widen the recall candidate pool and use full-text evidence",
                            "{summary}. More fused candidates and full-text matches usually find more of the "
                            "relevant memories; an offline replay measures it before adoption.",
                            "recall@10 on the replay workload", "increase", "low", 0.6),
    "memory_growth": ("config", _growth, "Deduplicate memories more aggressively",
                      "{summary}. Merging near-duplicates at consolidation slows growth.",
                      "memory items per day", "decrease", "medium", 0.5),
    "approval_friction": ("policy", _friction, "Allow {tool} for {actor} without asking",
                          "{summary}. A rule that allows it automatically removes the wait; the audit trail still "
                          "records every call.", "approval requests per week", "decrease", "medium", 0.6),
    "job_failures": ("job", _job, "Retry and alert on the scheduled job {subject}",
                     "{summary}. A retry covers transient failures and the alert brings a human when it persists.",
                     "job failure rate", "decrease", "low", 0.6),
}


def template_draft(signal: Signal, current: Current) -> ProposalDraft:
    kind, build, title, rationale, metric, direction, risk, confidence = TEMPLATES[signal.kind]
    actor, _, tool = signal.subject.partition("|")
    fill = {"subject": signal.subject, "summary": signal.summary, "actor": actor, "tool": tool or signal.subject}
    change = build(signal, current)
    target = change.get("namespace") or ("autonomy.policy" if kind == "policy" else signal.subject)
    return ProposalDraft(title=title.format(**fill), rationale=rationale.format(**fill), kind=kind,  # type: ignore[arg-type]
                         target=target, change=change, risk=risk, confidence=confidence,  # type: ignore[arg-type]
                         expected=Expected(metric=metric, direction=direction,  # type: ignore[arg-type]
                                           how_measured="the analyzer's query over the next window, or an A/B "
                                                        "experiment where the change is a config version"),
                         evidence=[signal.as_dict()])


SYSTEM = ("You write improvement proposals for an AI assistant's workstation. Given a measured signal and a "
          "fixed change, write a short title, a rationale that cites the numbers, the risk and your "
          "confidence that the change helps. Answer with JSON only.")


def write(signal: Signal, current: Current, llm: ChatModel | None) -> ProposalDraft:
    """The template draft, with its text rewritten by ``llm`` when one is configured and answers."""
    draft = template_draft(signal, current)
    if llm is None:
        return draft
    prompt = {"signal": signal.as_dict(), "change": draft.change, "kind": draft.kind,
              "expected": draft.expected.model_dump()}
    try:
        text = llm.structured([{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": _json(prompt)}], ProposalText)
    except LLMError as exc:
        return draft.model_copy(update={"strategy": f"{TEMPLATE} (llm failed: {getattr(exc, 'reason', 'error')})"})
    return draft.model_copy(update={**text.model_dump(), "strategy": strategy_of(llm)})


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str, ensure_ascii=False)
