"""One self-improvement run: what ``emergent improve run``, ``ws.self_improvement()`` and the
scheduled job do. The functions take the services they use; the composition root
(:meth:`emergent.workstation.Workstation.self_improvement`) passes them, with the principal the
run acts as: the ``self-improvement`` agent, so what it proposes or adopts goes through the gate.

1. Analyzers read telemetry → signals → proposals (deduplicated, submitted to the gate).
2. Approvals decided in the approvals queue are synced to their proposals and experiments.
3. When a recall workload is available (a LoCoMo-format file), the cycle runs on the memory
   namespace: baseline → hypotheses (approved proposals first) → experiments → decision → tracking.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_self_improvement(*, proposals: Any, experiments: Any, embedder: Any, clock: Any, principal: Any,
                         data: str | Path | None = None, conversations: int | None = None,
                         questions_per_conversation: int | None = None, max_hypotheses: int = 6,
                         min_units: int = 30, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Signals → proposals → (with ``data``) the experiment cycle, acting as ``principal``."""
    say = progress or (lambda _m: None)
    say("analyzing telemetry")
    signals, skipped = proposals.analyze()
    made = proposals.generate(signals, principal=principal)
    synced = proposals.sync_approvals()
    adopted = experiments.sync_approvals()
    out: dict[str, Any] = {
        "principal": principal.key, "signals": [s.as_dict() for s in signals], "skipped_analyzers": skipped,
        "proposals": [{"id": p["id"], "title": p["title"], "status": p["status"],
                       "deduplicated": bool(p.get("deduplicated"))} for p in made],
        "approvals_synced": synced, "adoptions_synced": adopted, "cycle": None}
    if data is None:
        out["cycle_skipped"] = "no workload: pass a LoCoMo-format file (--data) to run experiments"
        return out
    from emergent.experiments.cycle import ImprovementCycle
    from emergent.experiments.workloads import RecallWorkload

    with tempfile.TemporaryDirectory(prefix="emergent-replay-") as tmp:
        say("building the replay workload")
        wl = RecallWorkload.locomo(data, embedder=embedder, directory=Path(tmp), conversations=conversations,
                                   questions_per_conversation=questions_per_conversation)
        cycle = ImprovementCycle(experiments.registry, experiments, clock=clock, proposals=proposals)
        rep = cycle.run("memory", wl, max_hypotheses=max_hypotheses, min_units=min_units, principal=principal,
                        progress=say)
    out["cycle"] = rep.as_dict()
    return out


def status(*, experiments: Any, proposals: Any) -> dict[str, Any]:
    """Current config versions, open experiments and proposals, the last cycle, metrics."""
    from emergent.experiments.cycle import ImprovementCycle

    reg = experiments.registry
    last = ImprovementCycle(reg, experiments).history(1)
    return {"current": {ns: reg.current(ns).id for ns in sorted(reg.schemas)},
            "open_experiments": [{k: e[k] for k in ("id", "name", "status", "candidate_version")}
                                 for e in experiments.list() if e["status"] in ("running", "pending_approval")],
            "pending_proposals": len(proposals.list("pending")),
            "metrics": proposals.metrics(),
            "last_cycle": ({k: last[0][k] for k in ("id", "started_at", "status", "decision")} if last else None)}
