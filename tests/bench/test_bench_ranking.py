"""Fusion, episode neighbours, time named in the query and query expansion (the retrieval levers
tuned on the LoCoMo tuning split)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from emergent.memory import ranking


def test_minmax_scales_to_unit_range_and_a_lone_candidate_scores_one() -> None:
    assert ranking.minmax({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert ranking.minmax({"a": 7.5}) == {"a": 1.0}
    assert ranking.minmax({}) == {}


def test_score_fusion_keeps_margins_that_rank_fusion_throws_away() -> None:
    # the vector list barely separates x and y; the text list strongly prefers y
    lists = {"vector": {"x": 0.81, "y": 0.80, "z": 0.30}, "text": {"y": 12.0, "x": 1.0}}
    fused = ranking.fuse_scores(lists, {"vector": 1.0, "text": 1.0})
    assert max(fused, key=fused.__getitem__) == "y"
    assert math.isclose(fused["y"], (0.98 + 1.0) / 2, abs_tol=0.01)
    assert fused["z"] == 0.0  # worst on the only list that found it
    rrf = ranking.rrf({"vector": ["x", "y", "z"], "text": ["y", "x"]}, {}, 60)
    assert math.isclose(rrf["x"], rrf["y"])  # ranks alone cannot tell them apart


def test_a_zero_weight_list_is_ignored() -> None:
    fused = ranking.fuse_scores({"vector": {"a": 1.0, "b": 0.0}, "graph": {"b": 1.0}}, {"vector": 1.0, "graph": 0.0})
    assert fused == {"a": 1.0, "b": 0.0}


def test_rank_scores_turn_a_ranking_into_scores() -> None:
    s = ranking.rank_scores(["a", "b", "a"], k=1)
    assert s == {"a": 1.0, "b": 2 / 3}


def test_neighbours_in_time_reinforce_each_other_within_one_scope_only() -> None:
    scores = {"q": 0.9, "answer": 0.2, "far": 0.2, "other_scope": 0.2}
    when = {"q": ("s1", 1000.0, 0), "answer": ("s1", 1060.0, 1), "far": ("s1", 9000.0, 2),
            "other_scope": ("s2", 1030.0, 0)}
    out = ranking.temporal_neighbors(scores, when, window_s=300, weight=0.5)
    assert math.isclose(out["answer"], 0.2 + 0.5 * 0.9)
    assert out["far"] == 0.2 and out["other_scope"] == 0.2
    assert math.isclose(out["q"], 0.9 + 0.5 * 0.2)  # boosted from the original, not the boosted score
    assert ranking.temporal_neighbors(scores, when, window_s=300, weight=0.0) == scores


def test_recall_completes_light_hits_and_pulls_in_the_next_turn(tmp_path) -> None:
    from emergent.workstation import Workstation

    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        t0 = 1_700_000_000.0
        turns = ["Ann: which city did you move to last spring?", "Bo: Lisbon, near the river.",
                 "Ann: the garden needs water", "Bo: my cat sleeps all day"]
        mem.ingest([{"text": t, "at": t0 + 60 * i + (0 if i < 2 else 86400), "meta": {"turn": i}}
                    for i, t in enumerate(turns)], kind="episodic", scope="a/u")
        hits = mem.recall("which city did Ann move to last spring", k=2, scope="a/u", touch=False)
    assert [h.text for h in hits] == turns[:2]  # the answer comes with its question
    assert hits[1].record.meta == {"turn": 1} and "neighbor" in hits[1].sources


def test_a_batch_stamped_with_one_time_is_a_sequence_not_one_episode() -> None:
    """Identical event times (a whole session stamped with its date): neighbours by batch order,
    ``span`` each side, never every item of the batch."""
    ids = [f"t{i}" for i in range(10)]
    scores = dict.fromkeys(ids, 0.0) | {"t5": 1.0}
    when = {i: ("s", 5000.0, n) for n, i in enumerate(ids)}
    out = ranking.temporal_neighbors(scores, when, window_s=300, weight=0.5, span=2)
    assert [i for i in ids if out[i] > 0 and i != "t5"] == ["t3", "t4", "t6", "t7"]


def test_items_a_microsecond_apart_have_only_span_neighbours() -> None:
    ids = [f"t{i}" for i in range(10)]
    scores = dict.fromkeys(ids, 0.0) | {"t0": 1.0}
    when = {i: ("s", 1000.0 + n * 1e-6, 0) for n, i in enumerate(ids)}
    out = ranking.temporal_neighbors(scores, when, window_s=300, weight=0.5, span=3)
    assert [i for i in ids if out[i] > 0 and i != "t0"] == ["t1", "t2", "t3"]


def test_position_neighbours_respect_the_scope_mask_the_time_window_and_the_span() -> None:
    times = np.array([0, 60, 120, 180, 240, 9000, 9060, 9120], dtype=np.float64)
    mask = np.array([True, True, False, True, True, True, True, True])
    got = ranking.position_neighbors(np.array([3]), mask, times, window_s=300, span=2)
    assert got.tolist() == [1, 4]  # 2 is outside the scope, 5 is hours later
    got = ranking.position_neighbors(np.array([3, 4]), mask, times, window_s=300, span=1)
    assert got.tolist() == []  # candidates are not their own neighbours; 2 masked, 5 too far
    assert ranking.position_neighbors(np.array([6]), mask, times, window_s=300, span=0).size == 0


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()


def test_periods_named_in_a_query_are_read_as_days_months_and_years() -> None:
    def periods(q: str) -> list[tuple[str, str]]:
        return [(_day(a), _day(b)) for a, b in ranking.query_periods(q)]

    assert periods("What did Ann do on 25 May, 2022?") == [("2022-05-25", "2022-05-26")]
    assert periods("what happened on May 23, 2023") == [("2023-05-23", "2023-05-24")]
    assert periods("notes from 2024-02-29") == [("2024-02-29", "2024-03-01")]
    assert periods("Which city in January 2024?") == [("2024-01-01", "2024-02-01")]
    assert periods("every release in 2023") == [("2023-01-01", "2024-01-01")]
    assert periods("in December 2023 and on 3 June, 2022") == [("2022-06-03", "2022-06-04"),
                                                                  ("2023-12-01", "2024-01-01")]
    assert periods("she may come, error 2023 was fixed") == []
    assert periods("on 31 February, 2023") == [("2023-02-01", "2023-03-01")]  # no such day: its month


def test_a_date_named_without_a_year_is_read_in_each_year_the_memories_span() -> None:
    years = range(2022, 2024)

    def periods(q: str) -> list[tuple[str, str]]:
        return [(_day(a), _day(b)) for a, b in ranking.query_periods(q, years)]

    assert periods("Which outdoor spot did Joanna visit in May?") == [("2022-05-01", "2022-06-01"),
                                                                     ("2023-05-01", "2023-06-01")]
    assert periods("what did they give him when they met on Aug 15th?") == [("2022-08-15", "2022-08-16"),
                                                                           ("2023-08-15", "2023-08-16")]
    assert periods("the 3rd of march") == [("2022-03-03", "2022-03-04"), ("2023-03-03", "2023-03-04")]
    assert periods("on 29 February") == []  # no 29 February in 2022-2023
    assert ranking.query_periods("on 29 February", range(2023, 2025))[0] == ranking.query_periods(
        "on 29 February, 2024")[0]
    # a year named wins over the yearless reading of the same words; without years none is read
    assert periods("in May 2021") == [("2021-05-01", "2021-06-01")]
    assert ranking.query_periods("Which outdoor spot did Joanna visit in May?") == []
    # the verb is not a month
    assert periods("she may come, they may 3 times, it may be") == []
    assert periods("Did it happen on May 3?") == [("2022-05-03", "2022-05-04"), ("2023-05-03", "2023-05-04")]
    # the years are asked for only when such a date is named
    asked: list[int] = []

    def lazily() -> range:
        asked.append(1)
        return years

    assert ranking.query_periods("what happened on 8 May, 2023?", lazily) and not asked
    assert ranking.query_periods("what happened in June?", lazily) and asked == [1]


def test_seasons_and_loose_spelling_of_dates_are_read() -> None:
    def periods(q: str) -> list[tuple[str, str]]:
        return [(_day(a), _day(b)) for a, b in ranking.query_periods(q)]

    assert periods("What state did she visit in summer 2021?") == [("2021-06-01", "2021-09-01")]
    assert periods("in the winter of 2022") == [("2022-12-01", "2023-03-01")]
    assert periods("shared on December 1,2023") == [("2023-12-01", "2023-12-02")]
    assert periods("finished on 23January, 2022") == [("2022-01-23", "2022-01-24")]


def test_before_after_and_since_a_date_are_the_time_around_it_not_the_date() -> None:
    def periods(q: str) -> list[tuple[str, str]]:
        return [(_day(a), _day(b)) for a, b in ranking.query_periods(q)]

    # at least two weeks, or as long as the period named
    assert periods("What did she do last weekend before April 10, 2023?") == [("2023-03-27", "2023-04-10")]
    assert periods("what changed after May 2023") == [("2023-06-01", "2023-07-02")]
    assert periods("everything since May 2023") == [("2023-05-01", "2023-07-02")]
    assert periods("notes until 2024-02-29") == [("2024-02-15", "2024-02-29")]
    assert periods("notes from 2024-02-29") == [("2024-02-29", "2024-03-01")]  # "notes from <day>": that day


def test_years_spanned_are_those_of_the_memories_and_now() -> None:
    t = [datetime(2021, 3, 1, tzinfo=UTC).timestamp(), datetime(2022, 7, 1, tzinfo=UTC).timestamp()]
    now = datetime(2024, 1, 5, tzinfo=UTC).timestamp()
    assert ranking.years_spanned(np.array(t), now) == range(2021, 2025)
    assert ranking.years_spanned(np.array([]), now) == range(2024, 2025)


def test_memories_told_soon_after_a_named_period_are_in_it() -> None:
    day = 86400.0
    lo, hi = ranking.query_periods("in May 2023")[0]
    times = np.array([lo - 2 * day, lo - 0.5 * day, lo + 3 * day, hi + 10 * day, hi + 20 * day])
    assert ranking.in_periods(times, [(lo, hi)], before_s=day, after_s=14 * day).tolist() == [0, 1, 1, 1, 0]


def test_rm3_expands_a_query_with_the_vocabulary_of_its_best_matches() -> None:
    fb = [["turtl", "shell", "pet"], ["turtl", "shell", "tank"], ["pet", "walk"]]
    out = ranking.rm3(["turtl"], fb, [3.0, 2.0, 1.0], terms=3, original=0.6)
    assert math.isclose(sum(out.values()), 1.0) and out["turtl"] > out["shell"] > 0
    assert "walk" not in out  # not among the 3 likeliest terms
    assert ranking.rm3(["turtl", "turtl"], [], [], terms=3) == {"turtl": 1.0}  # no feedback: the query


def test_recall_prefers_memories_of_the_period_the_query_names(tmp_path) -> None:
    from emergent.workstation import Workstation

    may = datetime(2023, 5, 8, 14, 0, tzinfo=UTC).timestamp()
    sept = datetime(2023, 9, 20, 14, 0, tzinfo=UTC).timestamp()
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest([{"text": "Ann: we went hiking in the hills", "at": may},
                    {"text": "Ann: we went hiking in the mountains", "at": sept}], kind="episodic", scope="a/u")
        hits = mem.recall("Where did Ann go hiking in September 2023?", k=2, scope="a/u", touch=False)
        assert hits[0].text.endswith("mountains") and "time" in hits[0].sources
        plain = mem.recall("Where did Ann go hiking in May 2023?", k=2, scope="a/u", touch=False)
        assert plain[0].text.endswith("hills")
        # the month alone: read in the years the scope's memories span
        for month, place in (("September", "mountains"), ("May", "hills"), ("may", "hills")):
            hits = mem.recall(f"Where did Ann go hiking in {month}?", k=2, scope="a/u", touch=False)
            assert hits[0].text.endswith(place) and "time" in hits[0].sources, month


def test_a_memory_is_in_the_period_its_own_words_point_to() -> None:
    told = datetime(2023, 4, 18, 19, 34, tzinfo=UTC).timestamp()  # a Tuesday

    def day(text: str) -> str | None:
        t = ranking.referred_time(text, told)
        return None if math.isnan(t) else datetime.fromtimestamp(t, UTC).date().isoformat()

    assert day("My colleagues and I went to a convention together last month.") == "2023-03-15"
    assert day("I saw it yesterday") == day("We stayed up late last night") == "2023-04-17"
    assert day("Two weeks ago I ran my first 10k") == "2023-04-04"
    assert day("I ran 3 days ago") == "2023-04-15"
    assert day("last Friday was fun") == "2023-04-14" and day("over the past weekend") == "2023-04-15"
    assert day("I moved here last year") == "2022-07-01" and day("we met last week") == "2023-04-11"
    assert day("nothing relative here, nor in 'lastly' or 'yesterdays'") is None
    january = datetime(2023, 1, 9, tzinfo=UTC).timestamp()
    assert datetime.fromtimestamp(ranking.referred_time("last month", january), UTC).month == 12
    times = ranking.referred_times(["last month", "no time"], [told, told])
    assert not math.isnan(times[0]) and math.isnan(times[1])


def test_recall_counts_what_was_told_later_about_a_named_period(tmp_path) -> None:
    from emergent.workstation import Workstation

    april = datetime(2023, 4, 18, 19, 0, tzinfo=UTC).timestamp()
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest([{"text": "John: my colleagues and I went to a convention together last month", "at": april},
                    {"text": "John: my colleagues and I went to a convention together, it was great",
                     "at": april + 200 * 86400}], kind="episodic", scope="a/u")
        hits = mem.recall("What did John attend with his colleagues in March 2023?", k=2, scope="a/u", touch=False)
        assert hits[0].text.endswith("last month") and "time" in hits[0].sources
        assert "time" not in hits[1].sources


def test_a_session_stamped_with_one_date_keeps_episodes_apart(tmp_path) -> None:
    """A whole batch with one ``at``: the answer right after the question is pulled in, a turn
    far down the same batch is not treated as its neighbour."""
    from emergent.workstation import Workstation

    turns = ["Ann: which city did you move to last spring?", "Bo: Lisbon, near the river."] + \
        [f"Bo: filler line number {i} about nothing" for i in range(12)] + ["Bo: my cat sleeps all day"]
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest([{"text": t, "at": "2023-05-08T14:00:00"} for t in turns], kind="episodic", scope="a/u")
        hits = mem.recall("which city did Ann move to last spring", k=len(turns), scope="a/u", touch=False)
    by_text = {h.text: h for h in hits}
    assert "neighbor" in by_text[turns[1]].sources
    assert "neighbor" not in by_text[turns[-1]].sources


def test_neighbour_grid_keeps_rows_in_scope_in_time_and_in_range() -> None:
    times = np.array([0, 60, 120, 180, 240, 9000], dtype=np.float64)
    mask = np.array([True, True, False, True, True, True])
    near, valid, dist = ranking.neighbor_grid(np.array([0, 3, 4]), mask, times, window_s=300, span=2)
    assert near.shape == valid.shape == dist.shape == (3, 4)
    assert dist[0].tolist() == [2, 1, 1, 2]
    got = [sorted(int(p) for p, ok in zip(row_near, row_ok, strict=True) if ok)
           for row_near, row_ok in zip(near, valid, strict=True)]
    assert got == [[1], [1, 4], [3]]  # before row 0 is out of range; 2 out of scope; 5 hours later
    _, none, _ = ranking.neighbor_grid(np.array([3]), mask, times, window_s=0, span=2)
    assert not none.any()


def test_an_episode_vector_matches_what_its_neighbours_are_about() -> None:
    q = np.array([1.0, 0.0, 0.0])
    own = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # two memories that do not match the query
    near = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    valid = np.array([[True, True], [False, False]])  # only the first has neighbours
    dist = np.array([[1, 1], [1, 1]])
    c = ranking.context_cosine(own, near, valid, dist, q)
    assert math.isclose(c[0], 1 / math.sqrt(3), rel_tol=1e-6) and c[1] == 0.0
    assert ranking.context_cosine(own, near, valid, dist, q, decay=0.0).tolist() == [0.0, 0.0]


def test_full_text_scores_with_other_bm25_parameters_leave_the_index_as_it_was(tmp_path) -> None:
    from emergent.memory.types import Scope
    from emergent.workstation import Workstation

    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest([{"text": "Lisbon"}, {"text": "Lisbon " + " ".join(f"word{i}" for i in range(30))}],
                   kind="episodic", scope="a/u")
        part = mem.ltm.hot.partition("a")
        with part.lock:
            mask = part.mask(Scope.of("a/u"), None, None, None)
            before = (part.bm25.k1, part.bm25.b)
            _, flat = part.text_scores(["lisbon"], mask, 0.9, 0.0)
            _, full = part.text_scores(["lisbon"], mask, 0.9, 1.0)
            assert (part.bm25.k1, part.bm25.b) == before
    assert math.isclose(flat[0], flat[1])  # b = 0: length does not count
    assert abs(full[0] - full[1]) > 0.1  # b = 1: the long memory scores lower


def test_recall_reads_an_answer_from_its_episode(tmp_path) -> None:
    """The answer shares no word with the question, the turns around it do: episode context widens
    its lead over a turn of another day that is as far from the question."""
    from emergent.workstation import Workstation

    t0 = 1_700_000_000.0
    turns = ["Ann: what did you bake for the school fair?", "Bo: banana bread, two loaves",
             "Ann: lovely, the school fair was fun", "Bo: the weather is cold today", "Ann: my bike is broken",
             "Bo: two loaves of rye from the shop"]
    lead = []
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest([{"text": t, "at": t0 + 60 * i + (0 if i < 3 else 86400)} for i, t in enumerate(turns)],
                   kind="episodic", scope="a/u")
        for update in ({}, {"w_context": 0.0, "w_text_context": 0.0, "w_coverage": 0.0}):
            mem.config = mem.config.model_copy(update=update)
            rel = {h.text: h.relevance for h in mem.recall("what was baked for the school fair", k=6, scope="a/u",
                                                           touch=False)}
            assert max(rel, key=rel.__getitem__) == turns[0]
            lead.append(rel[turns[1]] - rel[turns[5]])
    assert lead[0] > lead[1] > 0


def test_window_coverage_counts_query_terms_spread_over_an_exchange() -> None:
    # rows 0-2 are one exchange, row 3 is hours later; term a is in row 0, term b in row 1
    times = np.array([0, 60, 120, 9000], dtype=np.float64)
    mask = np.ones(4, bool)
    pos = np.array([0, 1, 2, 3])
    near, valid, _ = ranking.neighbor_grid(pos, mask, times, window_s=300, span=1)
    postings = [np.array([0]), np.array([1, 3])]
    got = ranking.window_coverage(postings, pos, near, valid, n_docs=4, size=4)
    assert got[0] == 1.0 and got[1] == 1.0  # row 0 and its neighbour 1 hold both terms, so does row 1
    # row 2 reaches b through its neighbour 1 only, row 3 holds b itself: the same share, and less
    # than half since b (in two rows) says less than a (in one)
    assert math.isclose(got[2], got[3]) and 0 < got[3] < 0.5
    assert ranking.window_coverage([np.empty(0, np.int64)], pos, near, valid, 4, 4).tolist() == [0.0] * 4


def test_a_query_naming_thousands_of_dates_costs_bounded_work() -> None:
    import time

    query = " ".join(["in May, in June and on 3 March"] * 5000)
    t0 = time.perf_counter()
    periods = ranking.query_periods(query, range(1970, 2027))
    times = np.linspace(0, 1.8e9, 200_000)
    hit = ranking.in_periods(times, periods, 86400.0, 14 * 86400.0)
    assert len(periods) == ranking.PERIODS_AT_MOST and hit.any() and not hit.all()
    assert time.perf_counter() - t0 < 2.0


def test_in_periods_agrees_with_a_plain_pass_over_overlapping_periods() -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        periods = [(float(a), float(a + w)) for a, w in zip(rng.uniform(0, 1000, 6), rng.uniform(0, 200, 6),
                                                             strict=True)]
        times = rng.uniform(-100, 1300, 300)
        plain = np.zeros(len(times), bool)
        for lo, hi in periods:
            plain |= (times >= lo - 5) & (times < hi + 20)
        assert ranking.in_periods(times, periods, 5, 20).tolist() == plain.astype(float).tolist()


def test_years_spanned_reads_times_outside_1970_to_9999_as_the_bounds() -> None:
    now = datetime(2024, 1, 5, tzinfo=UTC).timestamp()
    assert ranking.years_spanned(np.array([-5e9, 1e12]), now) == range(1970, 10000)


def test_a_query_whose_lowercase_is_longer_is_read_without_failing() -> None:
    # "İ".lower() is two code points: positions in the lowered text are not positions in the query
    years = range(2022, 2024)
    assert ranking.query_periods("İİİİİİİİİİ on may 5", years) == []  # cannot tell "May": not read as one
    assert len(ranking.query_periods("İİİİİİİİİİ in May", years)) == 2
    assert len(ranking.query_periods("İstanbul on 5 May, 2023", years)) == 1
