"""The ``Memory`` service: remember, recall, forget, reinforce, consolidate, stats.

``remember`` writes short-term memory (TTL from the forgetting curve); ``remember(tier="ltm")`` and
``ingest`` write long-term memory directly (documents, imported corpora). ``recall`` searches both:
vector and full-text candidates from LTM, similarity over the scope's STM items, fused by
weighted RRF and re-scored by relevance, recency, importance and strength.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import reprlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from emergent.clock import Clock, SystemClock, to_epoch
from emergent.config import MemoryConfig
from emergent.errors import (
    EmergentError,
    NotFoundError,
    PartialWriteError,
    ScopeError,
    StoreUnavailableError,
    ValidationError,
)
from emergent.memory import decay, ranking
from emergent.memory.ltm import Candidate, LongTermMemory, build_filter
from emergent.memory.stm import STM
from emergent.memory.types import (
    Kind,
    MemoryRecord,
    RecallHit,
    Scope,
    Tier,
    check_importance,
    check_kind,
    check_meta,
    check_text,
    new_id,
)
from emergent.providers.embeddings import Embedder
from emergent.workspace.audited import human, note, recorded, verified

log = logging.getLogger("emergent.memory")

OnSTMFailure = Literal["raise", "ltm"]
Retriever = Callable[[str, np.ndarray, Scope, int], Sequence[str]]


@dataclass(frozen=True, slots=True)
class OpSample:
    at: float
    op: str
    scope: str
    count: int
    latency_ms: float
    hit: bool | None = None


#: ids listed in a forget's audit entry (beyond that, the count and the first ones)
AUDIT_IDS = 1000


class Memory:
    """Short- and long-term memory of one workspace, scoped by agent / user / session.

    ``audit`` (an :class:`emergent.audit.Auditor`) records who forgot, consolidated or rewound
    what; ``principals`` (the workspace's directory) checks that whoever acts was issued by it.
    """

    def __init__(self, stm: STM, ltm: LongTermMemory, embedder: Embedder, config: MemoryConfig | None = None, *,
                 clock: Clock | None = None, sql: Any = None, scope: Scope | None = None,
                 on_stm_failure: OnSTMFailure = "raise", audit: Any = None, principals: Any = None) -> None:
        self.stm = stm
        self.ltm = ltm
        self.embedder = embedder
        self.config = config or MemoryConfig()
        self.clock = clock or SystemClock()
        self.sql = sql
        self.default_scope = scope or Scope()
        self.on_stm_failure = on_stm_failure
        self.audit = audit
        self.principals = principals
        self._ops: deque[OpSample] = deque(maxlen=10_000)
        self._unflushed: list[OpSample] = []
        self._access: dict[str, tuple[Scope, int, float]] = {}
        self._lock = threading.Lock()
        self.retrievers: dict[str, tuple[Retriever, float]] = {}
        self.promote_on_close = True  # an in-process STM dies with the process: keep what qualifies
        self.listeners: list[Callable[[str, Sequence[Any]], None]] = []
        #: the newest listener failures (event, listener, error): a write that committed is never
        #: failed by what follows it (the knowledge graph catches up with `emergent graph sync`)
        self.listener_errors: deque[tuple[str, str, str]] = deque(maxlen=20)

    def add_retriever(self, name: str, fn: Retriever, weight: float = 1.0) -> None:
        """Fuse another ranked list into recall (the knowledge graph offers one).

        ``fn(query, query_vector, scope, n)`` returns up to ``n`` long-term memory ids, best first.
        """
        self.retrievers[name] = (fn, weight)

    def remove_retriever(self, name: str) -> None:
        self.retrievers.pop(name, None)

    def add_listener(self, fn: Callable[[str, Sequence[Any]], None]) -> None:
        """Call ``fn(event, items)`` after each write: ("remember"|"ingest", records) or ("forget", ids)."""
        self.listeners.append(fn)

    def _notify(self, event: str, items: Sequence[Any]) -> None:
        """Tell listeners about a write that has committed. A listener's failure cannot undo the
        write, so it does not fail the call: it is logged (WARNING) and kept in ``listener_errors``."""
        for fn in self.listeners:
            try:
                fn(event, items)
            except Exception as exc:  # noqa: BLE001 - reported, see the docstring
                name = getattr(fn, "__qualname__", repr(fn))
                self.listener_errors.append((event, name, f"{type(exc).__name__}: {str(exc)[:300]}"))
                log.warning("memory %s of %d item(s) is stored, but listener %s failed: %s: %s (derived data "
                            "such as the knowledge graph may lag; `emergent graph sync` catches up)",
                            event, len(items), name, type(exc).__name__, exc)

    # ================================================================== validation helpers
    def _scope(self, scope: Scope | str | dict[str, Any] | None) -> Scope:
        return Scope.of(scope, self.default_scope)

    def _record(self, text: Any, kind: Any, importance: Any, scope: Any, meta: Any, at: Any) -> MemoryRecord:
        text = check_text(text, self.config.max_text_bytes)
        kind = check_kind(kind)
        importance = check_importance(importance)
        scope = self._scope(scope)
        meta = check_meta(meta)
        now = self.clock.now()
        try:
            t = to_epoch(at, now)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"invalid 'at' timestamp {at!r}: {exc}", field="at") from None
        stability = decay.initial_stability(importance, self.config.initial_stability_days,
                                            self.config.importance_stability_boost)
        stability *= self.config.kind_stability_factor.get(kind.value, 1.0)
        # ``at`` is when it happened (created_at: time filters, temporal neighbours); the memory is
        # learned now, so its forgetting curve starts now: a backdated memory neither expires from
        # short-term memory at once nor is archived by the next consolidation.
        return MemoryRecord(id=new_id(t), text=text, kind=kind, importance=importance, scope=scope,
                            created_at=t, last_accessed=max(t, now), stability=stability, meta=meta)

    def _ttl(self, rec: MemoryRecord) -> float:
        age = max(0.0, self.clock.now() - rec.last_accessed)
        ttl = decay.time_to_floor(rec.stability, self.config.archive_floor) - age
        return max(1.0, min(self.config.stm_ttl_s, ttl))

    # ================================================================== writes
    def remember(self, text: str, *, kind: Kind | str = Kind.EPISODIC, importance: float = 0.5,
                 scope: Scope | str | dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
                 at: Any = None, tier: Literal["stm", "ltm"] = "stm") -> MemoryRecord:
        """Remember one text. Validates everything before anything is written."""
        rec = self._record(text, kind, importance, scope, meta, at)
        t0 = time.perf_counter()
        rec.vector = self.embedder.embed([rec.text])[0]
        if tier == "ltm":
            rec.tier = Tier.LTM
            self.ltm.add([rec], now=self.clock.now())
        elif tier == "stm":
            self._put_stm(rec)
        else:
            raise ValidationError(f"unknown tier {tier!r}", hint="use 'stm' or 'ltm'", field="tier")
        self._log("remember", rec.scope, 1, t0)
        self._notify("remember", [rec])
        return rec

    def _put_stm(self, rec: MemoryRecord) -> None:
        try:
            self.stm.put(rec, self._ttl(rec))
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            if self.on_stm_failure == "ltm":  # declared fallback: durable write instead
                rec.tier = Tier.LTM
                self.ltm.add([rec], now=self.clock.now())
                return
            raise StoreUnavailableError(
                f"short-term memory ({self.stm.name}) is unavailable: {exc}",
                hint="restart Redis, or open the workstation with on_stm_failure='ltm' to write to "
                "long-term memory while it is down; this memory was not stored",
                memory_id=rec.id,
            ) from exc

    def _stm_guard(self, call: Callable[[], Any], fallback: Any) -> Any:
        """Run an STM read; with the declared fallback a lost Redis reads as empty STM."""
        try:
            return call()
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            if self.on_stm_failure == "ltm":
                return fallback
            raise StoreUnavailableError(
                f"short-term memory ({self.stm.name}) is unavailable: {exc}",
                hint="restart Redis, or set EMERGENT_STM_FALLBACK=ltm to read long-term memory only",
            ) from exc

    def ingest(self, items: Iterable[str | dict[str, Any]], *, kind: Kind | str = Kind.SEMANTIC,
               importance: float = 0.5, scope: Scope | str | dict[str, Any] | None = None,
               batch_size: int = 512) -> list[str]:
        """Bulk-write texts (or dicts with text/kind/importance/meta/at/scope) to long-term memory;
        returns the ids stored, in order.

        Every item is validated before anything is embedded or written: a bad item raises
        :class:`ValidationError` naming its index and a short repr, and nothing is stored. Items are
        then embedded and written ``batch_size`` per commit; if a later batch fails, the error
        (:class:`PartialWriteError`, or the store's error when nothing was stored) carries
        ``committed_ids``, exactly the ids that are stored.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}", field="batch_size")
        records = self._validate_items(items, kind, importance, scope)
        ids: list[str] = []
        t0 = time.perf_counter()
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            try:
                ids += self._write_batch(batch)
            except Exception as exc:
                failure = self._ingest_failure(exc, ids, records)
                if failure is exc:
                    raise
                raise failure from exc
        self._log("ingest", self._scope(scope), len(ids), t0)
        return ids

    def _validate_items(self, items: Any, kind: Any, importance: Any, scope: Any) -> list[MemoryRecord]:
        """Every item checked, or a ValidationError naming the first bad one (and how many are bad)."""
        if isinstance(items, str | bytes | bytearray):
            raise ValidationError(
                f"ingest takes a list of texts, not one {type(items).__name__} ({_short(items)}): it would store one "
                "memory per character", hint=f"pass a list: ingest([{_short(items)}]), or remember(text) for one memory",
                field="items", committed_ids=[])
        if isinstance(items, dict):
            raise ValidationError(f"ingest takes a list of items, not one dict ({_short(items)})",
                                  hint="pass a list: ingest([item])", field="items", committed_ids=[])
        try:
            iterator = iter(items)
        except TypeError:
            raise ValidationError(f"ingest takes a list of texts or dicts, not {type(items).__name__} ({_short(items)})",
                                  hint="pass a list, e.g. ingest(['first text', {'text': 'second', 'importance': 0.8}])",
                                  field="items", committed_ids=[]) from None
        records: list[MemoryRecord] = []
        bad: list[tuple[int, Any, ValidationError]] = []
        for index, item in enumerate(iterator):
            try:
                records.append(self._item_record(item, kind, importance, scope))
            except ValidationError as invalid:
                bad.append((index, item, invalid))
        if bad:
            index, item, first = bad[0]
            more = ""
            if len(bad) > 1:
                others = ", ".join(str(i) for i, _, _ in bad[1:11])
                more = f" ({len(bad) - 1} more invalid item{'s' if len(bad) > 2 else ''}: {others}" + \
                       (", ..." if len(bad) > 11 else "") + ")"
            raise ValidationError(
                f"ingest item {index} ({_short(item)}): {first.message}{more}; nothing was written",
                hint=first.hint or "fix or drop the item and call ingest again", field=first.fields.get("field", "items"),
                index=index, item=_short(item), invalid=[i for i, _, _ in bad], committed_ids=[])
        return records

    def _item_record(self, item: Any, kind: Any, importance: Any, scope: Any) -> MemoryRecord:
        if isinstance(item, str | bytes | bytearray):
            spec: dict[str, Any] = {"text": item}
        elif isinstance(item, dict):
            spec = item
            if "text" not in spec:
                raise ValidationError("the item has no 'text'", hint="give each dict a 'text' key", field="text")
        else:
            raise ValidationError(f"an item must be a str or a dict with 'text', not {type(item).__name__}",
                                  hint="convert it to text first (str(x)), or drop it", field="text")
        return self._record(spec["text"], spec.get("kind", kind), spec.get("importance", importance),
                            spec.get("scope", scope), spec.get("meta"), spec.get("at"))

    def _ingest_failure(self, exc: Exception, stored: list[str], records: list[MemoryRecord]) -> Exception:
        """The error for a batch that failed after ``stored`` (earlier batches) were committed."""
        committed = stored + list(getattr(exc, "committed_ids", None) or [])
        if not committed:
            if isinstance(exc, EmergentError) and not hasattr(exc, "committed_ids"):
                exc.committed_ids = []  # type: ignore[attr-defined]
            return exc
        failed = [r.id for r in records if r.id not in set(committed)]
        cause = exc.__cause__ if isinstance(exc, PartialWriteError) and exc.__cause__ is not None else exc
        said = cause.message if isinstance(cause, EmergentError) else f"{type(cause).__name__}: {str(cause)[:300]}"
        hint = cause.hint if isinstance(cause, EmergentError) and cause.hint else "fix the cause and retry"
        hint = hint.split("; nothing was written")[0].split("; what was stored is listed")[0]  # said below, for the call
        return PartialWriteError(
            f"ingest stored {len(committed)} of {len(records)} items (their ids are in `committed_ids`), then "
            f"failed: {said}",
            hint=f"{hint}; `committed_ids` lists what is stored (in order): ingest only the items after them",
            committed_ids=committed, failed_ids=failed)

    def _write_batch(self, batch: list[MemoryRecord]) -> list[str]:
        if not batch:
            return []
        vectors = self.embedder.embed([r.text for r in batch])
        for r, v in zip(batch, vectors, strict=True):
            r.vector, r.tier = v, Tier.LTM
        self.ltm.add(batch, now=self.clock.now())
        self._notify("ingest", batch)
        return [r.id for r in batch]

    # ================================================================== reads
    def get(self, id: str, *, scope: Scope | str | dict[str, Any] | None = None) -> MemoryRecord:
        scope = self._scope(scope)
        rec = self._stm_guard(lambda: self.stm.get(scope.agent, id), None)
        if rec is not None and scope.contains(rec.scope):
            return rec
        return self.ltm.get(id, scope)

    def recall(self, query: str, *, k: int = 10, scope: Scope | str | dict[str, Any] | None = None,
               kinds: Sequence[Kind | str] | None = None, since: Any = None, until: Any = None,
               touch: bool = True) -> list[RecallHit]:
        """The ``k`` memories that best answer ``query`` within ``scope``."""
        query = check_text(query, self.config.max_text_bytes)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise ValidationError(f"k must be an integer in [1, 1000], got {k!r}", field="k")
        scope = self._scope(scope)
        kind_list = [check_kind(x) for x in kinds] if kinds else None
        now = self.clock.now()
        lo = to_epoch(since, 0.0) if since is not None else None
        hi = to_epoch(until, 0.0) if until is not None else None
        qvec = self.embedder.embed([query])[0]
        t0 = time.perf_counter()
        hits = self._search(query, qvec, scope, kind_list, lo, hi, k, now)
        if touch:
            self._touch(hits, now)
        self._log("recall", scope, len(hits), t0, hit=bool(hits))
        return hits

    def _search(self, query: str, qvec: np.ndarray, scope: Scope, kinds: list[Kind] | None,
                lo: float | None, hi: float | None, k: int, now: float) -> list[RecallHit]:
        cfg = self.config
        n = max(cfg.candidates, k)
        where = build_filter(scope, kinds, lo, hi)
        # The two LTM searches run concurrently (LanceDB releases the GIL); STM is scanned meanwhile.
        # Light searches read only what ranking needs; the k memories returned are completed at the end.
        vec_f = _pool().submit(self.ltm.vector_search, qvec, where, n, light=True)
        txt = self.ltm.text_search(query, where, n, light=True)
        stm_vec, stm_txt = self._stm_candidates(query, qvec, scope, kinds, lo, hi, n)
        vec = vec_f.result()
        by_id: dict[str, Candidate] = {}
        for c in (*vec, *txt, *stm_vec, *stm_txt):
            by_id.setdefault(c.record.id, c)
        light = {c.record.id for c in (*vec, *txt)}
        # BM25 and STM term overlap are on different scales: normalise each before they share a list.
        text_scores = {**{c.record.id: c.score for c in stm_txt}, **ranking.minmax({c.record.id: c.score for c in txt})}
        lists: dict[str, dict[str, float]] = {"vector": {c.record.id: c.score for c in (*vec, *stm_vec)},
                                              "text": text_scores}
        weights = {"vector": cfg.w_vector, "text": cfg.w_text}
        for name, (fn, weight) in self.retrievers.items():
            ids = list(fn(query, qvec, scope, n))[:n]
            missing = [i for i in ids if i not in by_id]
            for rec in self.ltm.get_many(missing, scope):
                by_id[rec.id] = Candidate(rec, 0.0)
            lists[name] = ranking.rank_scores([i for i in ids if i in by_id], cfg.rrf_k)
            weights[name] = weight
        if cfg.fusion == "rrf":
            fused = ranking.rrf({name: sorted(sc, key=lambda i: -sc[i]) for name, sc in lists.items()}, weights,
                                cfg.rrf_k)
        else:
            fused = ranking.fuse_scores(lists, weights)
        episodic = {i: (by_id[i].record.scope.key, by_id[i].record.created_at) for i in fused
                    if by_id[i].record.kind is Kind.EPISODIC}
        boosted = ranking.temporal_neighbors({i: fused[i] for i in episodic}, episodic, cfg.neighbor_window_s,
                                             cfg.w_neighbors)
        w = ranking.Weights(cfg.w_relevance, cfg.w_recency, cfg.w_importance, cfg.w_strength)
        hits = []
        for id_, rel in fused.items():
            rel = boosted.get(id_, rel)
            rec = by_id[id_].record
            age = now - rec.last_accessed
            rcy = decay.recency(age, cfg.recency_half_life_days)
            strength = decay.retention(age, rec.stability)
            found_by = tuple(name for name, sc in lists.items() if id_ in sc)
            if rel > fused[id_]:
                found_by += ("neighbor",)
            hits.append(RecallHit(rec, ranking.blend(rel, rcy, rec.importance, strength, w), rel, rcy, strength,
                                  found_by))
        hits.sort(key=lambda h: -h.score)
        top = hits[:k]
        full = self.ltm.complete([by_id[h.id] for h in top if h.id in light], scope)
        return [h if h.id not in light else replace(h, record=full[h.id]) for h in top
                if h.id not in light or h.id in full]

    def _stm_candidates(self, query: str, qvec: np.ndarray, scope: Scope, kinds: list[Kind] | None,
                        lo: float | None, hi: float | None, n: int) -> tuple[list[Candidate], list[Candidate]]:
        """STM items by cosine similarity, and by the share of query terms they contain (0-1)."""
        try:
            items = [r for r in self.stm.scan(scope.agent) if scope.contains(r.scope)
                     and (not kinds or r.kind in kinds)
                     and (lo is None or r.created_at >= lo) and (hi is None or r.created_at < hi)
                     and r.vector is not None]
        except Exception as exc:
            if _is_connection_error(exc) and self.on_stm_failure == "ltm":
                return [], []
            if _is_connection_error(exc):
                raise StoreUnavailableError(f"short-term memory ({self.stm.name}) is unavailable: {exc}",
                                            hint="restart Redis or use on_stm_failure='ltm'") from exc
            raise
        if not items:
            return [], []
        sims = np.stack([r.vector for r in items if r.vector is not None]) @ qvec
        order = np.argsort(-sims)[:n]
        vec = [Candidate(items[i], float(sims[i])) for i in order]
        terms = {t for t in _WORD.findall(query.lower()) if len(t) > 2 and t not in _STOP}
        if not terms:
            return vec, []
        overlap = [(len(terms & set(_WORD.findall(r.text.lower()))) / len(terms), r) for r in items]
        txt = [Candidate(r, score) for score, r in sorted(overlap, key=lambda x: -x[0]) if score > 0][:n]
        return vec, txt

    # ================================================================== reinforcement
    def _touch(self, hits: Sequence[RecallHit], now: float) -> None:
        """Record accesses; LTM rows are updated in batches by :meth:`flush` (one commit)."""
        for h in hits:
            rec = h.record
            if rec.tier is Tier.STM:
                self._reinforce_stm(rec, now)
            else:
                with self._lock:
                    _, n, _ = self._access.get(rec.id, (rec.scope, 0, now))
                    self._access[rec.id] = (rec.scope, n + 1, now)

    def _reinforce_stm(self, rec: MemoryRecord, now: float) -> MemoryRecord:
        r = decay.retention(now - rec.last_accessed, rec.stability)
        new = rec.with_(stability=decay.reinforce(rec.stability, r, self.config.stability_growth),
                        last_accessed=now, access_count=rec.access_count + 1)
        self._put_stm(new)
        return new

    def reinforce(self, id: str, *, scope: Scope | str | dict[str, Any] | None = None) -> MemoryRecord:
        """Strengthen a memory now (as if recalled): stability grows, last access moves to now."""
        scope = self._scope(scope)
        now = self.clock.now()
        rec = self.get(id, scope=scope)
        if rec.tier is Tier.STM:
            return self._reinforce_stm(rec, now)
        with self._lock:
            _, n, _ = self._access.get(id, (rec.scope, 0, now))
            self._access[id] = (rec.scope, n + 1, now)
        self.flush()
        return self.ltm.get(id, scope)

    def flush(self) -> int:
        """Apply buffered LTM accesses and write buffered operation samples to SQL."""
        with self._lock:
            pending, self._access = self._access, {}
            ops, self._unflushed = self._unflushed, []
        updated = 0
        if pending:
            by_scope: dict[str, list[str]] = {}
            for id_, (scope, _, _) in pending.items():
                by_scope.setdefault(scope.agent, []).append(id_)
            records = [r for agent, ids in by_scope.items() for r in self.ltm.get_many(ids, Scope(agent))]
            changed = []
            for rec in records:
                _, count, last = pending[rec.id]
                s = rec.stability
                for _ in range(count):
                    s = decay.reinforce(s, decay.retention(last - rec.last_accessed, s), self.config.stability_growth)
                changed.append(rec.with_(stability=s, last_accessed=last, access_count=rec.access_count + count))
            self.ltm.upsert(changed, now=self.clock.now())
            updated = len(changed)
        if ops and self.sql is not None:
            self._write_ops(ops)
        return updated

    # ================================================================== deletes
    def forget(self, target: str | Sequence[str] | None = None, *, principal: Any,
               scope: Scope | str | dict[str, Any] | None = None, kinds: Sequence[Kind | str] | None = None,
               since: Any = None, until: Any = None, include_archive: bool = True) -> int:
        """Delete by id(s), or every memory of ``scope`` matching the filter. Never crosses scope.

        ``principal`` is who forgets (``ws.principal``, or an agent's principal: an agent forgets
        only in its own scope). The intent is in the audit trail before anything is deleted, the
        count and ids after."""
        who = verified(self.principals, principal)
        scope = self._scope(scope)
        t0 = time.perf_counter()
        if target is None and not kinds and since is None and until is None and scope == self.default_scope \
                and scope.user is None:
            raise ValidationError("forget() with no id and no filter would delete the whole agent's memory",
                                  hint="pass an id, a filter (kinds/since/until), or an explicit scope")
        if who.is_agent and scope.agent != who.id:
            raise ScopeError(f"{who.key} may forget only in its own memory scope ({who.id!r}), not {scope.key!r}",
                             hint="a human forgets in other scopes", scope=scope.key, principal=who.key)
        kind_list = [check_kind(x) for x in kinds] if kinds else None
        lo = to_epoch(since, 0.0) if since is not None else None
        hi = to_epoch(until, 0.0) if until is not None else None
        where = build_filter(scope, kind_list, lo, hi)
        ids: list[str] | None = None
        if target is not None:
            ids = [target] if isinstance(target, str) else list(target)
            where += " AND id IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in ids) + ")"
        intent = {"scope": scope.key, "ids": ids[:AUDIT_IDS] if ids is not None else None,
                  "filter": None if ids is not None else {"kinds": [k.value for k in kind_list or []],
                                                          "since": lo, "until": hi},
                  "include_archive": include_archive}
        with recorded(self.audit, "memory.forget", who, intent) as outcome:
            stm_ids = [r.id for r in self._stm_guard(lambda: self.stm.scan(scope.agent), [])
                       if scope.contains(r.scope) and (ids is None or r.id in ids)
                       and (not kind_list or r.kind in kind_list)
                       and (lo is None or r.created_at >= lo) and (hi is None or r.created_at < hi)]
            gone = stm_ids + self.ltm.scan(where, ["id"]).column("id").to_pylist()
            n = self.stm.delete(scope.agent, stm_ids) + self.ltm.delete_where(where)
            outcome.update(count=n, forgotten=gone[:AUDIT_IDS])
            self._notify("forget", gone)
            if include_archive:
                self.ltm.delete_archived(where)
            if target is not None and isinstance(target, str) and n == 0:
                raise NotFoundError(f"no memory {target!r} in scope {scope.key!r}", hint="check the id and the scope")
        self._log("forget", scope, n, t0)
        return n

    # ================================================================== maintenance
    def consolidate(self, *, principal: Any, **kwargs: Any) -> Any:
        """Promote, deduplicate and archive (see :mod:`emergent.memory.consolidation`); audited
        with the promoted, merged and archived counts."""
        from emergent.memory.consolidation import consolidate

        who = verified(self.principals, principal)
        with recorded(self.audit, "memory.consolidate", who, {"options": dict(sorted(kwargs.items()))}) as outcome:
            report = consolidate(self, **kwargs)
            outcome.update(promoted=report.promoted, merged=report.merged, archived=report.archived,
                           evicted_seen=report.evicted_seen)
        return report

    def rewind(self, when: Any = None, *, version: int | None = None, principal: Any) -> dict[str, int]:
        """Point-in-time restore of long-term memory (LanceDB table versions): to how it was at
        ``when``, or to ``version`` of the memories table. A human's decision; audited."""
        from emergent.memory import pitr

        who = human(self.principals, principal, "rewind long-term memory")
        if (when is None) == (version is None):
            raise ValidationError("give exactly one of when and version",
                                  hint="list the versions with ltm_versions() / `emergent backup rewind --versions`")
        with recorded(self.audit, "memory.rewind", who, {"when": str(when) if when is not None else None,
                                                         "version": version}) as outcome:
            if version is not None:
                self.flush()
                self.ltm.restore_version(version)
                done = {"memories": int(version)}
            else:
                done = pitr.restore_ltm_at(self, when)
            outcome.update(restored=done)
        return done

    def stats(self) -> Any:
        from emergent.memory.analytics import memory_stats

        return memory_stats(self)

    def operations(self) -> list[OpSample]:
        return list(self._ops)

    # ================================================================== op log
    def _log(self, op: str, scope: Scope, count: int, t0: float, hit: bool | None = None) -> None:
        sample = OpSample(self.clock.now(), op, scope.key, count, (time.perf_counter() - t0) * 1e3, hit)
        self._ops.append(sample)
        self._unflushed.append(sample)
        if len(self._unflushed) >= 500 and self.sql is not None:
            with self._lock:
                ops, self._unflushed = self._unflushed, []
            self._write_ops(ops)

    def _write_ops(self, ops: list[OpSample]) -> None:
        from emergent.memory.tables import memory_ops

        rows = [{"at": o.at, "op": o.op, "scope": o.scope, "count": o.count, "latency_ms": o.latency_ms,
                 "hit": o.hit, "detail": None} for o in ops]
        with self.sql.begin() as conn:
            conn.execute(memory_ops.insert(), rows)

    def close(self) -> None:
        """Flush buffers; an in-process STM dies with the process, so promote what qualifies."""
        if self.promote_on_close and self.stm.name == "local" and self.stm.agents():
            from emergent.memory.consolidation import consolidate

            report = consolidate(self, archive=False)
            if report.promoted or report.merged:  # short-term memory kept on close: the system acted
                note(self.audit, "memory.promoted_on_close", "system:close",
                     {"promoted": report.promoted, "merged": report.merged}, durable=False)
        else:
            self.flush()
        self.ltm.close()


