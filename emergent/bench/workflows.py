"""``emergent bench workflows``: what a workflow step costs, whether fan-out runs in parallel, whether a
fast branch waits for a slow one, and the agents' bus beside raw Redis.

- ``step_overhead_us_p50``: a run of N no-op ``call`` steps (a fan-out: no step needs another) through
  ``ws.workflows.run`` (SQL checkpoint before and after each step, audit, executor), divided by N;
  beside, interleaved in the same run, ``bare_call_us_p50`` (the same function called N times, per
  call) and ``dask_threaded_task_us_p50`` (the same N tasks through ``dask.threaded.get``, per task).
  The median over the repeats. Target: ≤ 100 µs and below Dask's. ``step_overhead_chain_us_p50`` and
  ``dask_threaded_chain_us_p50`` are the same for a chain (each step takes the previous one's output).
- ``dag_1000_s``: a 1,000-step DAG (20 layers of 50 no-op steps, each needing two of the layer before).
- ``fanout_speedup``: 20 steps that each sleep 100 ms (I/O-bound), all independent, against the same
  20 as a chain; both through the engine. Target ≥ 10×.
- ``no_lockstep``: a fast branch of two steps (10 ms each) beside a slow sibling (300 ms): true when
  the fast branch's second step finished before the slow one did (a superstep engine would hold it).
- ``bus_*``: ``emergent.agents.bench.bench_bus(redis_url)`` on a private redis-server (unless
  ``EMERGENT_REDIS_URL`` is set); null with ``bus_error`` saying why when it cannot run.

``--size N`` sets N (default 500); ``--quick`` uses small sizes (for tests: the keys, not the figures).
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emergent.bench import Row, median, ratio

TARGET_OVERHEAD_US = 100.0
TARGET_FANOUT = 10.0
BUS_KEYS = ("bus_msgs_per_s", "raw_redis_msgs_per_s", "bus_ratio", "bus_lost_after_kill")


def _noop(x: Any = None) -> Any:
    return x


def _sleep(secs: float) -> float:
    time.sleep(secs)
    return secs


# ------------------------------------------------------------------------------ baselines
def bare_call_us(n: int) -> float:
    """Microseconds per call of a no-op function, over ``n`` calls."""
    fn = _noop
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1e6


def dask_graph(n: int, shape: str) -> dict[str, Any]:
    """``n`` no-op tasks as a Dask graph: independent (``fanout``) or each taking the previous one's
    result (``chain``)."""
    if shape == "chain":
        return {f"t{i}": (_noop, f"t{i - 1}" if i else 0) for i in range(n)}
    return {f"t{i}": (_noop, i) for i in range(n)}


def dask_threaded_us(n: int, shape: str = "fanout") -> float:
    """Microseconds per task of ``n`` no-op tasks on Dask's threaded scheduler (``dask.threaded.get``)."""
    import dask.threaded

    dsk = dask_graph(n, shape)
    keys = list(dsk) if shape == "fanout" else [f"t{n - 1}"]
    t0 = time.perf_counter()
    dask.threaded.get(dsk, keys)
    return (time.perf_counter() - t0) / n * 1e6


# ------------------------------------------------------------------------------ workflows
def noop_workflow(n: int, shape: str) -> Any:
    """``n`` no-op call steps, independent (``fanout``) or a chain."""
    from emergent.workflows.spec import Workflow

    wf = Workflow.build(f"bench-noop-{shape}-{n}")
    prev = None
    for i in range(n):
        args = {"x": prev.output} if (shape == "chain" and prev is not None) else {"x": i}
        prev = wf.call(f"s{i}", _noop, args=args)
    return wf


def layered_workflow(layers: int, width: int) -> Any:
    """``layers × width`` no-op steps; each step after the first layer needs two of the layer before."""
    from emergent.workflows.spec import Workflow

    wf = Workflow.build(f"bench-dag-{layers * width}")
    for layer in range(layers):
        for i in range(width):
            needs = [] if layer == 0 else sorted({f"l{layer - 1}-{i}", f"l{layer - 1}-{(i + 1) % width}"})
            wf.call(f"l{layer}-{i}", _noop, args={"x": i}, needs=needs)
    return wf


def sleep_workflow(n: int, seconds: float, *, parallel: bool) -> Any:
    """``n`` steps that each sleep ``seconds``: independent, or a chain (each needs the one before)."""
    from emergent.workflows.spec import Workflow

    wf = Workflow.build(f"bench-sleep-{'parallel' if parallel else 'sequential'}")
    for i in range(n):
        wf.call(f"sleep{i}", _sleep, args={"secs": seconds},
                needs=[] if parallel or i == 0 else [f"sleep{i - 1}"])
    return wf


def lockstep_workflow(fast_s: float, slow_s: float, marks: dict[str, float]) -> Any:
    """A fast branch (``fast1`` → ``fast2``) beside a slow sibling (``slow``); each step records when
    its function returned in ``marks``."""
    from emergent.workflows.spec import Workflow

    def step(name: str, seconds: float) -> Callable[..., str]:
        def work(after: Any = None) -> str:
            time.sleep(seconds)
            marks[name] = time.perf_counter()
            return name

        work.__name__ = name
        return work

    wf = Workflow.build("bench-no-lockstep")
    first = wf.call("fast1", step("fast1", fast_s))
    wf.call("fast2", step("fast2", fast_s), args={"after": first.output})
    wf.call("slow", step("slow", slow_s))
    return wf


