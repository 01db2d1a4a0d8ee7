"""``emergent bench graph [--data locomo-dev.json] [--size N]``: knowledge-graph figures, each beside a
same-run baseline.

- ``build_memories_per_s``: incremental graph build (rules extraction, SQL, node embeddings) over
  the LoCoMo turns; baseline: extraction alone.
- ``ppr_p50_ms_*`` / ``ppr_p95_ms_*``: personalised PageRank (scipy CSR power iteration) on random
  graphs of 10k and 100k nodes (2-3 seeds a query); baseline: ``networkx.pagerank`` at 10k.
- ``multihop_r10_with_graph`` / ``_without_graph``: recall@10 of LoCoMo multi-hop questions
  (category 1), each conversation in its own scope, with graph search fused into recall and without
  it, on the same store; ``overall_r10_*`` the same over categories 1-4. ``--size N`` keeps the
  first N conversations (a quicker run).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emergent.bench import Row, median, percentile

DEFAULT_DATA = Path("/work/shared/data/locomo/locomo-dev.json")


def _ppr_latency(n: int, queries: int, seed: int = 1) -> dict[str, float]:
    from emergent.graph.search import build_index, personalized_pagerank
    from emergent.graph.synthetic import random_graph

    ids, edges = random_graph(n, 6, seed=seed)
    t0 = time.perf_counter()
    idx = build_index(ids, ["bench"] * n, edges)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(queries):
        s = np.zeros(n, dtype=np.float32)
        s[rng.integers(0, n, int(rng.integers(2, 4)))] = 1.0
        t0 = time.perf_counter()
        personalized_pagerank(idx.transition_t, s)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50": median(times), "p95": percentile(times, 95), "edges": float(len(edges)), "index_s": build_s}


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
    data = Path(args["data"]) if args.get("data") else DEFAULT_DATA
    queries = 100
    big = _ppr_latency(100_000, queries)
    small = _ppr_latency(10_000, queries)
    nx_small = _networkx_ppr(10_000, 10)
    result: dict[str, Any] = {
        "ppr_p50_ms_10k": small["p50"], "ppr_p95_ms_10k": small["p95"],
        "ppr_p50_ms_100k": big["p50"], "ppr_p95_ms_100k": big["p95"], "ppr_edges_100k": int(big["edges"]),
        "ppr_index_build_s_100k": big["index_s"],
        "networkx_ppr_p50_ms_10k": nx_small["p50"], "networkx_ppr_p95_ms_10k": nx_small["p95"],
    }
    if data.exists():
        result.update(_locomo(data, args.get("size")))
    else:
        result.update(build_memories_per_s=None, multihop_r10_with_graph=None, multihop_r10_without_graph=None,
                      locomo=f"{data} not found: pass --data locomo-dev.json")
    return result


def table(r: dict[str, Any]) -> list[Row]:
    return [
        ("graph build (memories/s)", r.get("build_memories_per_s"), r.get("extract_only_memories_per_s"),
         "baseline: extraction alone"),
        ("PPR p95 ms, 10k nodes", r["ppr_p95_ms_10k"], r["networkx_ppr_p95_ms_10k"], "baseline: networkx.pagerank"),
        ("PPR p95 ms, 100k nodes", r["ppr_p95_ms_100k"], None, "target ≤ 50 ms"),
        ("multi-hop R@10 (LoCoMo cat. 1)", r.get("multihop_r10_with_graph"), r.get("multihop_r10_without_graph"),
         "baseline: recall without graph, same run"),
        ("overall R@10 (cat. 1-4)", r.get("overall_r10_with_graph"), r.get("overall_r10_without_graph"),
         "must not drop"),
    ]