_POOL: ThreadPoolExecutor | None = None
_FROZEN = False


def freeze_startup_heap() -> None:
    """Move what exists when the first memory service starts (the imported modules of LanceDB,
    pyarrow, SQLAlchemy, pydantic...: ~190k objects) out of the cyclic garbage collector's sight.

    A full (generation 2) collection otherwise walks all of them: ~140 ms during which every
    thread stops, which was the tail of recall under concurrent load (p99 ~2-3x p50). Frozen
    objects are still freed by reference counting; only cycles among them are never collected.
    Called by the composition root (``EMERGENT_GC_FREEZE=false`` turns it off), never by the service."""
    global _FROZEN
    if _FROZEN:
        return
    _FROZEN = True
    gc.freeze()


def _short(value: Any, width: int = 40) -> str:
    """A short repr of an input item, for error messages."""
    r = reprlib.Repr()
    r.maxstring = r.maxother = width
    r.maxlist = r.maxdict = 3
    return r.repr(value)
_WORD = re.compile(r"\w+")
# Words too common to say anything about which short-term item answers a query.
_STOP = frozenset(["the", "and", "for", "are", "was", "were", "you", "your", "with", "that", "this", "what", "when", "where", "which", "who", "whom", "how", "why", "did", "does", "has", "have", "had", "not", "but", "all", "any", "can", "our", "out", "its", "his", "her", "him", "she", "they", "them", "their", "there", "then", "than", "from", "into", "about", "would", "could", "should", "will", "just", "also", "been", "being", "some"])


def _pool() -> ThreadPoolExecutor:
    """A small shared pool for the concurrent halves of recall (created on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emergent-recall")
    return _POOL


def _is_connection_error(exc: Exception) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover
        return isinstance(exc, (ConnectionError, TimeoutError))
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError))


def dumps_hits(hits: Sequence[RecallHit]) -> str:
    return json.dumps([{**h.record.public(), "score": round(h.score, 4)} for h in hits], ensure_ascii=False)
