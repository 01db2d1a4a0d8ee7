"""``emergent bench locomo --data FILE [--k 25] [--out results.jsonl]``: retrieval recall on LoCoMo.

Each conversation goes into its own scope: every turn becomes one long-term memory (``"Speaker:
text"``, plus the shared image's caption when there is one), with the speaker, session and turn id
as metadata and the session's date as its timestamp. Each question of categories 1-4 is then
recalled within that scope with the default configuration; recall@k = |gold evidence turns in the
top k| / |gold evidence turns|, averaged over questions.

Same-run baselines on the same store: BM25 alone (the full-text index), dense alone (the vector
index), and their plain reciprocal-rank fusion.

Splits: the defaults may be tuned only on the *tuning* split (conversations 0-2 of the file);
the *validation* split (conversations 3 and after) says whether what was tuned generalises. Both
are printed, with the gap (``tuning_r@10``, ``validation_r@10``, ``gap_r@10`` in ``--json``, and
each baseline's figures per split).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emergent.bench import Row
from emergent.errors import ValidationError

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
CUTOFFS = (5, 10, 25)
AGENT = "locomo"
_EVIDENCE = re.compile(r"^D:?(\d+):0*(\d+)$")
_SPLIT = re.compile(r"[;,\s]+")
_SESSION = re.compile(r"^session_(\d+)$")
#: conversations [0, TUNING) of a file are the tuning split, the rest the validation split
TUNING = 3
SPLITS = ("tuning", "validation")


def split_of(index: int) -> str:
    return "tuning" if index < TUNING else "validation"


# ------------------------------------------------------------------------------ metric
def normalise_evidence(items: Iterable[str]) -> list[str]:
    """Clean evidence strings: split on ``;``, ``,`` and spaces; ``D:11:26`` -> ``D11:26``,
    ``D30:05`` -> ``D30:5``; drop fragments that name no turn (``D``). Order kept, duplicates dropped."""
    out: list[str] = []
    for item in items:
        for token in _SPLIT.split(str(item).strip()):
            m = _EVIDENCE.match(token)
            if m:
                ref = f"D{int(m.group(1))}:{int(m.group(2))}"
                if ref not in out:
                    out.append(ref)
    return out


def recall_at(gold: Sequence[str], retrieved: Sequence[str], k: int) -> float:
    """|gold ∩ top k of retrieved| / |gold| (NaN-free: raises on empty gold)."""
    if not gold:
        raise ValueError("recall@k needs at least one gold item")
    top = set(retrieved[:k])
    return sum(g in top for g in set(gold)) / len(set(gold))


def summarise(rows: Iterable[dict[str, Any]], cutoffs: Sequence[int] = CUTOFFS) -> dict[str, Any]:
    """Mean recall@k per category and overall from rows with ``category``, ``gold``, ``retrieved``."""
    per: dict[str, list[list[float]]] = {}
    for row in rows:
        scores = [recall_at(row["gold"], row["retrieved"], k) for k in cutoffs]
        for key in ("overall", CATEGORIES.get(row["category"], str(row["category"]))):
            per.setdefault(key, []).append(scores)
    out: dict[str, Any] = {}
    for key, lists in per.items():
        out[key] = {"n": len(lists), **{f"r@{k}": sum(s[i] for s in lists) / len(lists) for i, k in enumerate(cutoffs)}}
    return out


# ------------------------------------------------------------------------------ data
def load(path: str | Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"cannot read LoCoMo file {str(path)!r}: {exc}",
                              hint="pass --data with a LoCoMo-format JSON file (a list of samples)") from None
    if not isinstance(data, list) or not all(isinstance(s, dict) and "conversation" in s and "qa" in s for s in data):
        raise ValidationError(f"{str(path)!r} is not in LoCoMo format",
                              hint="expected a list of {sample_id, conversation, qa, ...}")
    return data


def session_time(text: str | None) -> float | None:
    """``"1:56 pm on 8 May, 2023"`` -> epoch seconds (UTC), None when absent or unparseable."""
    if not text:
        return None
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def turn_text(turn: dict[str, Any]) -> str:
    text = f"{turn.get('speaker', '')}: {turn.get('text', '')}".strip()
    caption = turn.get("blip_caption")
    if caption:
        text += f" [shares an image: {caption}]"
    return text


def memories(sample: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One ingest item per turn, in conversation order (turns of a session a minute apart)."""
    conv = sample["conversation"]
    sessions = sorted((int(m.group(1)), key) for key in conv if (m := _SESSION.match(key)) and isinstance(conv[key], list))
    last = 0.0
    for number, key in sessions:
        start = session_time(conv.get(f"{key}_date_time")) or last + 86400.0
        for i, turn in enumerate(conv[key]):
            ref = normalise_evidence([turn.get("dia_id", "")])
            if not ref or not str(turn.get("text", "")).strip():
                continue
            last = start + 60.0 * i
            yield {"text": turn_text(turn), "at": last,
                   "meta": {"dia_id": ref[0], "speaker": turn.get("speaker"), "session": number}}


