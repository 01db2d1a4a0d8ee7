"""What a workflow run looks like to a reader: its steps' states, and its DAG for drawing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from emergent.errors import NotFoundError
from emergent.workflows.spec import Workflow
from emergent.workflows.store import PENDING, StepRow


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    description: str
    inputs: dict[str, Any]
    path: str


@dataclass
class StepState:
    key: str
    step_id: str
    kind: str
    status: str
    attempt: int
    output: Any
    error: str | None
    approval_id: str | None
    started_at: float | None
    finished_at: float | None
    needs: list[str] = field(default_factory=list)


@dataclass
class WorkflowRun:
    id: str
    workflow: str
    version: str
    status: str
    principal: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    steps: list[StepState]
    parent: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def step(self, key: str) -> StepState:
        for s in self.steps:
            if s.key == key:
                return s
        raise NotFoundError(f"run {self.id} has no step {key!r}", hint=f"steps: {', '.join(s.key for s in self.steps)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def dag(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Nodes (``id``, ``step``, ``kind``, ``status``) and edges (from, to) for drawing the run;
        a fan-out step appears once per instance once its list is known."""
        by_step: dict[str, list[StepState]] = {}
        for s in self.steps:
            by_step.setdefault(s.step_id, []).append(s)
        nodes = [{"id": s.key, "step": s.step_id, "kind": s.kind, "status": s.status, "attempt": s.attempt,
                  "error": s.error} for s in self.steps]
        edges = [(a.key, b.key) for s in self.steps for d in s.needs for a in by_step.get(d, [])
                 for b in [s]]
        return nodes, edges


def states(spec: Workflow, rows: list[StepRow]) -> list[StepState]:
    """Every step of ``spec`` as it stands: recorded rows, and ``pending`` for steps not reached yet."""
    seen: dict[str, list[StepRow]] = {}
    for r in rows:
        seen.setdefault(r.step_id, []).append(r)
    out = []
    deps = spec.dependencies()
    for s in spec.steps:
        needs = list(deps[s.id])
        recs = seen.get(s.id)
        if not recs:
            out.append(StepState(s.id, s.id, s.kind, PENDING, 0, None, None, None, None, None, needs))
            continue
        recs.sort(key=lambda r: instance(r.key))
        out.extend(StepState(r.key, s.id, s.kind, r.status, r.attempt, r.output, r.error, r.approval_id,
                             r.started_at, r.finished_at, needs) for r in recs)
    return out


def instance(key: str) -> int:
    return int(key[key.index("[") + 1:-1]) if key.endswith("]") else -1


__all__ = ["StepState", "TemplateInfo", "WorkflowRun", "states"]
