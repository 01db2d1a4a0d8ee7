"""The self-improvement cycle on the real memory system with a LoCoMo slice (hashing embedder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergent.config import MemoryConfig
from emergent.errors import ValidationError
from emergent.experiments.cycle import Hypothesis, ImprovementCycle, generate_hypotheses
from emergent.experiments.workloads import RecallWorkload, load_locomo, normalise_evidence

LOCOMO = Path(__file__).resolve().parents[3] / "shared" / "data" / "locomo" / "locomo-dev.json"
needs_locomo = pytest.mark.skipif(not LOCOMO.exists(), reason="LoCoMo dev file not present")


def test_evidence_forms_are_normalised():
    assert normalise_evidence(["D:11:26", "D30:05; D1:3", "D2:1,D2:2"]) == {"D11:26", "D30:5", "D1:3", "D2:1", "D2:2"}


def test_hypotheses_restore_changed_defaults_first():
    hyps = generate_hypotheses("memory", MemoryConfig(w_text=0.0, candidates=10), limit=4)
    assert [h.changes for h in hyps[:2]] == [{"w_text": 1.0}, {"candidates": 100}]
    assert len(hyps) == 4


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    from emergent.providers.embeddings import HashingEmbedder

    if not LOCOMO.exists():
        pytest.skip("LoCoMo dev file not present")
    return RecallWorkload.locomo(LOCOMO, embedder=HashingEmbedder(), directory=tmp_path_factory.mktemp("replay"),
                                 conversations=2, questions_per_conversation=40)


@needs_locomo
def test_locomo_loader_keeps_scored_questions_only():
    turns, qs = load_locomo(LOCOMO, conversations=1)
    assert len(turns) > 300 and qs and all(q.category in (1, 2, 3, 4) and q.evidence for q in qs)


@pytest.fixture
def agent(ws, me):
    """The self-improvement agent, created by the human at the keyboard."""
    return ws.self_improvement_agent()


@needs_locomo
def test_cycle_finds_and_adopts_the_better_retrieval_config_with_heldout_gain(ws, me, agent, workload):
    ws.autonomy.add_rule("agent:self-improvement", "config.adopt", "allow", by=me)
    reg = ws.experiments.registry
    worse = reg.create("memory", changes={"w_text": 0.0}, principal=me)
    reg.make_current(worse.id, by=me)
    assert ws.memory.config.w_text == 0.0  # the registry drives the live memory service
    cycle = ImprovementCycle(reg, ws.experiments, proposals=ws.proposals)
    rep = cycle.run("memory", workload, max_hypotheses=2, min_units=20, principal=agent)
    assert rep.decision == "adopted" and rep.winner["changes"] == {"w_text": 1.0}
    assert rep.heldout["gain"] > 0.05
    assert reg.current("memory").values["w_text"] == 1.0 and ws.memory.config.w_text == 1.0
    hist = cycle.history()
    assert hist[0]["decision"] == "adopted" and hist[0]["report"]["heldout"]["gain"] == pytest.approx(rep.heldout["gain"])
    adopted = [e for e in ws.audit.entries(kind="config.adopt") if e.data["phase"] == "done"]
    assert adopted and adopted[-1].actor == agent.key  # the gate allowed the agent: recorded as the agent's
    reg.rollback("memory", by=me, reason="check rollback")
    assert reg.current("memory").id == worse.id and ws.memory.config.w_text == 0.0


@needs_locomo
def test_without_permission_the_winner_waits_for_approval(ws, me, agent, workload):
    reg = ws.experiments.registry
    reg.make_current(reg.create("memory", changes={"w_text": 0.0}, principal=me).id, by=me)
    cycle = ImprovementCycle(reg, ws.experiments)
    rep = cycle.run("memory", workload, hypotheses=[Hypothesis({"w_text": 1.0}, "restore text")], min_units=20,
                    principal=agent)
    assert rep.decision == "pending_approval" and reg.current("memory").values["w_text"] == 0.0
    exp_id = rep.winner["experiment"]
    ws.experiments.approve(exp_id, by=me)
    assert reg.current("memory").values["w_text"] == 1.0


@needs_locomo
def test_a_winner_that_loses_on_heldout_is_not_adopted(ws, agent, workload):
    reg = ws.experiments.registry
    cycle = ImprovementCycle(reg, ws.experiments)
    rep = cycle.run("memory", workload, hypotheses=[Hypothesis({"w_text": 0.0}, "drop text")], min_units=20,
                    min_heldout_gain=0.0, principal=agent)
    assert rep.decision in ("inconclusive", "rejected_heldout") and reg.current("memory").id == "memory@1"
    assert rep.hypotheses[0]["decision"] == "rollback"


def test_too_small_a_workload_is_refused(ws, agent):
    class Tiny:
        train, heldout = [1, 2, 3], [4]

        def evaluate(self, cfg, units):
            return [1.0] * len(units)

    with pytest.raises(ValidationError, match="fewer than 30"):
        ImprovementCycle(ws.experiments.registry, ws.experiments).run("memory", Tiny(), principal=agent)


def test_the_self_improvement_agent_is_created_by_a_human_and_reused(ws, me):
    agent = ws.self_improvement_agent()
    assert agent.key == "agent:self-improvement" and ws.self_improvement_agent() == agent
    created = [e for e in ws.audit.entries(kind="principal.created") if e.data["principal"] == agent.key]
    assert created and created[0].data["created_by"] == me.key
