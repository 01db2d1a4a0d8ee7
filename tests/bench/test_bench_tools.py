"""The tools benchmark's pieces at a small size: the gate path it measures is the runner's."""

from __future__ import annotations

from pathlib import Path

from emergent.bench import tools


def test_call_overhead_goes_through_the_gate_as_an_agent_with_an_allow_rule(tmp_path: Path) -> None:
    out = tools._overhead(tmp_path, 200)
    assert out["audit_chain_ok"] is True
    assert out["runner_call_us_p50"] > out["direct_call_us_p50"] > 0
    assert out["call_overhead_us"] == out["runner_call_us_p50"] - out["direct_call_us_p50"]


def test_policy_decisions_through_the_gate_find_the_rule_a_linear_scan_finds(tmp_path: Path) -> None:
    out = tools._policy(tmp_path, 600, 300)  # asserts inside: the gate's rule equals the linear scan's
    assert out["policy_rules"] == 600
    for key in ("policy_decision_us_p50", "policy_decision_us_p95", "policy_matrix_us_p50",
                "policy_linear_scan_us_p50"):
        assert out[key] > 0, key


def test_reliability_calls_carry_a_principal(tmp_path: Path) -> None:
    out = tools._reliability(tmp_path, 300, rate=0.2)
    assert out["reliability"] > out["reliability_without_retry"] and out["reliability_calls"] == 300


def test_the_table_lists_both_policy_figures() -> None:
    row = {"call_overhead_us": 1.0, "direct_call_us_p50": 0.1, "call_overhead_us_mean": 2.0,
           "sandbox_isolation": "x", "sandbox_start_ms_p50": 1.0, "plain_subprocess_ms_p50": 1.0,
           "sandbox_isolation_unshare": "y", "sandbox_start_ms_p50_unshare": 1.0, "sandbox_python_ms_p50": 1.0,
           "reliability": 1.0, "reliability_without_retry": 0.9, "policy_rules": 10, "policy_decision_us_p50": 3.0,
           "policy_linear_scan_us_p50": 9.0, "policy_matrix_us_p50": 2.0}
    metrics = [r[0] for r in tools.table(row)]
    assert any("through the gate" in m for m in metrics) and any("matrix lookup" in m for m in metrics)
