"""Hybrid ranking: fuse retrievers, add temporal-neighbour evidence, then a Generative-Agents
style weighted sum of relevance, recency, importance and strength.

Pure functions over ids and numbers so they are easy to test and to tune by experiment.

Fusion (``MemoryConfig.fusion``):

- ``"scores"`` (default): each retriever's scores are min-max normalised over its candidates and
  combined as a weighted mean (``w_vector``, ``w_text``, plus any registered retriever, whose
  ranks are turned into scores ``(k+1)/(k+rank+1)``). Unlike rank fusion it keeps *how much*
  better the best candidate is: on LoCoMo (dev) R@10 0.663 vs 0.591 for RRF over the same lists.
- ``"rrf"``: weighted reciprocal-rank fusion.

Episode neighbours: memories of one scope told within ``window_s`` of each other, at most ``span``
either side in time order (identical times: batch order), are parts of one episode; a memory
gains ``w_neighbors`` x the best fused score among its neighbours. The neighbours of candidates
join the pool even when no retriever found them (the hot index holds every row of the scope).
Questions often match one turn while the answer sits in the next.

Time named in the query ("on 8 May, 2023", "in June 2023"): memories whose event time is in that
period (a day before, two weeks after: things are told after they happen) gain ``w_time``, and the
period's best dense matches join the pool.

Episode context: a memory's episode vector (its vector plus its ``context_span`` neighbours'
either side, normalised) is matched with the query (``w_context``), and the best BM25 score among
its neighbours is a list of its own (``w_text_context``): a turn that answers a question often
shares little with it while the turns around it do. Both lists are scaled like the retrievers'.
The *coverage* of the query by a memory's episode window (``w_coverage``: the idf-weighted share of
the query's terms found in the memory or its ``neighbor_span`` neighbours either side) rewards the
exchange that holds all of what the question asks about, spread over its turns. With coverage on,
the neighbours' best BM25 score (``w_text_context``) added nothing on the tuning split: it is off.

Query expansion (RM3 over the scope's best BM25 matches) is available (``prf_docs``) and off: it
lowered R@10 on the LoCoMo tuning split. Figures per variant: ``docs/decisions.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np


def rrf(lists: Mapping[str, Sequence[str]], weights: Mapping[str, float], k: int = 60) -> dict[str, float]:
    """Weighted RRF, normalised so an item ranked first by every retriever scores 1.0."""
    total = sum(weights.get(name, 1.0) for name in lists) or 1.0
    scores: dict[str, float] = {}
    for name, ids in lists.items():
        w = weights.get(name, 1.0)
        if w == 0:
            continue
        for rank, id_ in enumerate(ids):
            scores[id_] = scores.get(id_, 0.0) + w * (k + 1) / (k + rank + 1)
    return {i: s / total for i, s in scores.items()}


def rank_scores(ids: Sequence[str], k: int = 60) -> dict[str, float]:
    """Scores for a retriever that only ranks: ``(k+1)/(k+rank+1)``, 1.0 for the first."""
    out: dict[str, float] = {}
    for rank, id_ in enumerate(ids):
        out.setdefault(id_, (k + 1) / (k + rank + 1))
    return out


def minmax(scores: Mapping[str, float]) -> dict[str, float]:
    """Scale to [0, 1] over the candidates; a single candidate (or all equal) scores 1.0."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {i: (s - lo) / (hi - lo) for i, s in scores.items()}


def fuse_scores(lists: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]) -> dict[str, float]:
    """Weighted mean of min-max normalised scores (a missing candidate counts 0 for that list)."""
    total = sum(weights.get(name, 1.0) for name in lists) or 1.0
    fused: dict[str, float] = {}
    for name, scores in lists.items():
        w = weights.get(name, 1.0)
        if w == 0:
            continue
        for id_, s in minmax(scores).items():
            fused[id_] = fused.get(id_, 0.0) + w * s
    return {i: s / total for i, s in fused.items()}


