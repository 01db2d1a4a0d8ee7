"""``emergent bench tools``: the runner's overhead, sandbox start, reliability under transient
failures and policy decision time — each beside a baseline measured in the same run.

- ``call_overhead_us``: p50 of a trivial tool called through the full chain (validate, policy,
  breaker, telemetry row, audit entry) minus p50 of calling the function directly;
  ``call_overhead_us_mean`` includes the batched SQL flushes of telemetry and audit.
- ``sandbox_start_ms_p50``: a sandboxed ``/bin/true`` with the best isolation available (bubblewrap
  namespaces, or rlimits + own session + scrubbed env + temp dir + network namespace + privilege
  drop) beside a plain ``subprocess.run``; ``sandbox_start_ms_p50_unshare`` without bubblewrap.
- ``reliability``: share of 10,000 calls that succeed when 5 % of attempts fail transiently,
  through the retry wrapper (baseline: the same calls without retries).
- ``policy_decision_us_p50``: one gate decision with 10,000 rules in the matrix (baseline: a
  linear fnmatch scan of the same rules).
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from emergent.bench import Row, fmt, percentile


def _p50_us(fn: Any, n: int) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1000.0)
    return out


def _overhead(root: Path, n: int) -> dict[str, Any]:
    from emergent.autonomy.service import Autonomy
    from emergent.stores.sql import SQLStore
    from emergent.tools.registry import ToolRegistry
    from emergent.tools.runner import ToolRunner
    from emergent.tools.spec import tool
    from emergent.tools.telemetry import Telemetry

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    spec = tool(add, version="1.0.0")
    store = SQLStore(f"sqlite:///{root / 'bench.db'}")
    gate = Autonomy(store)
    gate.add_rule("agent:*", "add", "allow")
    reg = ToolRegistry(store, entry_points=False)
    reg.add(spec)
    tel = Telemetry(store)
    runner = ToolRunner(reg, autonomy=gate, telemetry=tel)
    args = {"a": 1, "b": 2}
    for _ in range(2000):  # warm up (chains, caches, first flushes)
        runner.call("add", args, actor="agent:bench")
    direct = _p50_us(lambda: add(**args), n)
    t0 = time.perf_counter()
    through = _p50_us(lambda: runner.call("add", args, actor="agent:bench"), n)
    tel.flush()
    gate.audit.flush()
    total_us = (time.perf_counter() - t0) * 1e6 / n
    ok = gate.audit.verify().ok
    runner.close()
    tel.close()
    gate.close()
    store.dispose()
    d50, t50 = percentile(direct, 50), percentile(through, 50)
    return {"direct_call_us_p50": d50, "runner_call_us_p50": t50, "call_overhead_us": t50 - d50,
            "call_overhead_us_mean": total_us - sum(direct) / n, "audit_chain_ok": ok}


def _sandbox(n: int) -> dict[str, Any]:
    from emergent.tools.sandbox import Sandbox

    box = Sandbox()
    box.run(["/bin/true"])
    sb = [box.run(["/bin/true"]).duration_s * 1000 for _ in range(n)]
    py = [box.python("pass").duration_s * 1000 for _ in range(max(5, n // 3))]
    light = Sandbox(backend="unshare")
    sb_unshare = [light.run(["/bin/true"]).duration_s * 1000 for _ in range(n)]
    plain = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        plain.append((time.perf_counter() - t0) * 1000)
    return {"sandbox_start_ms_p50": percentile(sb, 50), "sandbox_python_ms_p50": percentile(py, 50),
            "sandbox_start_ms_p50_unshare": percentile(sb_unshare, 50), "sandbox_isolation_unshare": light.level,
            "plain_subprocess_ms_p50": percentile(plain, 50), "sandbox_isolation": box.level}


def _reliability(n: int, rate: float = 0.05) -> dict[str, Any]:
    from emergent.errors import EmergentError, TransientError
    from emergent.tools.registry import ToolRegistry
    from emergent.tools.runner import CircuitBreaker, ToolRunner
    from emergent.tools.spec import RetryPolicy, tool

    rnd = random.Random(42)

    def flaky(x: int) -> int:
        """Fail transiently now and then."""
        if rnd.random() < rate:
            raise TransientError("injected transient failure")
        return x

    out = {}
    for label, attempts in (("reliability", 4), ("reliability_without_retry", 1)):
        spec = tool(flaky, version="1.0.0", retry=RetryPolicy(attempts=attempts, initial=0.0005, max_wait=0.004,
                                                               jitter=0.0005))
        reg = ToolRegistry(entry_points=False)
        reg.add(spec)
        runner = ToolRunner(reg, breaker=CircuitBreaker(SystemClockLike(), threshold=10**9))
        ok = 0
        for i in range(n):
            try:
                runner.call("flaky", {"x": i})
                ok += 1
            except EmergentError:
                pass
        out[label] = ok / n
    out["reliability_calls"] = n
    out["injected_failure_rate"] = rate
    return out


class SystemClockLike:
    def now(self) -> float:
        return time.time()


def _policy(n_rules: int, n: int) -> dict[str, Any]:
    from emergent.autonomy.policy import Matrix, Request, Rule

    rnd = random.Random(3)
    tools = [f"svc{i}.op{j}" for i in range(400) for j in range(5)]
    subjects = ["*", "agent:*", "role:ops", "role:dev", *[f"agent:a{i}" for i in range(50)]]
    wild = [Rule(rnd.choice(subjects), rnd.choice(["svc1*", "*", "svc2?.op*", "*.op3"]),
                 rnd.choice(["allow", "ask", "deny"]), rnd.choice(["*", "/data/*"])) for _ in range(50)]
    exact = [Rule(rnd.choice(subjects), rnd.choice(tools), rnd.choice(["allow", "allow", "ask", "deny"]),
                  rnd.choice(["*", "/data/*", "/tmp/x"]), max_cost=rnd.choice([None, 10.0]))
             for _ in range(n_rules - len(wild))]
    m = Matrix(exact + wild)
    reqs = [Request(f"agent:a{rnd.randrange(60)}", rnd.choice(tools), rnd.choice(["read", "write"]),
                    rnd.choice(["/data/1", "/tmp/x"]), rnd.random() * 20, roles=("role:ops",)) for _ in range(1000)]
    it = iter(reqs * (n // len(reqs) + 1))
    ours = _p50_us(lambda: m.decide(next(it)), n)
    it2 = iter(reqs)
    linear = _p50_us(lambda: m.decide_linear(next(it2)), min(200, len(reqs)))
    assert all(m.decide(r).effect == m.decide_linear(r).effect for r in reqs[:200])
    return {"policy_rules": len(m), "policy_decision_us_p50": percentile(ours, 50),
            "policy_decision_us_p95": percentile(ours, 95), "policy_linear_scan_us_p50": percentile(linear, 50)}


def run(args: dict[str, Any]) -> dict[str, Any]:
    size = int(args.get("size") or 20_000)
    with tempfile.TemporaryDirectory(prefix="emergent-bench-tools-") as tmp:
        out = _overhead(Path(tmp), size)
    out.update(_sandbox(30))
    out.update(_reliability(10_000))
    out.update(_policy(10_000, size))
    return out


def table(r: dict[str, Any]) -> list[Row]:
    return [
        ("call overhead µs (p50, telemetry+audit on)", fmt(r["call_overhead_us"]),
         f"direct call {fmt(r['direct_call_us_p50'])} µs", "≤ 20"),
        ("call overhead µs (mean, incl. SQL flushes)", fmt(r["call_overhead_us_mean"]), "", ""),
        (f"sandbox start ms (p50, {r['sandbox_isolation']})", fmt(r["sandbox_start_ms_p50"]),
         f"plain subprocess {fmt(r['plain_subprocess_ms_p50'])} ms", "≤ 30"),
        (f"sandbox start ms (p50, {r['sandbox_isolation_unshare']} via unshare)",
         fmt(r["sandbox_start_ms_p50_unshare"]), "", "≤ 30"),
        ("sandboxed python -I -S ms (p50)", fmt(r["sandbox_python_ms_p50"]), "", ""),
        ("reliability (5 % transient failures)", f"{r['reliability']:.4%}",
         f"no retry {r['reliability_without_retry']:.2%}", "≥ 99.9 %"),
        (f"policy decision µs (p50, {r['policy_rules']} rules)", fmt(r["policy_decision_us_p50"]),
         f"linear scan {fmt(r['policy_linear_scan_us_p50'])} µs", "≤ 50"),
    ]
