"""The analyzers read other services through their read methods (wired by the Workstation), and
say how to re-run each read; a source that is not wired is skipped and reported."""

from __future__ import annotations

import pytest

from emergent.jobs.model import JobSpec, RunStatus
from emergent.proposals.impact import past_experiments
from emergent.proposals.signals import Sources, run_analyzers


def test_memory_recall_misses_are_read_from_the_memory_operations(ws):
    for i in range(25):
        ws.memory.recall(f"nothing stored about topic {i}", scope="a/u")
    ws.memory.flush()  # the samples reach the memory_ops log
    signals, skipped = ws.proposals.analyze(["memory"])
    s = next(s for s in signals if s.kind == "low_recall_hit_rate")
    assert not skipped and s.value == 0.0 and s.evidence["numbers"]["recall"]["calls"] == 25
    assert s.evidence["query"].startswith("emergent.memory.analytics.operation_totals(ws.sql, since=")


def test_approval_friction_counts_approvals_that_were_used(ws, me, agent):
    q = ws.autonomy.approvals
    for i in range(10):
        a = q.request(principal=agent, tool="web.fetch", args={"i": i}, reason="r", digest=f"d{i}")
        q.approve(a.id, by=me)
        if i % 2:  # approved, then used once by the call that waited for it
            q.consume(a.id, principal=agent, tool="web.fetch", digest=f"d{i}", files={}, call_id=f"call{i}")
    assert {a.status for a in q.decided(0.0)} == {"approved", "consumed"}
    signals, _ = ws.proposals.analyze(["approvals"])
    s = next(s for s in signals if s.kind == "approval_friction")
    assert s.subject == f"{agent.key}|web.fetch" and s.value == 1.0
    assert s.evidence["numbers"] == {"tool": "web.fetch", "actor": agent.key, "decided": 10, "approved": 10}
    assert s.evidence["query"].startswith("ws.autonomy.approvals.decided(since=")


def test_failing_jobs_are_read_from_the_job_history(ws, tmp_path):
    store = ws.jobs.store
    now = ws.clock.now()
    store.put(JobSpec.build(name="nightly", notebook=str(tmp_path / "n.ipynb")), now=now, next_run_at=None,
              replace=False)
    for i, status in enumerate([RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.FAILED]):
        run = store.claim("nightly", owner="t", now=now - 100 + i, lease_s=5, slot=None, next_run_at=None,
                          trigger="manual", parameters={})
        assert run is not None
        run.status = status
        store.finish(run, now=now - 99 + i)
        store.release("nightly", "t")
    assert ws.jobs.run_totals(now - 1000) == [{"job": "nightly", "runs": 4, "failed": 3}]
    signals, _ = ws.proposals.analyze(["jobs"])
    s = next(s for s in signals if s.kind == "job_failures")
    assert s.subject == "nightly" and s.value == pytest.approx(0.75)
    assert s.evidence["query"].startswith("ws.jobs.run_totals(since=")


def test_slow_tools_cite_the_latency_read(ws):
    now = ws.clock.now()
    for i in range(30):  # through the telemetry writer the runner uses
        ws.tools.telemetry.record((now - i, f"c{i}", "slow.tool", "1.0.0", "agent:scout", 30.0 + i, "ok", 1, None, None))
    ws.proposals.targets = type(ws.proposals.targets)(tool_p95_latency_ms=50.0)
    signals, _ = ws.proposals.analyze(["tools"])
    s = next(s for s in signals if s.kind == "tool_latency")
    assert s.value == pytest.approx(58.0) and s.evidence["params"]["tool"] == "slow.tool"
    assert s.evidence["query"].startswith("ws.tools.telemetry.latencies('slow.tool', since=")


def test_an_analyzer_without_its_source_is_skipped_and_says_why(ws):
    signals, skipped = run_analyzers(Sources(), ws.clock.now())
    assert signals == [] and set(skipped) == {"tools", "memory", "approvals", "jobs"}
    assert skipped["jobs"] == "no job_runs source here (capability not available)"


def test_past_experiments_are_read_through_the_experiments_service(ws):
    assert past_experiments(ws.experiments, "memory") == []
    assert ws.proposals.sources.experiments is not None