def questions(sample: dict[str, Any], turn_ids: set[str]) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    """(qa_index, qa, gold turns) for categories 1-4 with at least one evidence turn that exists."""
    for index, qa in enumerate(sample["qa"]):
        if qa.get("category") not in CATEGORIES:
            continue
        gold = [g for g in normalise_evidence(qa.get("evidence") or []) if g in turn_ids]
        if gold:
            yield index, qa, gold


# ------------------------------------------------------------------------------ run
def _scope(sample: dict[str, Any], index: int) -> str:
    sid = re.sub(r"[^A-Za-z0-9_.:@+\-]", "_", str(sample.get("sample_id") or f"sample-{index}"))[:128]
    return f"{AGENT}/{sid}"


def _baselines(mem: Any, query: str, scope: str, k: int) -> dict[str, list[str]]:
    from emergent.memory.ltm import build_filter
    from emergent.memory.ranking import rrf
    from emergent.memory.types import Scope

    where = build_filter(Scope.of(scope))
    qvec = mem.embedder.embed([query])[0]
    bm25 = [c.record.meta["dia_id"] for c in mem.ltm.text_search(query, where, k)]
    dense = [c.record.meta["dia_id"] for c in mem.ltm.vector_search(qvec, where, k)]
    fused = rrf({"bm25": bm25, "dense": dense}, {}, 60)
    return {"bm25": bm25, "dense": dense, "rrf": sorted(fused, key=lambda i: -fused[i])[:k]}


def evaluate(mem: Any, data: list[dict[str, Any]], k: int, *, baselines: bool = True,
             out: Path | None = None) -> dict[str, Any]:
    """Recall every question against an already ingested memory; returns the summary."""
    rows: list[dict[str, Any]] = []
    base_rows: dict[str, list[dict[str, Any]]] = {"bm25": [], "dense": [], "rrf": []}
    latencies: list[float] = []
    sink = out.open("w", encoding="utf-8") if out else None
    try:
        for s_index, sample in enumerate(data):
            scope = _scope(sample, s_index)
            turn_ids = {m["meta"]["dia_id"] for m in memories(sample)}
            for qa_index, qa, gold in questions(sample, turn_ids):
                t0 = time.perf_counter()
                hits = mem.recall(str(qa["question"]), k=k, scope=scope, touch=False)
                latencies.append((time.perf_counter() - t0) * 1e3)
                retrieved = [h.record.meta.get("dia_id") for h in hits]
                rows.append({"category": qa["category"], "gold": gold, "retrieved": retrieved,
                             "split": split_of(s_index)})
                if sink:
                    sink.write(json.dumps({"sample_id": sample.get("sample_id"), "qa_index": qa_index,
                                           "category": qa["category"], "retrieved": retrieved}) + "\n")
                if baselines:
                    for name, ids in _baselines(mem, str(qa["question"]), scope, k).items():
                        base_rows[name].append({"category": qa["category"], "gold": gold, "retrieved": ids,
                                                "split": split_of(s_index)})
    finally:
        if sink:
            sink.close()
    cutoffs = tuple(c for c in CUTOFFS if c <= k) or (k,)
    from emergent.bench import median, percentile

    result: dict[str, Any] = {"questions": len(rows), "k": k, "recall": summarise(rows, cutoffs),
                              "recall_p50_ms": median(latencies), "recall_p95_ms": percentile(latencies, 95)}
    if baselines:
        result["baselines"] = {name: summarise(r, cutoffs) for name, r in base_rows.items()}
    result["splits"] = {}
    for split in SPLITS:
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        part: dict[str, Any] = {"questions": len(mine), "recall": summarise(mine, cutoffs)}
        if baselines:
            part["baselines"] = {name: summarise([r for r in b if r["split"] == split], cutoffs)
                                 for name, b in base_rows.items()}
        result["splits"][split] = part
    _split_keys(result)
    return result


