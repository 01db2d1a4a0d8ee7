"""The ``Memory`` service: remember, recall, forget, reinforce, consolidate, stats.

``remember`` writes short-term memory (TTL from the forgetting curve); ``remember(tier="ltm")`` and
``ingest`` write long-term memory directly (documents, imported corpora). ``recall`` searches both:
vector and full-text candidates from LTM, similarity over the scope's STM items, fused by
weighted RRF and re-scored by relevance, recency, importance and strength.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import reprlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
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
from emergent.memory.hot import Hit as _Hit
from emergent.memory.lexical import tokens
from emergent.memory.ltm import Candidate, LongTermMemory, build_filter
from emergent.memory.stm import STM, FallbackSTM, OnSTMFailure
from emergent.memory.stm_view import WORD as _WORD
from emergent.memory.stm_view import STMView
from emergent.memory.types import (
    ITEM_STEP_S,
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
from emergent.monitoring.tracing import traced
from emergent.providers.embeddings import Embedder
from emergent.workspace.audited import human, note, recorded, verified

log = logging.getLogger("emergent.memory")

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

    ``stm`` is any short-term memory; what an unreachable one means is a :class:`FallbackSTM`
    around it (the composition root builds it; a bare backend is wrapped here with
    ``on_stm_failure``), so the service itself has no connection-error branches.
    """

    def __init__(self, stm: STM, ltm: LongTermMemory, embedder: Embedder, config: MemoryConfig | None = None, *,
                 clock: Clock | None = None, sql: Any = None, scope: Scope | None = None,
                 on_stm_failure: OnSTMFailure = "raise", audit: Any = None, principals: Any = None) -> None:
        self.stm = stm if isinstance(stm, FallbackSTM) else FallbackSTM(
            stm, on_stm_failure, ltm_writer=lambda rec: self.ltm.add([rec], now=self.clock.now()))
        self.ltm = ltm
        self.embedder = embedder
        self.config = config or MemoryConfig()
        self.clock = clock or SystemClock()
        self.sql = sql
        self.default_scope = scope or Scope()
        self.on_stm_failure: OnSTMFailure = self.stm.policy
        self.audit = audit
        #: called before a rewind (the composition root adds one that refuses while an erasure is unfinished)
        self.rewind_guards: list[Callable[[], None]] = []
        #: which of these ids an erasure has listed (the composition root asks the retention ledger)
        self.erased_among: Callable[[Sequence[str]], set[str]] | None = None
        self.principals = principals
        self._ops: deque[OpSample] = deque(maxlen=10_000)
        self._unflushed: list[OpSample] = []
        self._ops_flush_at = 500  # operation samples are written to SQL every 500 (later, after a failed write)
        self._access: dict[str, tuple[Scope, int, float]] = {}
        self._lock = threading.Lock()
        self._stm_views: OrderedDict[str, STMView] = OrderedDict()  # per agent, most recently used last
        self._views_lock = threading.Lock()
        self.retrievers: dict[str, tuple[Retriever, float]] = {}
        self.promote_on_close = True  # an in-process STM dies with the process: keep what qualifies
        self.listeners: list[Callable[[str, Sequence[Any]], None]] = []
        #: the newest listener failures (event, listener, error): a write that committed is never
        #: failed by what follows it (the knowledge graph catches up with `emergent graph sync`)
        self.listener_errors: deque[tuple[str, str, str]] = deque(maxlen=20)
        #: recalls answered by LanceDB because the hot index failed (emergent doctor / status show it)
        self.index_failures = 0

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

    def _record(self, text: Any, kind: Any, importance: Any, scope: Any, meta: Any, at: Any,
                learned: float | None = None) -> MemoryRecord:
        """A validated new record, learned at ``learned`` (default: now)."""
        text = check_text(text, self.config.max_text_bytes)
        kind = check_kind(kind)
        importance = check_importance(importance)
        scope = self._scope(scope)
        meta = check_meta(meta)
        now = self.clock.now() if learned is None else learned
        try:
            t = to_epoch(at, now)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"invalid 'at' timestamp {at!r}: {exc}", field="at") from None
        stability = decay.initial_stability(importance, self.config.initial_stability_days,
                                            self.config.importance_stability_boost)
        stability *= self.config.kind_stability_factor.get(kind.value, 1.0)
        # ``at`` is when it happened (the event time: time filters, temporal neighbours; without
        # one, it happened when it was learned). The memory is learned now, so its forgetting curve
        # starts now: a backdated memory neither expires from short-term memory at once nor is
        # archived by the next consolidation.
        return MemoryRecord(id=new_id(t), text=text, kind=kind, importance=importance, scope=scope,
                            created_at=t, learned_at=now, last_accessed=now, stability=stability, meta=meta)

    def _ttl(self, rec: MemoryRecord) -> float:
        age = max(0.0, self.clock.now() - rec.last_accessed)
        ttl = decay.time_to_floor(rec.stability, self.config.archive_floor) - age
        return max(1.0, min(self.config.stm_ttl_s, ttl))

    # ================================================================== writes
    @traced("memory.remember")
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
            self.stm.put(rec, self._ttl(rec))  # an unreachable STM: FallbackSTM raises or writes LTM
        else:
            raise ValidationError(f"unknown tier {tier!r}", hint="use 'stm' or 'ltm'", field="tier")
        self._log("remember", rec.scope, 1, t0)
        self._notify("remember", [rec])
        return rec

    @traced("memory.ingest")
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
        now = self.clock.now()
        for index, item in enumerate(iterator):
            try:  # the batch keeps its order: distinct learned times, ITEM_STEP_S apart
                records.append(self._item_record(item, kind, importance, scope, now + index * ITEM_STEP_S))
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

    def _item_record(self, item: Any, kind: Any, importance: Any, scope: Any, learned: float) -> MemoryRecord:
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
                            spec.get("scope", scope), spec.get("meta"), spec.get("at"), learned)

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
        rec = self.stm.get(scope.agent, id)
        if rec is not None and scope.contains(rec.scope):
            return rec
        return self.ltm.get(id, scope)

    @traced("memory.recall")
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
        if not cfg.hot_index:
            return self._search_store(query, qvec, scope, kinds, lo, hi, k, now)
        # Long-term candidates come from the hot index (emergent.memory.hot): no LanceDB query per recall.
        q = np.asarray(qvec, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        try:
            part = self.ltm.hot.partition(scope.agent)
            with part.lock:
                vec = part.vector_top(q, part.mask(scope, kinds, lo, hi), n)
                generation = part.generation
        except EmergentError:
            raise  # the store itself failed (damaged, unavailable): said as such, no fallback hides it
        except Exception as exc:  # noqa: BLE001 - the index (not the store) failed: LanceDB answers
            self.ltm.hot.forget()
            log.warning("the hot recall index failed (%s: %s); recall falls back to LanceDB queries and the "
                        "index is rebuilt at the next recall", type(exc).__name__, exc)
            self.index_failures += 1
            return self._search_store(query, qvec, scope, kinds, lo, hi, k, now)
        stm_vec, stm_txt = self._stm_candidates(query, qvec, scope, kinds, lo, hi, n)
        with part.lock:
            if part.generation != generation:  # compacted or reloaded since: the vector hits' positions moved
                return self._search(query, qvec, scope, kinds, lo, hi, k, now)
            mask = part.mask(scope, kinds, lo, hi)  # rows appended meanwhile join; removed ones are skipped
            times = part.cols["created_at"][: part.size]
            # a period the query names; one named without a year ("in May") in the years the scope spans
            periods = (ranking.query_periods(query, lambda: ranking.years_spanned(times[mask], now))
                       if cfg.w_time > 0 else [])
            query_terms = tokens(query)
            docs, sc = part.text_scores(query_terms, mask, cfg.bm25_k1, cfg.bm25_b)
            txt = _top_hits(docs, sc, n)
            if cfg.prf_docs > 0 and txt:  # pseudo-relevance feedback from the scope's own best matches
                fb = txt[: cfg.prf_docs]
                terms = ranking.rm3(query_terms, [tokens(part.text[h.pos]) for h in fb], [h.score for h in fb],
                                    cfg.prf_terms, cfg.prf_original)
                docs, sc = part.text_scores(terms, mask, cfg.bm25_k1, cfg.bm25_b)
                txt = _top_hits(docs, sc, n)
            # Every retriever's scores are scaled by its own candidate list (its best 1, its n-th 0),
            # then read for the whole pool: the candidates, memories in a period the query names,
            # and the episode neighbours of candidates (found by no retriever, but told next to what was).
            cos = [h.score for h in vec] + [c.score for c in stm_vec]
            v_lo, v_hi = (min(cos), max(cos)) if cos else (0.0, 1.0)
            bm = [h.score for h in txt]
            t_lo, t_hi = (min(bm), max(bm)) if bm else (0.0, 1.0)
            pool = np.unique(np.fromiter((h.pos for h in (*vec, *txt)), np.int64))
            if periods:
                dated = mask & (ranking.in_periods(times, periods, cfg.time_before_s, cfg.time_after_s) > 0)
                if dated.any():
                    pool = np.union1d(pool, [h.pos for h in part.vector_top(q, dated, n)])
            if cfg.neighbor_expand and cfg.w_neighbors > 0 and len(pool):
                episodic = mask & (part.cols["kind"][: part.size] == _EPISODIC_CODE)
                pool = np.union1d(pool, ranking.position_neighbors(pool, episodic, times, cfg.neighbor_window_s,
                                                                   cfg.neighbor_span))
            registered = self._registered(query, qvec, scope, n, part, mask)
            for _, _, found_ in registered:  # what the knowledge graph found is scored like the rest
                pool = np.union1d(pool, np.asarray([f for f in found_ if isinstance(f, int)], np.int64))
            pool_vecs = part.vectors(pool)
            pool_cos = pool_vecs @ q if len(pool) else np.empty(0)
            pool_bm = np.zeros(len(pool))
            if len(pool) and len(docs):
                at = np.searchsorted(pool, docs)
                ok = (at < len(pool)) & (pool[np.minimum(at, len(pool) - 1)] == docs)
                pool_bm[at[ok]] = sc[ok]
            extra = (self._episode_context(part, pool, pool_vecs, mask, times, q, query_terms, docs, sc, n, t_lo,
                                           t_hi) if len(pool) else {})
            stm_list = list({c.record.id: c.record for c in (*stm_vec, *stm_txt)}.values())
            stm_extra = self._stm_context(stm_list, q, query_terms, part, mask, extra)
            cols = part.cols
            ltm = {name: cols[name][pool] for name in ("kind", "user", "session", "created_at", "last_accessed",
                                                         "stability", "importance")}
            pool_ids = part.ids_at(pool)
            # read under the lock (positions move when the partition is compacted); parsed in _rank, outside it
            pool_texts = [part.text[int(p)] for p in pool] if periods else []
        # The pool as arrays, long-term rows first, then short-term items: Python work stays per hit
        # returned, not per candidate (a pool with episode neighbours holds several hundred).
        lists, weights, found = self._lists(pool, pool_cos, pool_bm, extra, stm_extra, registered, vec, txt,
                                            stm_vec, stm_txt, stm_list, (v_lo, v_hi, t_lo, t_hi))
        if cfg.fusion == "rrf":
            fused = ranking.rrf_arrays(lists, found, weights, cfg.rrf_k)
        else:
            fused = ranking.fuse_arrays(lists, weights)
        hits = self._rank(part, generation, pool, pool_ids, ltm, stm_list, fused, found, periods, pool_texts, k,
                          now, scope)
        if hits is None:  # the partition was compacted or reloaded meanwhile: positions moved, score again
            return self._search(query, qvec, scope, kinds, lo, hi, k, now)
        return hits


    def _search_store(self, query: str, qvec: np.ndarray, scope: Scope, kinds: list[Kind] | None,
                      lo: float | None, hi: float | None, k: int, now: float) -> list[RecallHit]:
        """Recall from LanceDB's own indexes (vector and full-text queries), the fallback when the hot
        index is off (``hot_index=False``) or failed: hybrid fusion, temporal neighbours among the
        candidates and the same blend, without the episode-context and period features."""
        cfg = self.config
        n = max(cfg.candidates, k)
        where = build_filter(scope, kinds, lo, hi)
        vec = self.ltm.vector_search(qvec, where, n, light=True)
        txt = self.ltm.text_search(query, where, n, light=True)
        stm_vec, stm_txt = self._stm_candidates(query, qvec, scope, kinds, lo, hi, n)
        by_id: dict[str, Candidate] = {}
        for c in (*vec, *txt, *stm_vec, *stm_txt):
            by_id.setdefault(c.record.id, c)
        light = {c.record.id for c in (*vec, *txt)}
        text_scores = {**{c.record.id: c.score for c in stm_txt}, **ranking.minmax({c.record.id: c.score for c in txt})}
        lists = {"vector": {c.record.id: c.score for c in (*vec, *stm_vec)}, "text": text_scores}
        weights = {"vector": cfg.w_vector, "text": cfg.w_text}
        if cfg.fusion == "rrf":
            fused = ranking.rrf({name: sorted(sc, key=lambda i: -sc[i]) for name, sc in lists.items()}, weights,
                                cfg.rrf_k)
        else:
            fused = ranking.fuse_scores(lists, weights)
        episodic = {i: (by_id[i].record.scope.key, by_id[i].record.created_at,
                        by_id[i].record.learned_at / ITEM_STEP_S) for i in fused
                    if by_id[i].record.kind is Kind.EPISODIC}
        boosted = ranking.temporal_neighbors({i: fused[i] for i in episodic}, episodic, cfg.neighbor_window_s,
                                             cfg.w_neighbors, cfg.neighbor_span)
        w = ranking.Weights(cfg.w_relevance, cfg.w_recency, cfg.w_importance, cfg.w_strength)
        hits = []
        for id_, base in fused.items():
            rel = boosted.get(id_, base)
            rec = by_id[id_].record
            age = now - rec.last_accessed
            rcy = decay.recency(age, cfg.recency_half_life_days)
            strength = decay.retention(age, rec.stability)
            found_by = tuple(name for name, sc in lists.items() if id_ in sc) + (("neighbor",) if rel > base else ())
            hits.append(RecallHit(rec, ranking.blend(rel, rcy, rec.importance, strength, w), rel, rcy, strength,
                                  found_by))
        hits.sort(key=lambda h: -h.score)
        top = hits[:k]
        full = self.ltm.complete([by_id[h.id] for h in top if h.id in light], scope)
        return [h if h.id not in light else replace(h, record=full[h.id]) for h in top
                if h.id not in light or h.id in full]

    def _lists(self, pool: np.ndarray, pool_cos: np.ndarray, pool_bm: np.ndarray,
               extra: dict[str, tuple[np.ndarray, float, float]], stm_extra: dict[str, np.ndarray],
               registered: list[tuple[str, float, list[int | str]]],
               vec: Sequence[Any], txt: Sequence[Any], stm_vec: list[Candidate], stm_txt: list[Candidate],
               stm_list: list[MemoryRecord], bounds: tuple[float, float, float, float]
               ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        """Each retriever's scores over the pool (long-term rows, then short-term items), its weight,
        and which rows it found."""
        cfg = self.config
        v_lo, v_hi, t_lo, t_hi = bounds
        n_ltm, total = len(pool), len(pool) + len(stm_list)
        stm_index = {r.id: n_ltm + j for j, r in enumerate(stm_list)}
        lists: dict[str, np.ndarray] = {"vector": np.zeros(total), "text": np.zeros(total)}
        lists["vector"][:n_ltm] = _scaled_array(pool_cos, v_lo, v_hi)
        lists["text"][:n_ltm] = _scaled_array(pool_bm, t_lo, t_hi)
        if stm_vec:
            lists["vector"][[stm_index[c.record.id] for c in stm_vec]] = _scaled_array(
                np.array([c.score for c in stm_vec]), v_lo, v_hi)
        for c in stm_txt:  # term overlap is already in [0, 1]
            lists["text"][stm_index[c.record.id]] = c.score
        weights = {"vector": cfg.w_vector, "text": cfg.w_text}
        found: dict[str, np.ndarray] = {"vector": np.zeros(total, bool), "text": np.zeros(total, bool)}
        found["vector"][np.searchsorted(pool, [h.pos for h in vec])] = True
        found["text"][np.searchsorted(pool, [h.pos for h in txt])] = True
        found["vector"][[stm_index[c.record.id] for c in stm_vec]] = True
        found["text"][[stm_index[c.record.id] for c in stm_txt]] = True
        for name, (values, lo_, hi_) in extra.items():  # episode context lists, scaled like the retrievers'
            lists[name] = np.zeros(total)
            lists[name][:n_ltm] = _scaled_array(values, lo_, hi_)
            if name in stm_extra:  # short-term items are scored alike (no neighbours: the item alone)
                lists[name][n_ltm:] = _scaled_array(stm_extra[name], lo_, hi_)
            weights[name] = {"context": cfg.w_context, "coverage": cfg.w_coverage}.get(name, cfg.w_text_context)
            found[name] = np.zeros(total, bool)
        for name, weight, found_ in registered:  # rank-only lists: absent means not found
            rows = [int(np.searchsorted(pool, f)) if isinstance(f, int) else stm_index.get(f) for f in found_]
            kept = [row for row in rows if row is not None]
            ranked = np.full(total, np.nan)
            ranked[kept] = [(cfg.rrf_k + 1) / (cfg.rrf_k + rank + 1) for rank in range(len(kept))]
            lists[name], weights[name], found[name] = ranked, weight, ~np.isnan(ranked)
        return lists, weights, found

    def _rank(self, part: Any, generation: int, pool: np.ndarray, pool_ids: list[str], ltm: dict[str, np.ndarray],
              stm_list: list[MemoryRecord], fused: np.ndarray, found: dict[str, np.ndarray],
              periods: list[tuple[float, float]], pool_texts: list[str], k: int, now: float,
              scope: Scope) -> list[RecallHit] | None:
        """Relevance (fused, episode neighbours, a period the query names) blended with recency,
        importance and strength; the ``k`` best as hits (None: the partition's positions changed
        since the pool was scored). ``pool_texts``: the long-term pool's texts when ``periods``."""
        cfg = self.config
        n_ltm, total = len(pool), len(pool) + len(stm_list)
        kind = np.concatenate([ltm["kind"], [_KIND_CODE[r.kind] for r in stm_list]]).astype(np.int64)
        created = np.concatenate([ltm["created_at"], [r.created_at for r in stm_list]])
        last = np.concatenate([ltm["last_accessed"], [r.last_accessed for r in stm_list]])
        stability = np.concatenate([ltm["stability"], [r.stability for r in stm_list]])
        importance = np.concatenate([ltm["importance"], [r.importance for r in stm_list]])
        # temporal neighbours: same scope, ordered by (event time, batch order): a position for
        # long-term rows, the learned time in ITEM_STEP_S units for short-term items
        codes = dict(part.codes)  # user and session names as the partition's codes (new ones appended)
        width = len(part.names) + 2 * len(stm_list) + 1
        stm_group = [codes.setdefault(r.scope.user, len(codes)) * width + codes.setdefault(r.scope.session, len(codes))
                     for r in stm_list]
        group = np.concatenate([ltm["user"].astype(np.int64) * width + ltm["session"],
                                np.asarray(stm_group, np.int64)])
        seq = np.concatenate([pool.astype(np.float64), [r.learned_at / ITEM_STEP_S for r in stm_list]])
        boosted = fused.copy()
        episodic = np.flatnonzero(kind == _EPISODIC_CODE)
        if cfg.w_neighbors > 0 and cfg.neighbor_window_s > 0 and cfg.neighbor_span > 0 and len(episodic) > 1:
            order = episodic[np.lexsort((seq[episodic], created[episodic], group[episodic]))]
            best = ranking.neighbor_best(group[order], created[order], fused[order], cfg.neighbor_window_s,
                                         cfg.neighbor_span)
            boosted[order] = fused[order] + cfg.w_neighbors * best
        timed: np.ndarray = np.zeros(total)
        if periods:
            inside = ranking.in_periods(created, periods, cfg.time_before_s, cfg.time_after_s) > 0
            # what a memory says happened "last month" is in that month, whenever it was told
            referred = ranking.referred_times([*pool_texts, *(r.text for r in stm_list)], created)
            said = ~np.isnan(referred)
            if said.any():
                inside[said] |= ranking.in_periods(referred[said], periods, cfg.time_before_s, cfg.time_after_s) > 0
            timed = cfg.w_time * inside
        rel = boosted + timed
        age = now - last
        rcy = np.where(age <= 0, 1.0, 0.5 ** (np.maximum(age, 0.0) / (cfg.recency_half_life_days * decay.DAY)))
        strength = np.where(age <= 0, 1.0, np.exp(-np.maximum(age, 0.0) / (stability * decay.DAY)))
        score = (cfg.w_relevance * rel + cfg.w_recency * rcy + cfg.w_importance * importance
                 + cfg.w_strength * strength)
        hits: list[RecallHit] = []
        compressed: list[str] = []
        with part.lock:  # records are read where the pool was scored, and only memories still held
            if part.generation != generation:
                return None
            alive = part.cols["alive"]
            for j in np.argsort(-score, kind="stable").tolist():
                if len(hits) == k:
                    break
                if j < n_ltm:
                    p = int(pool[j])
                    if not alive[p]:  # forgotten or archived since the pool was scored
                        continue
                    rec = part.record(p)
                    if part.cols["compressed"][p]:
                        compressed.append(rec.id)
                else:
                    rec = stm_list[j - n_ltm]
                found_by = tuple(name for name, f in found.items() if f[j])
                if boosted[j] > fused[j]:
                    found_by += ("neighbor",)
                if timed[j] > 0:
                    found_by += ("time",)
                hits.append(RecallHit(rec, float(score[j]), float(rel[j]), float(rcy[j]), float(strength[j]),
                                      found_by))
        return self._complete(compressed, hits, scope)

    def _episode_context(self, part: Any, pool: np.ndarray, pool_vecs: np.ndarray, mask: np.ndarray,
                         times: np.ndarray, q: np.ndarray,
                         terms: list[str], docs: np.ndarray, sc: np.ndarray, n: int, t_lo: float,
                         t_hi: float) -> dict[str, tuple[np.ndarray, float, float]]:
        """Episode-context scores of the pool (see ``emergent.memory.ranking``), each with the bounds
        that scale it: ``context`` (the query against each memory's episode vector; its best over
        the pool 1, its n-th best 0), ``coverage`` (the idf-weighted share of the query's terms
        found in a memory or its ``neighbor_span`` neighbours either side) and ``text_context`` (the
        best BM25 score among those neighbours, scaled like the BM25 list)."""
        cfg = self.config
        out: dict[str, tuple[np.ndarray, float, float]] = {}
        dense = cfg.context_span if cfg.w_context > 0 else 0
        lexical = cfg.neighbor_span if (cfg.w_text_context > 0 or cfg.w_coverage > 0) and len(docs) else 0
        if max(dense, lexical) <= 0:
            return out
        episodic = mask & (part.cols["kind"][: part.size] == _EPISODIC_CODE)
        near, valid, dist = ranking.neighbor_grid(pool, episodic, times, cfg.neighbor_window_s, max(dense, lexical))
        if dense and not valid.any():  # no episodes among the pool (facts, procedures): the memory alone
            own = np.asarray(pool_vecs, np.float32)
            norms = np.linalg.norm(own, axis=1)
            norms[norms == 0] = 1.0
            c = (own @ np.asarray(q, np.float32)).astype(np.float64) / norms
            m = min(n, len(c))
            out["context"] = (c, float(np.partition(c, len(c) - m)[len(c) - m]), float(c.max()))
        elif dense:
            cols = np.flatnonzero(dist[0] <= dense)
            # each neighbour's vector read once (an ANN partition decodes them; neighbours overlap the pool)
            wanted = near[:, cols].ravel()
            fresh = np.setdiff1d(wanted, pool)
            known = np.concatenate([pool, fresh])
            table = np.concatenate([pool_vecs, part.vectors(fresh)]) if len(fresh) else pool_vecs
            order = np.argsort(known, kind="stable")
            rows = order[np.searchsorted(known[order], wanted)]
            vecs = table[rows].reshape(len(pool), len(cols), -1)
            c = ranking.context_cosine(pool_vecs, vecs, valid[:, cols], dist[:, cols], q, cfg.context_decay)
            m = min(n, len(c))
            out["context"] = (c, float(np.partition(c, len(c) - m)[len(c) - m]), float(c.max()))
        if not lexical:
            return out
        cols = np.flatnonzero(dist[0] <= lexical)
        if cfg.w_coverage > 0:
            postings = [part.bm25.docs(t) for t in dict.fromkeys(terms)]
            out["coverage"] = (ranking.window_coverage([d[mask[d]] for d in postings], pool, near[:, cols],
                                                       valid[:, cols], int(np.count_nonzero(mask)), part.size),
                               0.0, 1.0)
        if cfg.w_text_context > 0:
            bm_all = np.zeros(part.size)
            bm_all[docs] = sc
            out["text_context"] = (np.where(valid[:, cols], bm_all[near[:, cols]], 0.0).max(axis=1), t_lo, t_hi)
        return out

    def _stm_context(self, stm_list: list[MemoryRecord], q: np.ndarray, terms: list[str], part: Any,
                     mask: np.ndarray, extra: dict[str, tuple[np.ndarray, float, float]]) -> dict[str, np.ndarray]:
        """The episode-context lists for short-term items, which have no neighbours in the index: the
        query against the item's own vector (``context``) and the idf-weighted share of the query's
        terms in its text (``coverage``, with the scope's idf, as for long-term memories). Without
        them a short-term item would score 0 on lists every long-term memory scores on."""
        out: dict[str, np.ndarray] = {}
        if not stm_list:
            return out
        if "context" in extra:
            own = np.stack([np.asarray(r.vector, np.float32) for r in stm_list])
            norms = np.linalg.norm(own, axis=1)
            norms[norms == 0] = 1.0
            out["context"] = (own @ np.asarray(q, np.float32)).astype(np.float64) / norms
        if "coverage" in extra:
            n_docs = int(np.count_nonzero(mask))
            idf: dict[str, float] = {}
            for t in dict.fromkeys(terms):
                rows = part.bm25.docs(t)
                held = int(np.count_nonzero(mask[rows])) if len(rows) else 0
                if held:
                    idf[t] = float(np.log1p((n_docs - held + 0.5) / (held + 0.5)))
            total = sum(idf.values())
            view = self._stm_views.get(stm_list[0].scope.agent)
            held_terms = [view.tokens(r) if view is not None else frozenset(tokens(r.text)) for r in stm_list]
            out["coverage"] = np.array([sum(w for t, w in idf.items() if t in have) / total if total > 0 else 0.0
                                        for have in held_terms])
        return out

    def _registered(self, query: str, qvec: np.ndarray, scope: Scope, n: int, part: Any,
                    mask: np.ndarray) -> list[tuple[str, float, list[int | str]]]:
        """(name, weight, what it found, best first) of each registered retriever (the knowledge
        graph): a position for a long-term memory of the partition within ``mask`` (the scope and the
        filters), an id otherwise (a short-term item it knows; scored when it is a candidate)."""
        out = []
        for name, (fn, weight) in self.retrievers.items():
            wanted = list(fn(query, qvec, scope, n))[:n]
            found: list[int | str] = []
            for id_, p in zip(wanted, part.find_many(wanted).tolist(), strict=True):
                if p < 0:
                    found.append(id_)
                elif p < len(mask) and mask[p] and p not in found:
                    found.append(p)
            out.append((name, weight, found))
        return out

    def _complete(self, compressed: list[str], top: list[RecallHit], scope: Scope) -> list[RecallHit]:
        """Whole texts of compressed memories among the hits (the hot index holds their preview)."""
        out = list(top)
        if compressed:  # the hot index holds the preview; the whole text is in LanceDB
            whole = {r.id: r for r in self.ltm.get_many(compressed, scope)}
            out = [replace(h, record=h.record.with_(text=whole[h.id].text)) if h.id in whole else h for h in out
                   if h.id not in compressed or h.id in whole]
        return out

    def _stm_candidates(self, query: str, qvec: np.ndarray, scope: Scope, kinds: list[Kind] | None,
                        lo: float | None, hi: float | None, n: int) -> tuple[list[Candidate], list[Candidate]]:
        """STM items by cosine similarity, and by the share of query terms they contain (0-1)."""
        listed = self.stm.scan(scope.agent)
        if not listed:  # nothing left (another process may have erased it all): the view's texts go now
            self._drop_view(scope.agent)
            return [], []
        view = self._stm_view(scope.agent)
        with view.locked:
            slots = view.sync(listed)
            slots = slots[view.mask(slots, scope, kinds, lo, hi)]
            if not len(slots):
                return [], []
            sims = view.similarity(slots, qvec)
            order = np.argsort(-sims, kind="stable")[:n]
            vec = [Candidate(view.record(slots[i]), float(sims[i])) for i in order]
            terms = {t for t in _WORD.findall(query.lower()) if len(t) > 2 and t not in _STOP}
            if not terms:
                return vec, []
            share = view.overlap(slots, terms)
            best = [i for i in np.argsort(-share, kind="stable")[:n] if share[i] > 0]
            return vec, [Candidate(view.record(slots[i]), float(share[i])) for i in best]

    def _drop_view(self, agent: str) -> None:
        with self._views_lock:
            self._stm_views.pop(agent, None)

    def _stm_view(self, agent: str) -> STMView:
        with self._views_lock:
            view = self._stm_views.pop(agent, None) or STMView()
            self._stm_views[agent] = view
            while len(self._stm_views) > STM_VIEWS:  # the least recently recalled agent's goes
                self._stm_views.popitem(last=False)
            return view

    # ================================================================== reinforcement
    def _touch(self, hits: Sequence[RecallHit], now: float) -> None:
        """Record accesses; LTM rows are updated in batches by :meth:`flush` (one commit)."""
        for h in hits:
            rec = h.record
            if rec.tier is Tier.STM:
                try:
                    self._reinforce_stm(rec, now)
                except StoreUnavailableError as exc:  # bookkeeping of a read: never fails the read (a full disk)
                    log.warning("recall of short-term memory %s is answered, but its reinforcement was not "
                                "stored: %s", rec.id, exc)
            else:
                with self._lock:
                    _, n, _ = self._access.get(rec.id, (rec.scope, 0, now))
                    self._access[rec.id] = (rec.scope, n + 1, now)

    def _reinforce_stm(self, rec: MemoryRecord, now: float) -> MemoryRecord:
        r = decay.retention(now - rec.last_accessed, rec.stability)
        new = rec.with_(stability=decay.reinforce(rec.stability, r, self.config.stability_growth),
                        last_accessed=now, access_count=rec.access_count + 1)
        self.stm.put(new, self._ttl(new))
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
        try:
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
                        s = decay.reinforce(s, decay.retention(last - rec.last_accessed, s),
                                            self.config.stability_growth)
                    changed.append(rec.with_(stability=s, last_accessed=last, access_count=rec.access_count + count))
                self.ltm.upsert(changed, now=self.clock.now())
                updated, pending = len(changed), {}
            if ops and self.sql is not None:
                self._write_ops(ops)
                ops = []
        except BaseException:
            with self._lock:  # kept for the next flush (a full disk): accesses merged with those since
                for id_, (scope, count, last) in pending.items():
                    _, n, at = self._access.get(id_, (scope, 0, last))
                    self._access[id_] = (scope, n + count, max(at, last))
                self._unflushed = (ops + self._unflushed)[-10_000:]
            raise
        return updated

    # ================================================================== deletes
    @traced("memory.forget")
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
            stm_ids = [r.id for r in self.stm.scan(scope.agent)
                       if scope.contains(r.scope) and (ids is None or r.id in ids)
                       and (not kind_list or r.kind in kind_list)
                       and (lo is None or r.created_at >= lo) and (hi is None or r.created_at < hi)]
            gone = stm_ids + self.ltm.delete_where(where)
            n = self.stm.delete(scope.agent, stm_ids) + len(gone) - len(stm_ids)
            self._drop_view(scope.agent)  # a forgotten text leaves this process's memory now
            outcome.update(count=n, forgotten=gone[:AUDIT_IDS])
            self._notify("forget", gone)
            if include_archive:
                self.ltm.delete_archived(where)
            if target is not None and isinstance(target, str) and n == 0:
                raise NotFoundError(f"no memory {target!r} in scope {scope.key!r}", hint="check the id and the scope")
        self._log("forget", scope, n, t0)
        return n

    # ================================================================== erasure (emergent.security.retention)
    def locate(self, *, ids: Sequence[str] | None = None, scope: Scope | str | dict[str, Any] | None = None,
               user: str | None = None, kinds: Sequence[Kind | str] | None = None,
               learned_before: float | None = None) -> list[dict[str, Any]]:
        """Where memories are (no text): ``{id, agent, user, session, kind, learned_at, tier}`` for short-term
        items (live and evicted are not told apart: ``stm``), long-term rows (``ltm``) and archived
        ones (``archive``) matching every filter given: ``ids``, ``scope`` (its fields), ``user`` (in
        every agent), ``kinds``, learned before ``learned_before``. One of ids, scope, user and
        learned_before is required."""
        if ids is None and scope is None and user is None and learned_before is None:
            raise ValidationError("locate() needs ids, a scope, a user or learned_before",
                                  hint="never every memory by accident")
        sc = Scope.of(scope) if scope is not None else None
        if user is not None:
            Scope("x", user)  # validates the name
        kind_list = [check_kind(k) for k in kinds] if kinds else None
        wanted = set(ids) if ids is not None else None

        def keep(agent: str, user_id: str | None, session: str | None, kind: str, learned: float, id_: str) -> bool:
            return ((wanted is None or id_ in wanted) and (sc is None or sc.contains(_scope_of(agent, user_id, session)))
                    and (user is None or user_id == user) and (not kind_list or kind in kind_list)
                    and (learned_before is None or learned < learned_before))

        out: list[dict[str, Any]] = []
        agents = [sc.agent] if sc is not None else self.stm.agents()
        seen: set[str] = set()
        for agent in agents:
            for rec in [*self.stm.scan(agent), *_parked(self.stm, agent)]:
                if rec.id not in seen and keep(rec.scope.agent, rec.scope.user, rec.scope.session, rec.kind.value,
                                               rec.learned_at, rec.id):
                    seen.add(rec.id)
                    out.append({"id": rec.id, "agent": rec.scope.agent, "user": rec.scope.user,
                                "session": rec.scope.session, "kind": rec.kind.value, "learned_at": rec.learned_at,
                                "tier": "stm"})
        parts = [sc.where()] if sc is not None else []
        if user is not None:
            parts.append(f"user_id = '{user}'")
        if kind_list:
            parts.append("kind IN (" + ", ".join(f"'{k.value}'" for k in kind_list) + ")")
        if learned_before is not None:
            parts.append(f"learned_at < {float(learned_before)!r}")
        cols = ["id", "agent", "user_id", "session_id", "kind", "learned_at", "last_accessed"]
        chunks: list[list[str] | None] = [None] if ids is None else \
            [list(ids)[i : i + 1000] for i in range(0, len(ids), 1000)]
        for tier, table in (("ltm", self.ltm.table), ("archive", self.ltm.archive)):
            table.checkout_latest()  # an erasure elsewhere may have removed the files of the version held
            for chunk in chunks:
                where = " AND ".join(parts + ([f"id IN ({', '.join(_sq(i) for i in chunk)})"] if chunk else []))
                q = table.search()
                if where:
                    q = q.where(where)
                rows = q.select(cols).limit(max(table.count_rows(), 1)).to_arrow().to_pylist()
                for r in rows:
                    learned = r["last_accessed"] if r.get("learned_at") is None else r["learned_at"]
                    if keep(r["agent"], r["user_id"], r["session_id"], r["kind"], learned, r["id"]):
                        out.append({"id": r["id"], "agent": r["agent"], "user": r["user_id"],
                                    "session": r["session_id"], "kind": r["kind"], "learned_at": learned, "tier": tier})
        return out

    def erase(self, ids: Sequence[str] | None = None, *, principal: Any, user: str | None = None,
              scope: Scope | str | dict[str, Any] | None = None, keep_history: Any = None) -> dict[str, Any]:
        """Delete memories everywhere memory keeps them: by ``ids``, or every memory of ``user`` (in
        every agent) or of ``scope`` (exactly one selector). Short-term items (live, and evicted ones:
        those of the selector are dropped, the others judged for promotion now instead of at the next
        consolidation, so nothing erased comes back), long-term rows and archived ones, the data files
        and index entries that held them, and every older table version (``keep_history``, a timedelta,
        keeps younger versions: a retention purge; None keeps none, so no rewind reaches them: see
        :mod:`emergent.memory.erasure`); the hot index catches up in every process and its snapshots
        of those agents are deleted. Listeners hear ``forget``. Audited as ``memory.erase`` with the
        ids, never the text. Returns counts and ``ids`` (every id erased)."""
        from datetime import timedelta

        from emergent.memory import erasure
        from emergent.memory.consolidation import ConsolidationReport, promote

        who = verified(self.principals, principal)
        if sum(x is not None for x in (ids, user, scope)) != 1:
            raise ValidationError("erase() takes exactly one of ids, user and scope",
                                  hint="never every memory by accident: name the ids, the user or the scope")
        if ids is not None:
            ids = [ids] if isinstance(ids, str) else list(dict.fromkeys(ids))
            if not ids or any(not isinstance(i, str) or not i for i in ids):
                raise ValidationError("erase() needs a list of non-empty id strings", field="ids")
        sc = Scope.of(scope) if scope is not None else None
        found = self.locate(ids=ids, user=user, scope=sc)
        agents = sorted({f["agent"] for f in found} | ({sc.agent} if sc is not None else set()))
        if who.is_agent and (any(a != who.id for a in agents) or user is not None):
            raise ScopeError(f"{who.key} may erase only in its own memory scope ({who.id!r})",
                             hint="a human erases in other scopes", principal=who.key)
        wanted = set(ids or ())

        def selected(rec: MemoryRecord) -> bool:
            return rec.id in wanted or (user is not None and rec.scope.user == user) or \
                (sc is not None and sc.contains(rec.scope))

        keep = None if keep_history is None else timedelta(seconds=float(
            keep_history.total_seconds() if isinstance(keep_history, timedelta) else keep_history))
        # the selector's kind only: a user name is personal data (emergent.security.retention keeps its hash)
        intent = {"selector": "ids" if ids is not None else "user" if user is not None else "scope",
                  "agents": agents, "ids": [f["id"] for f in found][:AUDIT_IDS],
                  "count": len(found), "keep_history_s": None if keep is None else keep.total_seconds()}
        with recorded(self.audit, "memory.erase", who, intent) as outcome:
            self.flush()
            doomed = {f["id"] for f in found}
            unseen = user is not None or bool(wanted - doomed)  # maybe only in an evicted list: look everywhere
            stm, survivors = 0, {}
            # The evicted items to erase leave short-term memory at once; the others (survivors) when
            # the block ends, after the long-term rewrite and their promotion: a failure before then
            # (a full disk) leaves them where they were instead of losing them.
            with contextlib.ExitStack() as reading:
                for agent in sorted(set(agents) | (set(self.stm.agents()) if unseen else set())):
                    live = [r.id for r in self.stm.scan(agent) if r.id in doomed or selected(r)]
                    stm += self.stm.delete(agent, live)
                    self._drop_view(agent)
                    dropped: set[str] = set()

                    def erased(rec: MemoryRecord, dropped: set[str] = dropped, doomed: set[str] = doomed) -> bool:
                        if rec.id in doomed or selected(rec):
                            dropped.add(rec.id)
                            return True
                        return False

                    survivors[agent] = reading.enter_context(self.stm.promoting_evicted(agent, erased))
                    doomed |= dropped | set(live)
                all_ids = sorted(doomed)
                # an erasure runs even when nothing live matched: older versions and data files may hold it
                done = erasure.erase_ltm(self.ltm, all_ids, keep=keep) if all_ids or keep is None else {
                    "ltm": 0, "archive": 0, "rewritten_rows": 0, "indexes_rebuilt": [], "agents": []}
                for agent, kept in survivors.items():
                    if kept:  # judged now, as the next consolidation would (promoted or let go)
                        promote(self, agent, self.clock.now(), ConsolidationReport(), evicted=kept, live_items=False)
            scrubbed = erasure.scrub_stm(self.stm)
            forget = getattr(self.embedder, "clear", None)
            if callable(forget) and doomed:  # this process's cached embeddings may include the erased texts'
                forget()
            outcome.update(stm=stm, ltm=done["ltm"], archive=done["archive"], rewritten_rows=done["rewritten_rows"],
                           indexes_rebuilt=done["indexes_rebuilt"], stm_scrubbed=scrubbed,
                           erased=sorted(doomed)[:AUDIT_IDS])
            if doomed:
                self._notify("forget", sorted(doomed))
        return {**done, "stm": stm, "stm_scrubbed": scrubbed, "ids": sorted(doomed)}

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
            # An erasure in another process that began after this run read short-term memory would have
            # its text written back by the promotion. Checked after the write: either the erasure lists
            # the id by now (its ledger comes before its deletes) and it is erased again here, or the
            # erasure's own delete comes later and finds it in long-term memory.
            late = self.erased_among(report.promoted_ids) if report.promoted_ids and self.erased_among else set()
            if late:
                self.erase(sorted(late), principal=who)
                outcome.update(erased_after_promotion=len(late))
        return report

    def rewind(self, when: Any = None, *, version: int | None = None, principal: Any) -> dict[str, int]:
        """Point-in-time restore of long-term memory (LanceDB table versions): to how it was at
        ``when``, or to ``version`` of the memories table. A human's decision; audited."""
        from emergent.memory import pitr

        who = human(self.principals, principal, "rewind long-term memory")
        for guard in self.rewind_guards:
            guard()
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
            self.ltm.migrate()  # a version from before a schema migration comes back with the old schema
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
        if len(self._unflushed) >= self._ops_flush_at and self.sql is not None:
            with self._lock:
                ops, self._unflushed = self._unflushed, []
            try:
                self._write_ops(ops)
                self._ops_flush_at = 500
            except Exception as exc:  # noqa: BLE001 - the operation log never fails the operation it logs
                with self._lock:  # kept (bounded) for a later flush, tried again after 500 more operations
                    self._unflushed = (ops + self._unflushed)[-10_000:]
                    self._ops_flush_at = len(self._unflushed) + 500
                log.warning("memory %s is done, but the operation log could not be written (%s: %s); %d samples are "
                            "kept for the next flush", op, type(exc).__name__, exc, len(self._unflushed))

    def _write_ops(self, ops: list[OpSample]) -> None:
        from emergent.memory.tables import memory_ops

        rows = [{"at": o.at, "op": o.op, "scope": o.scope, "count": o.count, "latency_ms": o.latency_ms,
                 "hit": o.hit, "detail": None} for o in ops]
        with self.sql.begin() as conn:
            conn.execute(memory_ops.insert(), rows)

    def close(self) -> None:
        """Flush buffers; an in-process STM dies with the process, so promote what qualifies. The
        long-term store is closed even when that fails (a full disk), and the failure is raised."""
        try:
            if self.promote_on_close and self.stm.name == "local" and self.stm.agents():
                from emergent.memory.consolidation import consolidate

                report = consolidate(self, archive=False)
                if report.promoted or report.merged:  # short-term memory kept on close: the system acted
                    note(self.audit, "memory.promoted_on_close", "system:close",
                         {"promoted": report.promoted, "merged": report.merged}, durable=False)
            else:
                self.flush()
        finally:
            self.ltm.close()


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
def _scope_of(agent: str, user: str | None, session: str | None) -> Scope:
    return Scope(agent, user, session)


def _sq(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _parked(stm: Any, agent: str) -> list[MemoryRecord]:
    """Evicted short-term items, read without draining them (a backend offering ``peek_evicted``)."""
    peek = getattr(stm, "peek_evicted", None)
    return list(peek(agent)) if peek is not None else []


#: short-term views kept (one per agent recalled; each holds its items' vectors, ~3 MB at 2,000 x 384)
STM_VIEWS = 16
# Words too common to say anything about which short-term item answers a query.
_STOP = frozenset(["the", "and", "for", "are", "was", "were", "you", "your", "with", "that", "this", "what", "when", "where", "which", "who", "whom", "how", "why", "did", "does", "has", "have", "had", "not", "but", "all", "any", "can", "our", "out", "its", "his", "her", "him", "she", "they", "them", "their", "there", "then", "than", "from", "into", "about", "would", "could", "should", "will", "just", "also", "been", "being", "some"])


_EPISODIC_CODE = list(Kind).index(Kind.EPISODIC)  # the hot index's kind code
_KIND_CODE = {kind: code for code, kind in enumerate(Kind)}


def _top_hits(docs: np.ndarray, scores: np.ndarray, n: int) -> list[_Hit]:
    """The ``n`` best of a full BM25 scoring, best first (ties in row order, as ``BM25.top``)."""
    if docs.size > n:
        part = np.argpartition(-scores, n - 1)[:n]
        docs, scores = docs[part], scores[part]
    order = np.argsort(-scores, kind="stable")
    return [_Hit(int(d), float(v)) for d, v in zip(docs[order], scores[order], strict=True)]


def _scaled_array(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scores scaled so ``lo`` is 0 and ``hi`` is 1 (clipped to [0, 1]); all equal: 1 at ``hi``."""
    values = np.asarray(values, np.float64)
    if hi - lo <= 1e-12:
        return (values >= hi).astype(np.float64)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def dumps_hits(hits: Sequence[RecallHit]) -> str:
    return json.dumps([{**h.record.public(), "score": round(h.score, 4)} for h in hits], ensure_ascii=False)
