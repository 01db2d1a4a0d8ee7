"""``emergent bench graph [--data locomo-dev.json] [--size N]``: knowledge-graph figures, each beside a
same-run baseline.

- ``build_memories_per_s``: incremental graph build (rules extraction, SQL, node embeddings) over
  the LoCoMo turns; baseline: extraction alone.
- ``ppr_p50_ms_*`` / ``ppr_p95_ms_*``: personalised PageRank on random graphs of 10k and 100k nodes
  (2-3 seeds a query) over the prebuilt CSR index; ``ppr_build_s_100k`` builds that index once.
  Baseline ``ppr_baseline_p95_ms_*``: a textbook scipy power iteration (float64 ``P.T @ p``, the
  same damping and stopping rule) on the *same prebuilt matrix*, so both sides skip the build.
  ``networkx_ppr_*_10k`` is kept for reference only: ``networkx.pagerank`` rebuilds its matrix on
  every call, so it is not a like-for-like baseline.
- ``multihop_r10_with_graph`` / ``_without_graph``: recall@10 of LoCoMo multi-hop questions
  (category 1), each conversation in its own scope, with graph search fused into recall and without
  it, on the same store; ``overall_r10_*`` the same over categories 1-4. ``--size N`` keeps the
  first N conversations (a quicker run). The LoCoMo file comes from ``--data`` or
  ``EMERGENT_BENCH_LOCOMO``; without one these rows say so and are left out.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emergent.bench import Row, median, percentile


def scipy_ppr(transition_t: Any, seeds: np.ndarray, *, damping: float = 0.5, tol: float = 1e-4,
              max_iter: int = 100) -> np.ndarray:
    """The baseline: the textbook power iteration with scipy, float64, allocating each step."""
    s = np.asarray(seeds, dtype=np.float64)
    s = s / s.sum()
    p = s.copy()
    m = transition_t.astype(np.float64)
    for _ in range(max_iter):
        nxt = damping * (m @ p)
        nxt += (1.0 - nxt.sum()) * s
        change = np.abs(nxt - p).sum()
        p = nxt
        if change < tol:
            break
    return p


def _ppr_latency(n: int, queries: int, seed: int = 1) -> dict[str, float]:
    from emergent.graph.search import build_index, personalized_pagerank
    from emergent.graph.synthetic import random_graph

    ids, edges = random_graph(n, 6, seed=seed)
    t0 = time.perf_counter()
    idx = build_index(ids, ["bench"] * n, edges)
    build_s = time.perf_counter() - t0
    base_matrix = idx.transition_t.astype(np.float64)  # the baseline's prebuilt matrix, outside its timing
    rng = np.random.default_rng(seed)
    ours, base, agree = [], [], []
    for _ in range(queries):
        s = np.zeros(n, dtype=np.float32)
        s[rng.integers(0, n, int(rng.integers(2, 4)))] = 1.0
        t0 = time.perf_counter()
        p = personalized_pagerank(idx.transition_t, s)
        ours.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        q = scipy_ppr(base_matrix, s)
        base.append((time.perf_counter() - t0) * 1e3)
        top_p, top_q = set(np.argsort(-p)[:20].tolist()), set(np.argsort(-q)[:20].tolist())
        agree.append(len(top_p & top_q) / 20)
    return {"p50": median(ours), "p95": percentile(ours, 95), "base_p50": median(base),
            "base_p95": percentile(base, 95), "top20_agreement": float(np.mean(agree)),
            "edges": float(len(edges)), "index_s": build_s}


def _networkx_ppr(n: int, queries: int, seed: int = 1) -> dict[str, float]:
    import networkx as nx

    from emergent.graph.synthetic import random_graph

    ids, edges = random_graph(n, 6, seed=seed)
    g = nx.Graph()
    g.add_nodes_from(ids)
    g.add_weighted_edges_from(edges)
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(queries):
        seeds = {ids[int(i)]: 1.0 for i in rng.integers(0, n, int(rng.integers(2, 4)))}
        t0 = time.perf_counter()
        nx.pagerank(g, alpha=0.5, personalization=seeds, tol=1e-6)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50": median(times), "p95": percentile(times, 95)}


def _locomo(data_path: Path, size: int | None) -> dict[str, Any]:
    from emergent.bench import locomo
    from emergent.graph.extract import RuleExtractor
    from emergent.workstation import Workstation

    data = locomo.load(data_path)
    if size:
        data = data[:size]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="emergent-graph-bench-") as d, Workstation.open(d) as ws:
        mem = ws.memory
        turns = locomo.ingest(mem, data)  # graph not attached yet: measure its build separately
        records = mem.ltm.records()
        ex = RuleExtractor()
        t0 = time.perf_counter()
        for r in records:
            ex.extract(r.text, r.meta, r.created_at)
        extract_s = time.perf_counter() - t0
        kg = ws.graph  # attaches the listener and the "graph" retriever
        t0 = time.perf_counter()
        for i in range(0, len(records), 256):
            kg.add_memories(records[i:i + 256])
        build_s = time.perf_counter() - t0
        counts = kg.counts()
        with_graph = locomo.evaluate(mem, data, 10, baselines=False)
        weight = mem.retrievers["graph"][1]
        mem.remove_retriever("graph")
        without = locomo.evaluate(mem, data, 10, baselines=False)
        mem.add_retriever("graph", kg.retrieve, weight)
        out.update(
            conversations=len(data), turns=turns, graph_nodes=counts["nodes"], graph_edges=counts["edges"],
            build_memories_per_s=len(records) / build_s, extract_only_memories_per_s=len(records) / extract_s,
            multihop_r10_with_graph=with_graph["recall"].get("multi-hop", {}).get("r@10"),
            multihop_r10_without_graph=without["recall"].get("multi-hop", {}).get("r@10"),
            multihop_questions=with_graph["recall"].get("multi-hop", {}).get("n"),
            overall_r10_with_graph=with_graph["recall"]["overall"]["r@10"],
            overall_r10_without_graph=without["recall"]["overall"]["r@10"],
            recall_p95_ms_with_graph=with_graph["recall_p95_ms"], recall_p95_ms_without_graph=without["recall_p95_ms"],
            embedder=mem.embedder.id, graph_weight=weight, graph_retrieve_limit=kg.retrieve_limit,
            graph_min_coverage=kg.min_coverage, graph_link_similarity=kg.link_similarity,
        )
    return out


def run(args: dict[str, Any]) -> dict[str, Any]:
    queries = 100
    big = _ppr_latency(100_000, queries)
    small = _ppr_latency(10_000, queries)
    nx_small = _networkx_ppr(10_000, 10)
    result: dict[str, Any] = {
        "ppr_p50_ms_10k": small["p50"], "ppr_p95_ms_10k": small["p95"],
        "ppr_baseline_p95_ms_10k": small["base_p95"],
        "ppr_p50_ms_100k": big["p50"], "ppr_p95_ms_100k": big["p95"], "ppr_edges_100k": int(big["edges"]),
        "ppr_build_s_100k": big["index_s"],
        "ppr_baseline_p50_ms_100k": big["base_p50"], "ppr_baseline_p95_ms_100k": big["base_p95"],
        "ppr_p95_ratio_100k": big["p95"] / big["base_p95"], "ppr_top20_agreement_100k": big["top20_agreement"],
        "networkx_ppr_p50_ms_10k": nx_small["p50"], "networkx_ppr_p95_ms_10k": nx_small["p95"],
    }
    data = Path(args["data"]) if args.get("data") else None
    if data is not None and data.exists():
        result.update(_locomo(data, args.get("size")))
    else:
        result.update(build_memories_per_s=None, multihop_r10_with_graph=None, multihop_r10_without_graph=None,
                      locomo="no LoCoMo file: pass --data locomo-dev.json or set EMERGENT_BENCH_LOCOMO "
                             "(the build and multi-hop rows are left out)")
    return result


def table(r: dict[str, Any]) -> list[Row]:
    return [
        ("graph build (memories/s)", r.get("build_memories_per_s"), r.get("extract_only_memories_per_s"),
         "baseline: extraction alone" if r.get("build_memories_per_s") else r.get("locomo")),
        ("PPR p95 ms, 10k nodes", r["ppr_p95_ms_10k"], r["ppr_baseline_p95_ms_10k"],
         "baseline: scipy power iteration, same prebuilt matrix"),
        ("PPR p95 ms, 100k nodes", r["ppr_p95_ms_100k"], r["ppr_baseline_p95_ms_100k"],
         f"ratio {r['ppr_p95_ratio_100k']:.2f}; top-20 agreement {r['ppr_top20_agreement_100k']:.2f}"),
        ("PPR index build s, 100k nodes", r["ppr_build_s_100k"], None, "no baseline (built once per graph version)"),
        ("networkx.pagerank p95 ms, 10k (rebuilds its matrix)", r["networkx_ppr_p95_ms_10k"], None,
         "reference only, not like-for-like"),
        ("multi-hop R@10 (LoCoMo cat. 1)", r.get("multihop_r10_with_graph"), r.get("multihop_r10_without_graph"),
         "baseline: recall without graph, same run"),
        ("overall R@10 (cat. 1-4)", r.get("overall_r10_with_graph"), r.get("overall_r10_without_graph"),
         "must not drop"),
    ]