def _run(ws: Any, wf: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    run = ws.workflows.run(wf, principal=ws.principal)
    elapsed = time.perf_counter() - t0
    status = str(getattr(run.status, "value", run.status))
    if status != "completed":
        raise RuntimeError(f"benchmark workflow {run.workflow} ended {status}: {run.error}")
    return elapsed, run


def _overhead(ws: Any, n: int, repeats: int) -> dict[str, Any]:
    flows = {shape: noop_workflow(n, shape) for shape in ("fanout", "chain")}
    _run(ws, noop_workflow(10, "fanout"))  # warm: imports, prepared statements, the executor's threads
    dask_threaded_us(10)
    ours: dict[str, list[float]] = {"fanout": [], "chain": []}
    dask: dict[str, list[float]] = {"fanout": [], "chain": []}
    bare: list[float] = []
    for _ in range(repeats):  # interleaved: a load spike hits all three alike
        bare.append(bare_call_us(n))
        for shape in ("fanout", "chain"):
            dask[shape].append(dask_threaded_us(n, shape))
            ours[shape].append(_run(ws, flows[shape])[0] / n * 1e6)
    step, task = median(ours["fanout"]), median(dask["fanout"])
    return {"steps_per_run": n, "repeats": repeats,
            "step_overhead_us_p50": step, "bare_call_us_p50": median(bare), "dask_threaded_task_us_p50": task,
            "step_vs_dask_ratio": ratio(step, task),
            "step_overhead_chain_us_p50": median(ours["chain"]), "dask_threaded_chain_us_p50": median(dask["chain"])}


def _fanout(ws: Any, n: int, seconds: float) -> dict[str, Any]:
    par, _ = _run(ws, sleep_workflow(n, seconds, parallel=True))
    seq, _ = _run(ws, sleep_workflow(n, seconds, parallel=False))
    return {"fanout_steps": n, "fanout_step_s": seconds, "fanout_parallel_s": par, "fanout_sequential_s": seq,
            "fanout_speedup": seq / par if par else None}


def _lockstep(ws: Any, fast_s: float, slow_s: float) -> dict[str, Any]:
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    _run(ws, lockstep_workflow(fast_s, slow_s, marks))
    return {"no_lockstep": marks["fast2"] < marks["slow"], "fast_branch_done_s": marks["fast2"] - t0,
            "slow_branch_done_s": marks["slow"] - t0}


# ------------------------------------------------------------------------------ bus
def bus(quick: bool = False) -> dict[str, Any]:
    """The agents helper's bus figures on a private redis-server; nulls and ``bus_error`` when it cannot run."""
    nulls: dict[str, Any] = dict.fromkeys(BUS_KEYS)
    try:
        from emergent.agents.bench import bench_bus
    except ImportError as exc:
        return {**nulls, "bus_error": f"emergent.agents.bench is not available: {exc}"}
    from emergent.bench.memory import redis_url
    from emergent.errors import EmergentError

    small = {"n": 500, "rounds": 1}  # a quick run: keys and types, not figures
    kwargs = {k: v for k, v in small.items() if k in inspect.signature(bench_bus).parameters} if quick else {}
    try:
        with redis_url() as url:
            out = dict(bench_bus(url, **kwargs))
    except (EmergentError, OSError) as exc:
        return {**nulls, "bus_error": f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"}
    return {**nulls, **out}


# ------------------------------------------------------------------------------ entry points
def run(args: dict[str, Any]) -> dict[str, Any]:
    from emergent.workstation import Workstation

    quick = bool(args.get("quick"))
    n = int(args.get("size") or (50 if quick else 500))
    repeats = int(args.get("k") or (3 if quick else 9))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="emergent-bench-workflows-") as tmp, \
            Workstation.open(Path(tmp) / "ws") as ws:
        out.update(_overhead(ws, n, repeats))
        layers, width = (4, 25) if quick else (20, 50)
        seconds, _ = _run(ws, layered_workflow(layers, width))
        out.update({"dag_steps": layers * width, "dag_1000_s": None if quick else seconds, "dag_s": seconds})
        out.update(_fanout(ws, 20, 0.02 if quick else 0.1))
        out.update(_lockstep(ws, 0.01, 0.3))
        out["executor"] = ws.settings.workflows.executor
    out.update(bus(quick))
    out.update({"quick": quick, "target_step_overhead_us": TARGET_OVERHEAD_US, "target_fanout_speedup": TARGET_FANOUT})
    return out


def table(result: dict[str, Any]) -> list[Row]:
    from emergent.bench import fmt

    dask_us = result["dask_threaded_task_us_p50"]
    return [
        (f"no-op step, fan-out of {result['steps_per_run']} (µs/step, p50)", result["step_overhead_us_p50"], dask_us,
         f"{fmt(result['step_vs_dask_ratio'])}x Dask's threaded task (baseline); target <= {TARGET_OVERHEAD_US:g} µs "
         "and < 1x"),
        ("bare function call (µs, p50)", result["bare_call_us_p50"], None, "the floor"),
        (f"no-op step, chain of {result['steps_per_run']} (µs/step, p50)", result["step_overhead_chain_us_p50"],
         result["dask_threaded_chain_us_p50"], "baseline: a Dask threaded chain"),
        (f"DAG of {result['dag_steps']} steps (s)", result["dag_s"], None, "no baseline"),
        ("fan-out speedup (20 sleeping steps, parallel vs chain)", result["fanout_speedup"], None,
         f">= {TARGET_FANOUT:g}"),
        ("no lock-step (fast branch done before slow sibling)", result["no_lockstep"], None, "true"),
        ("bus messages/s (agents bus on Redis Streams)", result.get("bus_msgs_per_s"),
         result.get("raw_redis_msgs_per_s"), f"{fmt(result.get('bus_ratio'))}x raw redis-py XADD/XREADGROUP "
         f"(baseline); target >= 0.8x{'; ' + result['bus_error'] if result.get('bus_error') else ''}"),
        ("bus messages lost after a consumer is killed", result.get("bus_lost_after_kill"), None, "0"),
    ]