def _split_keys(result: dict[str, Any]) -> None:
    """Flat keys: ``tuning_r@10``, ``validation_r@10``, ``gap_r@10`` (tuning - validation), and the
    same for each baseline (``bm25_validation_r@10``...); None where a split has no question."""
    splits = result["splits"]
    names = [None, *result.get("baselines", {})]
    for name in names:
        prefix = f"{name}_" if name else ""
        got = {}
        for split in SPLITS:
            part = splits.get(split)
            rec = (part["recall"] if name is None else part["baselines"][name]) if part else None
            got[split] = rec["overall"].get("r@10") if rec else None
            result[f"{prefix}{split}_r@10"] = got[split]
        t, v = got["tuning"], got["validation"]
        result[f"{prefix}gap_r@10"] = None if t is None or v is None else t - v


def ingest(mem: Any, data: list[dict[str, Any]]) -> int:
    n = 0
    for s_index, sample in enumerate(data):
        n += len(mem.ingest(list(memories(sample)), kind="episodic", scope=_scope(sample, s_index)))
    return n


def run(args: dict[str, Any]) -> dict[str, Any]:
    from emergent.workstation import Workstation

    if not args.get("data"):
        raise ValidationError("the locomo benchmark needs --data FILE",
                              hint="for example: emergent bench locomo --data locomo-dev.json")
    data = load(args["data"])
    k = int(args.get("k") or 25)
    if args.get("size"):
        data = data[: int(args["size"])]
    with tempfile.TemporaryDirectory(prefix="emergent-locomo-") as d, Workstation.open(d) as ws:
        mem = ws.memory
        t0 = time.perf_counter()
        turns = ingest(mem, data)
        ingest_s = time.perf_counter() - t0
        result = evaluate(mem, data, k, out=Path(args["out"]) if args.get("out") else None)
        result.update(embedder=mem.embedder.id, conversations=len(data), turns=turns, ingest_s=round(ingest_s, 2),
                      config={n: v for n, v in mem.config.model_dump().items()
                              if n.startswith(("w_", "rrf", "candidates", "recency", "fusion", "neighbor", "time_", "prf_"))})
    result["r@10"] = result["recall"]["overall"].get("r@10")
    return result


def table(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    sections = [("all", r)] + [(name, part) for name, part in r.get("splits", {}).items()]
    for section, part in sections:
        base = part.get("baselines", {})
        for key in ["overall", *CATEGORIES.values()]:
            ours = part["recall"].get(key)
            if not ours:
                continue
            cuts = [c for c in CUTOFFS if f"r@{c}" in ours]
            if section != "all" and key != "overall":
                cuts = [c for c in cuts if c == 10]  # per category per split: R@10 only
            for cut in cuts:
                b = {name: s.get(key, {}).get(f"r@{cut}") for name, s in base.items()}
                best = max(b, key=lambda n: b[n] or 0) if b else None
                target = "≥ 0.75" if (section, key, cut) == ("validation", "overall", 10) else ""
                label = f"{section}: {key} R@{cut} (n={ours['n']})"
                rows.append((label, ours[f"r@{cut}"], b.get(best) if best else None,
                             f"{best} same run; {target}".strip("; ") if best else target))
    if r.get("gap_r@10") is not None:
        rows.append(("gap R@10, tuning - validation", r["gap_r@10"], r.get("bm25_gap_r@10"), "bm25; |gap| < 0.03"))
    rows.append(("recall p50 (ms), query embedding included", r["recall_p50_ms"], None, ""))
    rows.append(("recall p95 (ms), query embedding included", r["recall_p95_ms"], None, ""))
    return rows
