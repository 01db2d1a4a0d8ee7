"""Consolidation: promote, deduplicate, archive.

1. *Promote* from STM what was reinforced (``access_count >= promote_access_count``) or is
   important (``importance >= promote_importance``), including items the STM size bound evicted.
2. *Deduplicate*: a promoted item whose nearest LTM neighbour in the same scope is at least
   ``dedup_similarity`` similar is merged into it (importance = max, accesses added, stability
   reinforced, the merged id kept in ``sources`` for provenance) instead of being inserted.
3. *Archive*: LTM memories whose retention fell below ``archive_floor`` move to the archive table
   (never deleted), written before they are removed from the live table. Retention counts from the
   last access, which starts at the learned time, never at the event time: ingesting notes months
   old archives none of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emergent.memory import decay
from emergent.memory.types import MemoryRecord, Scope, Tier

if TYPE_CHECKING:  # pragma: no cover
    from emergent.memory.service import Memory


@dataclass
class ConsolidationReport:
    promoted: int = 0
    merged: int = 0
    archived: int = 0
    evicted_seen: int = 0
    kept_in_stm: int = 0
    accesses_flushed: int = 0
    index: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    #: the ids this run wrote into long-term memory (checked against erasures that began meanwhile)
    promoted_ids: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["promoted_ids"]
        return out


def _should_promote(rec: MemoryRecord, memory: Memory) -> bool:
    cfg = memory.config
    return rec.importance >= cfg.promote_importance or rec.access_count >= cfg.promote_access_count


def _merge(into: MemoryRecord, dup: MemoryRecord, growth: float, now: float) -> MemoryRecord:
    r = decay.retention(now - into.last_accessed, into.stability)
    meta = {**dup.meta, **into.meta}
    return into.with_(
        importance=max(into.importance, dup.importance),
        access_count=into.access_count + dup.access_count + 1,
        stability=decay.reinforce(max(into.stability, dup.stability), r, growth),
        last_accessed=max(into.last_accessed, dup.last_accessed),
        learned_at=min(into.learned_at, dup.learned_at),  # known since the first of them was learned
        sources=[*into.sources, dup.id, *dup.sources],
        meta=meta,
    )


def _dedup_batch(batch: list[MemoryRecord], threshold: float) -> tuple[list[MemoryRecord], dict[str, str]]:
    """Collapse near-duplicates inside the promoted batch; returns survivors and dup -> survivor."""
    if len(batch) < 2:
        return batch, {}
    vecs = np.stack([r.vector for r in batch if r.vector is not None])
    sims = vecs @ vecs.T
    alias: dict[str, str] = {}
    survivors: list[int] = []
    for i in range(len(batch)):
        match = next((j for j in survivors if sims[i, j] >= threshold and batch[i].scope == batch[j].scope), None)
        if match is None:
            survivors.append(i)
        else:
            alias[batch[i].id] = batch[match].id
    return [batch[i] for i in survivors], alias


def promote(memory: Memory, agent: str, now: float, report: ConsolidationReport, *,
            evicted: list[MemoryRecord] | None = None, live_items: bool = True) -> None:
    """``evicted``: items already drained (an erasure judges the survivors of its drain now);
    ``live_items=False``: leave the live short-term items alone."""
    stm = memory.stm
    live = stm.scan(agent) if live_items else []
    if evicted is not None:
        _promote(memory, agent, now, report, live, evicted)
        return
    # The evicted items leave the short-term memory only once the block completes, when what was
    # promoted is committed: a full disk or a kill in between leaves them for the next consolidation.
    with stm.promoting_evicted(agent) as drained:
        _promote(memory, agent, now, report, live, drained)


def _promote(memory: Memory, agent: str, now: float, report: ConsolidationReport, live: list[MemoryRecord],
             evicted: list[MemoryRecord]) -> None:
    stm, ltm, cfg = memory.stm, memory.ltm, memory.config
    report.evicted_seen += len(evicted)
    chosen = [r for r in [*live, *evicted] if _should_promote(r, memory) and r.vector is not None]
    chosen.sort(key=lambda r: (-r.importance, r.created_at))  # the survivor of a merge is the strongest
    report.kept_in_stm += len(live) - sum(1 for r in live if _should_promote(r, memory))
    if not chosen:
        return
    # Promoted by a run killed before it could remove them from STM: already there, exactly once (the
    # same id with another text is a newer version of the memory: promoted as before).
    texts = {r.id: r.text for r in chosen}
    stored = {r.id for r in ltm.get_many(list(texts), Scope(agent)) if r.text == texts[r.id]} if ltm.count() else set()
    unique, alias = _dedup_batch([r for r in chosen if r.id not in stored], cfg.dedup_similarity)
    by_id = {r.id: r for r in chosen}
    for dup_id, keep_id in alias.items():  # fold in-batch duplicates into their survivor first
        keep = next(u for u in unique if u.id == keep_id)
        unique[unique.index(keep)] = _merge(keep, by_id[dup_id], cfg.stability_growth, now)
    inserts: list[MemoryRecord] = []
    updates: dict[str, MemoryRecord] = {}
    for rec in unique:
        where = Scope(rec.scope.agent, rec.scope.user, rec.scope.session).where()
        near = ltm.vector_search(rec.vector, where, 1) if ltm.count() and rec.vector is not None else []
        if near and near[0].score >= cfg.dedup_similarity:
            target = updates.get(near[0].record.id, near[0].record)
            updates[target.id] = _merge(target, rec, cfg.stability_growth, now)
            report.merged += 1
        else:
            inserts.append(rec.with_(tier=Tier.LTM))
    report.merged += len(alias)
    # LTM first, then STM: a crash in between leaves the item in both (the next run finds it stored).
    ltm.upsert([*inserts, *updates.values()], now=now)
    stm.delete(agent, [r.id for r in chosen])
    report.promoted += len(inserts)
    report.promoted_ids += [r.id for r in inserts]


def archive_decayed(memory: Memory, now: float, report: ConsolidationReport, batch: int = 5000) -> None:
    cfg = memory.config
    ltm = memory.ltm
    if not ltm.count():
        return
    cols = ltm.scan(columns=["id", "stability", "last_accessed", "importance"])
    stability = cols.column("stability").to_numpy().astype(np.float64)
    elapsed = now - cols.column("last_accessed").to_numpy()
    strength = np.exp(-np.clip(elapsed, 0, None) / (stability * decay.DAY))
    ids = np.asarray(cols.column("id").to_pylist(), dtype=object)
    importance = cols.column("importance").to_numpy()
    doomed = ids[(strength < cfg.archive_floor) & (importance < cfg.protect_importance)].tolist()
    for start in range(0, len(doomed), batch):
        part = doomed[start : start + batch]
        records = _records_by_ids(ltm, part)
        report.archived += ltm.move_to_archive(records, "decayed below floor", now)


def _records_by_ids(ltm: Any, ids: list[str]) -> list[MemoryRecord]:
    where = "id IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in ids) + ")"
    return ltm.records(where)


def consolidate(memory: Memory, *, promote_stm: bool = True, archive: bool = True,
                agents: list[str] | None = None) -> ConsolidationReport:
    """Run one consolidation pass; safe to run again at any time (idempotent steps)."""
    t0 = time.perf_counter()
    now = memory.clock.now()
    report = ConsolidationReport()
    report.accesses_flushed = memory.flush()
    if promote_stm:
        for agent in agents or memory.stm.agents():
            promote(memory, agent, now, report)
    if archive:
        archive_decayed(memory, now, report)
    report.index = memory.ltm.maintain(force=True)
    report.duration_s = round(time.perf_counter() - t0, 4)
    return report