def fuse_arrays(lists: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """:func:`fuse_scores` over aligned arrays (one row per candidate; NaN: not in that list)."""
    total = sum(weights.get(name, 1.0) for name in lists) or 1.0
    size = len(next(iter(lists.values()))) if lists else 0
    fused = np.zeros(size)
    for name, values in lists.items():
        w = weights.get(name, 1.0)
        present = ~np.isnan(values)
        if w == 0 or not present.any():
            continue
        lo, hi = float(values[present].min()), float(values[present].max())
        scaled = np.ones(size) if hi - lo <= 1e-12 else (values - lo) / (hi - lo)
        fused += w * np.where(present, scaled, 0.0)
    return fused / total


def rrf_arrays(lists: Mapping[str, np.ndarray], found: Mapping[str, np.ndarray], weights: Mapping[str, float],
               k: int = 60) -> np.ndarray:
    """:func:`rrf` over aligned arrays: each list ranks the rows it found by its values."""
    total = sum(weights.get(name, 1.0) for name in lists) or 1.0
    size = len(next(iter(lists.values()))) if lists else 0
    fused = np.zeros(size)
    for name, values in lists.items():
        w = weights.get(name, 1.0)
        rows = np.flatnonzero(found[name])
        if w == 0 or not len(rows):
            continue
        order = rows[np.argsort(-values[rows], kind="stable")]
        fused[order] += w * (k + 1) / (k + np.arange(len(order)) + 1)
    return fused / total


def temporal_neighbors(scores: Mapping[str, float], when: Mapping[str, tuple[str, float, float]], window_s: float,
                       weight: float, span: int = 5) -> dict[str, float]:
    """Add ``weight`` x the best score among a candidate's episode neighbours.

    ``when[id] = (group, time, seq)``; the group is the scope, so episodes never mix across scopes.
    Within a group, items are ordered by (time, seq); the neighbours of an item are the ``span``
    items either side of it in that order whose time is within ``window_s`` of its own. ``seq``
    orders items with the same time (the order of an ingest batch: a learned time or a position),
    so a batch stamped with one date is a sequence of episodes, never one episode where every item
    neighbours every other; and items a microsecond apart are still only ``span`` neighbours each.
    Each candidate's own score is read from ``scores`` (not the boosted value): no chains.
    """
    if weight <= 0 or window_s <= 0 or span <= 0 or len(scores) < 2:
        return dict(scores)
    ids = list(scores)
    group_of: dict[str, int] = {}
    g = np.fromiter((group_of.setdefault(when[i][0], len(group_of)) for i in ids), np.int64, len(ids))
    t = np.fromiter((when[i][1] for i in ids), np.float64, len(ids))
    q = np.fromiter((when[i][2] for i in ids), np.float64, len(ids))
    s = np.fromiter((scores[i] for i in ids), np.float64, len(ids))
    order = np.lexsort((q, t, g))
    g, t, s = g[order], t[order], s[order]
    best = neighbor_best(g, t, s, window_s, span)
    out = dict(scores)
    for j, i in enumerate(order):
        out[ids[i]] = float(s[j] + weight * best[j])
    return out


def neighbor_best(group: np.ndarray, times: np.ndarray, scores: np.ndarray, window_s: float,
                  span: int) -> np.ndarray:
    """For items sorted by (group, time, seq): the best score among the ``span`` items either side
    (same group, time within ``window_s``), 0 when there is none."""
    n = len(scores)
    best = np.zeros(n)
    for d in range(1, min(span, n - 1) + 1):
        near = (group[d:] == group[:-d]) & (np.abs(times[d:] - times[:-d]) <= window_s)
        np.maximum(best[d:], np.where(near, scores[:-d], 0.0), out=best[d:])
        np.maximum(best[:-d], np.where(near, scores[d:], 0.0), out=best[:-d])
    return best


def position_neighbors(positions: np.ndarray, mask: np.ndarray, times: np.ndarray, window_s: float,
                       span: int) -> np.ndarray:
    """Rows next to ``positions`` in an append-ordered store (up to ``span`` each side, in ``mask``,
    time within ``window_s``): the episode context of candidates, not only among candidates.
    Returns the new positions (sorted, without ``positions`` themselves)."""
    if span <= 0 or window_s <= 0 or not len(positions):
        return np.empty(0, np.int64)
    size = len(mask)
    positions = np.asarray(positions, np.int64)
    offsets = np.concatenate([np.arange(-span, 0), np.arange(1, span + 1)])
    near = (positions[:, None] + offsets[None, :]).ravel()
    base = np.repeat(positions, len(offsets))
    ok = (near >= 0) & (near < size)
    near, base = near[ok], base[ok]
    ok = mask[near] & (np.abs(times[near] - times[base]) <= window_s)
    return np.setdiff1d(near[ok], positions)


def neighbor_grid(positions: np.ndarray, mask: np.ndarray, times: np.ndarray, window_s: float,
                  span: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows up to ``span`` either side of each of ``positions`` in an append-ordered store, as
    ``(near, valid, dist)`` arrays of shape ``(len(positions), 2 * span)``: ``near`` the row (clipped
    into range), ``valid`` whether it is a neighbour (in ``mask``, time within ``window_s``),
    ``dist`` how many rows away it is."""
    positions = np.asarray(positions, np.int64)
    offsets = np.concatenate([np.arange(-span, 0), np.arange(1, span + 1)]).astype(np.int64)
    raw = positions[:, None] + offsets[None, :]
    near = np.clip(raw, 0, max(len(mask) - 1, 0))
    valid = (raw >= 0) & (raw < len(mask))
    if len(mask) and window_s > 0:
        valid &= mask[near] & (np.abs(times[near] - times[positions][:, None]) <= window_s)
    else:
        valid &= False
    dist = np.broadcast_to(np.abs(offsets), raw.shape)
    return near, valid, dist


def context_cosine(own: np.ndarray, near_vecs: np.ndarray, valid: np.ndarray, dist: np.ndarray,
                   q: np.ndarray, decay: float = 1.0) -> np.ndarray:
    """Cosine of ``q`` with each memory's episode vector: the normalised sum of its own (unit)
    vector (``own``, shape ``(P, d)``) and its neighbours' (``near_vecs``, ``(P, 2 span, d)``, where
    ``valid``), a neighbour ``dist`` rows away weighted ``decay ** dist``. A turn that only makes
    sense with the turns around it is matched on what its episode is about."""
    w = np.where(valid, np.power(decay, dist, dtype=np.float32), 0.0).astype(np.float32)
    ctx = own.astype(np.float32) + np.einsum("pk,pkd->pd", w, near_vecs.astype(np.float32, copy=False))
    norms = np.linalg.norm(ctx, axis=1)
    norms[norms == 0] = 1.0
    return (ctx @ np.asarray(q, np.float32)).astype(np.float64) / norms


def window_coverage(postings: Sequence[np.ndarray], positions: np.ndarray, near: np.ndarray, valid: np.ndarray,
                    n_docs: int, size: int) -> np.ndarray:
    """The idf-weighted share of the query's terms found in each memory's episode window: the
    memory itself or one of its neighbours (``near``/``valid`` as from :func:`neighbor_grid`).
    ``postings[i]`` are the rows (within the scope) holding the query's i-th distinct term, out of
    ``n_docs`` rows in the scope and ``size`` rows in all. A question whose words are spread over
    the turns of one exchange is covered by that exchange, not by any one turn."""
    got = np.zeros(len(positions))
    total = 0.0
    for rows in postings:
        if not len(rows):
            continue
        idf = float(np.log1p((n_docs - len(rows) + 0.5) / (len(rows) + 0.5)))
        has = np.zeros(size, bool)
        has[rows] = True
        got += idf * (has[positions] | (valid & has[near]).any(axis=1))
        total += idf
    return got / total if total > 0 else got


# ------------------------------------------------------------------------------ time in the query
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MON = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|" \
       r"jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,\s*|\s+)(\d{4})\b"  # "May 8, 2023", "May 8,2023", "May 2023"
# A month or day named without a year is read in the years the caller gives (the scope's); the
# month alone only after a word that makes it a time ("in May", "since march"), never the verb "may".
_WHEN = r"\b(?:in|during|since|until|till|before|after|by|from|of|early|late|mid|mid-|last|this|next|throughout)\s+"
_SEASONS = {"spring": (3, 3), "summer": (6, 3), "autumn": (9, 3), "fall": (9, 3), "winter": (12, 3)}
_DATE_PATTERNS: list[tuple[re.Pattern[str], tuple[int | None, int | None, int | None]]] = [
    # (regex, groups as (day, month, year)); the most precise first: a span is read once
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), (3, 2, 1)),
    (re.compile(r"\b" + _DAY + r"\s*(?:of\s+)?" + _MON + _YEAR), (1, 2, 3)),
    (re.compile(r"\b" + _MON + r"\s+" + _DAY + _YEAR), (2, 1, 3)),
    (re.compile(r"\b" + _MON + _YEAR), (None, 1, 2)),
    (re.compile(r"\b(?:in|of|during|since|until|before|after|year)\s+((?:19|20)\d{2})\b"), (None, None, 1)),
    (re.compile(r"\b" + _DAY + r"\s*(?:of\s+)?" + _MON + r"(?![a-z])"), (1, 2, None)),
    (re.compile(r"\b" + _MON + r"\s+" + _DAY + r"\b"), (2, 1, None)),
    (re.compile(_WHEN + r"(?:the\s+)?(?:(?:early|late|mid)[\s-]+)?" + _MON + r"(?![a-z])"), (None, 1, None)),
]
_SEASON = re.compile(r"\b(spring|summer|autumn|fall|winter)\s+(?:of\s+)?((?:19|20)\d{2})\b")
_YEARS_AT_MOST = 200  # a yearless date is read in at most this many years
#: a query naming more periods than this is read for its first ones (bounded work per recall)
PERIODS_AT_MOST = 512


def _period(year: int, month: int | None, day: int | None) -> tuple[float, float]:
    if month is None:
        lo, hi = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    elif day is None:
        lo = datetime(year, month, 1, tzinfo=UTC)
        hi = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    else:
        lo = datetime(year, month, day, tzinfo=UTC)
        hi = lo + timedelta(days=1)
    return lo.timestamp(), hi.timestamp()


def query_periods(text: str, years: range | Callable[[], range] | None = None) -> list[tuple[float, float]]:
    """The calendar periods a query names, as UTC epoch ranges ``[lo, hi)``: a day ("8 May, 2023",
    "May 8, 2023", "2023-05-08"), a month ("May 2023"), a season ("summer 2021": meteorological,
    northern), a year ("in 2023"). A day or month named without a year ("on Aug 15th", "in May") is
    that day or month in each of ``years`` (the years the memories searched span, or what returns
    them when such a date is named; none given: not read); "may" before a number is read as a month
    only when written "May". "before / until <date>" is the time up to it, "after" the time after it,
    "since" from it on. Each span of the text is read once, by the most precise pattern; at most
    ``PERIODS_AT_MOST`` periods. Naive dates are UTC, as everywhere in memory."""
    low = text.lower()
    # positions in ``low`` are positions in ``text`` only when lowering kept the length ("İ" -> "i̇" does not)
    cased = text if len(low) == len(text) else None
    taken: list[tuple[int, int]] = []
    out: list[tuple[float, float]] = []
    for m in _SEASON.finditer(low):
        first, months = _SEASONS[m.group(1)]
        year = int(m.group(2))
        lo = datetime(year, first, 1, tzinfo=UTC)
        end = first + months
        hi = datetime(year + (end - 1) // 12, (end - 1) % 12 + 1, 1, tzinfo=UTC)
        taken.append((m.start(), m.end()))
        out.append((lo.timestamp(), hi.timestamp()))
    for regex, (di, mi, yi) in _DATE_PATTERNS:
        if yi is None and years is None:
            continue
        for m in regex.finditer(low):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            if (yi is None and di is not None and mi is not None and m.group(mi) == "may"
                    and (cased is None or cased[m.start(mi)] != "M")):
                continue  # "they may 3D-print it": the verb
            try:
                month = (int(m.group(mi)) if m.group(mi).isdigit() else _MONTHS[m.group(mi)]) if mi else None
                day = int(m.group(di)) if di else None
                if yi is not None:
                    found = [_period(int(m.group(yi)), month, day)]
                else:
                    if callable(years):
                        years = years()
                    assert years is not None
                    found = [_period(y, month, day) for y in list(years)[-_YEARS_AT_MOST:]
                             if day is None or _valid_day(y, month or 1, day)]
                    if not found:
                        raise ValueError("no such day in any of the years")
            except (ValueError, KeyError):
                continue
            taken.append((m.start(), m.end()))
            out.extend(_relative_to(low, m.start(), found))
            if len(out) >= PERIODS_AT_MOST:
                return out[:PERIODS_AT_MOST]
    return out


_BEFORE = re.compile(r"\b(before|until|till|by|prior to|up to)\s+(?:the\s+)?$")
_AFTER = re.compile(r"\b(after|following)\s+(?:the\s+)?$")
_SINCE = re.compile(r"\bsince\s+(?:the\s+)?$")
_AROUND_AT_LEAST_S = 14 * 86400.0


def _relative_to(low: str, start: int, found: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """"before 10 April" is the time up to that day, "after May 2023" the time after that month: a
    span as long as the period named, and at least two weeks."""
    head = low[max(0, start - 16):start]
    if _BEFORE.search(head):
        return [(lo - max(hi - lo, _AROUND_AT_LEAST_S), lo) for lo, hi in found]
    if _AFTER.search(head):
        return [(hi, hi + max(hi - lo, _AROUND_AT_LEAST_S)) for lo, hi in found]
    if _SINCE.search(head):
        return [(lo, hi + max(hi - lo, _AROUND_AT_LEAST_S)) for lo, hi in found]
    return found


def _valid_day(year: int, month: int, day: int) -> bool:
    try:
        datetime(year, month, day)
    except ValueError:
        return False
    return True


_LAST_SECOND = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def years_spanned(times: np.ndarray, now: float) -> range:
    """The calendar years (UTC) from the earliest of ``times`` to the latest of them and ``now``:
    where a date named without a year is looked for (1970-9999: times outside are read as the bound)."""
    lo = float(np.nanmin(times)) if len(times) else now
    hi = float(np.nanmax(times)) if len(times) else now
    first, last = (datetime.fromtimestamp(min(max(t, 0.0), _LAST_SECOND), UTC).year
                   for t in (min(lo, now), max(hi, now)))
    return range(first, last + 1)


# A time a memory's own words point to, relative to when it was told: "yesterday", "last week",
# "last month", "two weeks ago", "last Friday". Written by hand: dateparser and its kin parse a
# string that *is* a date, not a date mentioned inside a sentence, and a recall reads only a few
# hundred candidates when the query names a period.
_NUMBER = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "few": 3, "couple of": 2}
_WEEKDAYS = {d: i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                         "sunday"))}
_RELATIVE = re.compile(
    r"\b(?:(?P<day>yesterday|last night)"
    r"|(?:last|past|previous) (?P<unit>week(?:end)?|month|year|" + "|".join(_WEEKDAYS) + r")"
    r"|(?P<n>\d{1,2}|" + "|".join(sorted(_NUMBER, key=len, reverse=True)) + r") (?P<units>day|week|month|year)s? ago)\b",
    re.IGNORECASE)
_UNIT_S = {"day": 86400.0, "week": 7 * 86400.0, "month": 30.44 * 86400.0, "year": 365.25 * 86400.0}


def referred_time(text: str, told: float) -> float:
    """The time ``text`` says something happened, relative to ``told`` (when it was said), or NaN
    when it names none: "yesterday" the day before, "last week" seven days before, "last month" the
    middle of the calendar month before, "last year" the middle of the year before, "last Friday" the
    Friday before, "three weeks ago" 21 days before. The first such phrase counts."""
    m = _RELATIVE.search(text)
    if m is None or not np.isfinite(told):
        return float("nan")
    if m.group("day"):
        return told - 86400.0
    unit = (m.group("unit") or "").lower()
    if not unit:
        n = m.group("n").lower()
        return told - (int(n) if n.isdigit() else _NUMBER[n]) * _UNIT_S[m.group("units").lower()]
    at = datetime.fromtimestamp(min(max(told, 0.0), _LAST_SECOND), UTC)
    if unit == "month":
        first = datetime(at.year - (at.month == 1), (at.month - 2) % 12 + 1, 1, tzinfo=UTC)
        return (first + timedelta(days=14)).timestamp()
    if unit == "year":
        return datetime(at.year - 1, 7, 1, tzinfo=UTC).timestamp()
    if unit == "week":
        return told - _UNIT_S["week"]
    target = 5 if unit == "weekend" else _WEEKDAYS[unit]
    return told - (((at.weekday() - target) % 7) or 7) * 86400.0


def referred_times(texts: Sequence[str], told: Sequence[float] | np.ndarray) -> np.ndarray:
    """:func:`referred_time` of each text (NaN where it names none)."""
    return np.fromiter((referred_time(t, float(w)) for t, w in zip(texts, told, strict=True)), np.float64,
                       len(texts))


def in_periods(times: np.ndarray, periods: Sequence[tuple[float, float]], before_s: float,
               after_s: float) -> np.ndarray:
    """1.0 for times within any period widened by ``before_s`` / ``after_s``, else 0.0 (what is said
    in a conversation is often said a little after it happened: ``after_s`` is the larger). The
    widened periods are merged first, then each time is placed by one binary search (a query naming
    many dates costs no pass over the scope per date)."""
    times = np.asarray(times, np.float64)
    if not len(periods) or not len(times):
        return np.zeros(len(times))
    spans = sorted((lo - before_s, hi + after_s) for lo, hi in list(periods)[:PERIODS_AT_MOST])
    merged: list[list[float]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    starts = np.fromiter((m[0] for m in merged), np.float64, len(merged))
    ends = np.fromiter((m[1] for m in merged), np.float64, len(merged))
    at = np.searchsorted(starts, times, side="right") - 1  # the last interval starting at or before
    ok = at >= 0
    hit = np.zeros(len(times), bool)
    hit[ok] = times[ok] < ends[at[ok]]
    return hit.astype(np.float64)


@dataclass(frozen=True, slots=True)
class Weights:
    relevance: float = 1.0
    recency: float = 0.1
    importance: float = 0.1
    strength: float = 0.05


def blend(relevance: float, recency: float, importance: float, strength: float, w: Weights) -> float:
    return w.relevance * relevance + w.recency * recency + w.importance * importance + w.strength * strength


# ------------------------------------------------------------------------------ query expansion
def rm3(query: Sequence[str], feedback: Sequence[Sequence[str]], doc_scores: Sequence[float], terms: int = 10,
        original: float = 0.6) -> dict[str, float]:
    """RM3 pseudo-relevance feedback: the query's terms (weight ``original``, shared equally) plus the
    ``terms`` most likely terms of the relevance model estimated from the feedback documents (the
    top documents of a first search, as term lists, each weighted by its score; ``1 - original``
    shared by likelihood). The expansion comes from the memories' own vocabulary: the words a
    scope uses for what the query asks about."""
    q = list(dict.fromkeys(query))
    if not q:
        return {}
    out = dict.fromkeys(q, original / len(q))
    total = float(sum(max(s, 0.0) for s in doc_scores))
    if not feedback or total <= 0 or terms <= 0 or original >= 1.0:
        return dict.fromkeys(q, 1.0)
    model: dict[str, float] = {}
    for doc, score in zip(feedback, doc_scores, strict=True):
        if not doc or score <= 0:
            continue
        share = score / total / len(doc)
        for t in doc:
            model[t] = model.get(t, 0.0) + share
    best = sorted(model.items(), key=lambda x: -x[1])[:terms]
    mass = sum(w for _, w in best) or 1.0
    for t, w in best:
        out[t] = out.get(t, 0.0) + (1.0 - original) * w / mass
    return out
