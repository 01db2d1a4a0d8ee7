"""``emergent bench tools``: the runner's overhead, sandbox start, reliability under transient
failures and policy decision time — each beside a baseline measured in the same run.

- ``call_overhead_us``: p50 of a trivial tool called by an agent principal (allowed by a rule)
  through the full chain (principal check, validate, policy, breaker, telemetry row, audit entry)
  minus p50 of calling the function directly; ``call_overhead_us_mean`` includes the batched SQL
  flushes of telemetry and audit.
- ``sandbox_start_ms_p50``: a sandboxed ``/bin/true`` with the best isolation available (bubblewrap
  namespaces, or rlimits + own session + scrubbed env + temp dir + network namespace + privilege
  drop) beside a plain ``subprocess.run``; ``sandbox_start_ms_p50_unshare`` without bubblewrap.
- ``reliability``: share of 10,000 calls that succeed when 5 % of attempts fail transiently,
  through the retry wrapper (baseline: the same calls without retries).
- ``policy_decision_us_p50``: one gate decision with 10,000 rules in the matrix, the way the runner
  asks: ``Autonomy.decide(Autonomy.request_for(principal, ...))`` (the principal's seal checked, its
  roles from the directory, pause/suspension, defaults, confidence threshold), rules loaded from SQL;
  ``policy_matrix_us_p50``: the matrix lookup alone (baseline for both: a linear fnmatch scan of the
  same rules).
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
    human = gate.principals.os_user()
    bench = gate.principals.agent("bench", created_by=human)
    gate.add_rule("agent:*", "add", "allow", by=human)
    reg = ToolRegistry(store, entry_points=False)
    reg.add(spec)
    tel = Telemetry(store)
    runner = ToolRunner(reg, autonomy=gate, telemetry=tel)
    args = {"a": 1, "b": 2}
    for _ in range(2000):  # warm up (chains, caches, first flushes)
        runner.call("add", args, principal=bench)
    direct = _p50_us(lambda: add(**args), n)
    t0 = time.perf_counter()
    through = _p50_us(lambda: runner.call("add", args, principal=bench), n)
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


def _reliability(root: Path, n: int, rate: float = 0.05) -> dict[str, Any]:
    from emergent.errors import EmergentError, TransientError
    from emergent.principals import Principals
    from emergent.stores.sql import SQLStore
    from emergent.tools.registry import ToolRegistry
    from emergent.tools.runner import CircuitBreaker, ToolRunner
    from emergent.tools.spec import RetryPolicy, tool

    rnd = random.Random(42)

    def flaky(x: int) -> int:
        """Fail transiently now and then."""
        if rnd.random() < rate:
            raise TransientError("injected transient failure")
        return x

    store = SQLStore(f"sqlite:///{root / 'reliability.db'}")
    me = Principals(store).os_user()  # a runner without a gate: the retry wrapper is what is measured
    out: dict[str, Any] = {}
    for label, attempts in (("reliability", 4), ("reliability_without_retry", 1)):
        spec = tool(flaky, version="1.0.0", retry=RetryPolicy(attempts=attempts, initial=0.0005, max_wait=0.004,
                                                               jitter=0.0005))
        reg = ToolRegistry(entry_points=False)
        reg.add(spec)
        runner = ToolRunner(reg, breaker=CircuitBreaker(SystemClockLike(), threshold=10**9))
        ok = 0
        for i in range(n):
            try:
                runner.call("flaky", {"x": i}, principal=me)
                ok += 1
            except EmergentError:
                pass
        out[label] = ok / n
    store.dispose()
    out["reliability_calls"] = n
    out["injected_failure_rate"] = rate
    return out


class SystemClockLike:
    def now(self) -> float:
        return time.time()


def _policy(root: Path, n_rules: int, n: int) -> dict[str, Any]:
    from emergent.autonomy.policy import Matrix, Request, Rule
    from emergent.autonomy.service import Autonomy
    from emergent.principals import Principals
    from emergent.stores.sql import SQLStore

    rnd = random.Random(3)
    tools = [f"svc{i}.op{j}" for i in range(400) for j in range(5)]
    subjects = ["*", "agent:*", "role:ops", "role:dev", *[f"agent:a{i}" for i in range(50)]]
    wild = [Rule(rnd.choice(subjects), rnd.choice(["svc1*", "*", "svc2?.op*", "*.op3"]),
                 rnd.choice(["allow", "ask", "deny"]), rnd.choice(["*", "/data/*"])) for _ in range(50)]
    exact = [Rule(rnd.choice(subjects), rnd.choice(tools), rnd.choice(["allow", "allow", "ask", "deny"]),
                  rnd.choice(["*", "/data/*", "/tmp/x"]), max_cost=rnd.choice([None, 10.0]))
             for _ in range(n_rules - len(wild))]
    m = Matrix(exact + wild)
    calls = [(rnd.randrange(60), rnd.choice(tools), rnd.choice(["read", "write"]), rnd.choice(["/data/1", "/tmp/x"]),
              rnd.random() * 20, rnd.random()) for _ in range(1000)]
    reqs = [Request(f"agent:a{a}", t, se, res, cost, roles=("role:ops",)) for a, t, se, res, cost, _ in calls]
    for r in reqs:  # warm up, as the gate below is
        m.decide(r)
    it = iter(reqs * (n // len(reqs) + 1))
    matrix = _p50_us(lambda: m.decide(next(it)), n)
    it2 = iter(reqs)
    linear = _p50_us(lambda: m.decide_linear(next(it2)), min(200, len(reqs)))
    assert all(m.decide(r).effect == m.decide_linear(r).effect for r in reqs[:200])

    # the same rules and requests through the gate, as the runner asks it (rules from SQL)
    store = SQLStore(f"sqlite:///{root / 'policy.db'}")
    directory = Principals(store, config={f"agent:a{i}": {"roles": ["role:ops"]} for i in range(60)})
    gate = Autonomy(store, principals=directory)
    human = directory.os_user()
    gate.add_rules(exact + wild, by=human)
    agents = [directory.agent(f"a{i}") for i in range(60)]
    asks = [(agents[a], t, se, res, cost, conf) for a, t, se, res, cost, conf in calls]

    def decide(a: Any) -> Any:
        return gate.decide(gate.request_for(a[0], a[1], a[2], a[3], cost=a[4], confidence=a[5]))

    for a in asks:  # warm up (the snapshot of the rules, the roles cache)
        decide(a)
    # the gate found the rule the linear scan finds (then applied defaults and thresholds to it)
    assert all(decide(a).rule_id == m.decide_linear(r).rule_id for a, r in zip(asks[:200], reqs, strict=False))
    it3 = iter(asks * (n // len(asks) + 1))
    ours = _p50_us(lambda: decide(next(it3)), n)
    gate.close()
    store.dispose()
    return {"policy_rules": len(m), "policy_decision_us_p50": percentile(ours, 50),
            "policy_decision_us_p95": percentile(ours, 95), "policy_matrix_us_p50": percentile(matrix, 50),
            "policy_matrix_us_p95": percentile(matrix, 95), "policy_linear_scan_us_p50": percentile(linear, 50)}


def run(args: dict[str, Any]) -> dict[str, Any]:
    size = int(args.get("size") or 20_000)
    with tempfile.TemporaryDirectory(prefix="emergent-bench-tools-") as tmp:
        out = _overhead(Path(tmp), size)
        out.update(_sandbox(30))
        out.update(_reliability(Path(tmp), 10_000))
        out.update(_policy(Path(tmp), 10_000, size))
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
        (f"policy decision µs (p50, {r['policy_rules']} rules, through the gate)", fmt(r["policy_decision_us_p50"]),
         f"linear scan {fmt(r['policy_linear_scan_us_p50'])} µs", "≤ 50"),
        ("policy matrix lookup µs (p50)", fmt(r["policy_matrix_us_p50"]), "", ""),
    ]
