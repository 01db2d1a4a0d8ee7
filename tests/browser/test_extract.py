"""Extraction templates on real Chromium against the demo site: a paginated table, an infinite list, late
content, typed conversion and its errors, polars dtypes, templates from a pydantic model, templates learned
from one example row (also on the redesigned site), saving templates."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import polars as pl
import pytest
from _driver import Driver
from pydantic import BaseModel

from emergent.browser import demo
from emergent.browser.demo import DemoSite
from emergent.browser.extract import extract_rows, learn_template, row_model, template_from_model, to_frame
from emergent.browser.model import ExtractionTemplate, FieldSpec, Pagination, Target
from emergent.browser.store import BrowserStore
from emergent.errors import NotFoundError, ValidationError
from emergent.stores.sql import SQLStore


class Result(BaseModel):
    compound: str
    assay: str
    ic50: float
    active: bool
    measured: dt.date
    id: int


def results_template(next_selector: str = "a.next", rows: str = "tr.result-row") -> ExtractionTemplate:
    return template_from_model(
        "results", Result, rows=rows,
        selectors={"compound": "td.c-compound", "assay": ":scope > td:nth-child(2)", "ic50": "td.c-ic50",
                   "active": "td.c-active", "measured": "td.c-date", "id": ""},
        attributes={"id": "data-id"},
        pagination=Pagination(kind="next", next=Target.of(next_selector)))


def expected_rows() -> list[dict[str, Any]]:
    """What the demo site serves, from its own data."""
    return [{"compound": r["compound"], "assay": r["assay"], "ic50": float(r["ic50_nm"]), "active": r["active"],
             "measured": dt.date.fromisoformat(r["measured"]), "id": r["id"]} for r in demo.TABLE]


def test_a_paginated_table_is_read_over_all_its_pages_with_typed_values(drv: Driver, page: Any,
                                                                        site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    progress: list[tuple[int, int]] = []
    rows = drv.run(extract_rows(page, results_template(), timeout_ms=5000,
                                on_page=lambda n, total: progress.append((n, total))))
    assert len(demo.TABLE) == 57
    assert rows == expected_rows()
    pages = -(-demo.ROWS // demo.PER_PAGE)
    assert progress == [(n, min(n * demo.PER_PAGE, demo.ROWS)) for n in range(1, pages + 1)]
    assert pages == 6 and page.url.endswith(f"/table?page={pages}")


def test_a_next_target_that_stays_but_is_disabled_ends_the_pagination(drv: Driver, page: Any,
                                                                      site: DemoSite) -> None:
    # text=Next also matches the last page's <span class="next disabled" aria-disabled="true">
    drv.run(page.goto(site.url("/table?page=4")))
    start = time.perf_counter()
    t = results_template("text=Next")
    t = t.model_copy(update={"pagination": t.pagination.model_copy(update={"wait_ms": 10_000})})
    rows = drv.run(extract_rows(page, t, timeout_ms=5000))
    assert [r["id"] for r in rows] == list(range(31, 58))
    assert time.perf_counter() - start < 6.0  # stops on the disabled target, not after wait_ms (10 s)


@pytest.mark.parametrize("selector", ['role=link[name="Next"]', "css=a.next", "a[href*='page=']:has-text('Next')"])
def test_the_next_target_may_be_any_kind_of_candidate(drv: Driver, page: Any, site: DemoSite,
                                                      selector: str) -> None:
    drv.run(page.goto(site.url("/table?page=5")))
    rows = drv.run(extract_rows(page, results_template(selector), timeout_ms=5000))
    assert [r["id"] for r in rows] == list(range(41, 58))


def test_max_pages_bounds_the_pages_read(drv: Driver, page: Any, site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    progress: list[tuple[int, int]] = []
    rows = drv.run(extract_rows(page, results_template(), timeout_ms=5000, max_pages=2,
                                on_page=lambda n, total: progress.append((n, total))))
    assert [r["id"] for r in rows] == list(range(1, 21))
    assert progress == [(1, 10), (2, 20)]
    with pytest.raises(ValidationError, match="max_pages"):
        drv.run(extract_rows(page, results_template(), timeout_ms=5000, max_pages=0))


def test_the_frame_has_one_column_per_field_with_dtypes_from_the_field_types(drv: Driver, page: Any,
                                                                               site: DemoSite) -> None:
    t = results_template()
    drv.run(page.goto(site.url("/table?page=1")))
    df = to_frame(drv.run(extract_rows(page, t, timeout_ms=5000, max_pages=1)), t)
    assert df.columns == ["compound", "assay", "ic50", "active", "measured", "id"]
    assert df.dtypes == [pl.String, pl.String, pl.Float64, pl.Boolean, pl.Date, pl.Int64]
    assert df.height == 10
    assert df["ic50"].sum() == pytest.approx(sum(r["ic50_nm"] for r in demo.TABLE[:10]))
    assert df.filter(~pl.col("active"))["id"].to_list() == [r["id"] for r in demo.TABLE[:10] if not r["active"]]
    empty = to_frame([], t)
    assert empty.height == 0 and empty.dtypes == df.dtypes


def test_datetimes_become_a_datetime_column_aware_ones_in_utc() -> None:
    t = ExtractionTemplate(name="events", rows="li", fields=[FieldSpec(name="at", type="datetime"),
                                                              FieldSpec(name="n", type="int", required=False)])
    model = row_model(t)
    rows = [model.model_validate({"at": "2026-11-30T18:00:00Z", "n": "1,234"}).model_dump(),
            model.model_validate({"at": "2026-11-30T19:30:00+01:00", "n": ""}).model_dump()]
    assert rows[0]["n"] == 1234 and rows[1]["n"] is None
    df = to_frame(rows, t)
    assert df.schema["at"] == pl.Datetime("us", "UTC")
    assert df["at"].to_list() == [dt.datetime(2026, 11, 30, 18, 0, tzinfo=dt.UTC),
                                  dt.datetime(2026, 11, 30, 18, 30, tzinfo=dt.UTC)]
    naive = to_frame([model.model_validate({"at": "2026-01-02 03:04:05"}).model_dump()], t)
    assert naive.schema["at"] == pl.Datetime("us") and naive.schema["n"] == pl.Int64


def test_text_is_converted_as_shown_floats_yes_no_and_iso_dates() -> None:
    t = ExtractionTemplate(name="conv", rows="tr", fields=[
        FieldSpec(name="x", type="float"), FieldSpec(name="ok", type="bool"), FieldSpec(name="day", type="date")])
    model = row_model(t)
    assert model.model_validate({"x": "4.75", "ok": "yes", "day": "2026-02-02"}).model_dump() == {
        "x": 4.75, "ok": True, "day": dt.date(2026, 2, 2)}
    assert model.model_validate({"x": " 1,234.5 ", "ok": "No", "day": "2026-12-31"}).model_dump()["ok"] is False
    with pytest.raises(Exception, match="ok"):
        model.model_validate({"x": "1", "ok": "maybe", "day": "2026-01-01"})


def test_an_infinite_list_is_scrolled_until_no_more_rows_come(drv: Driver, page: Any, site: DemoSite) -> None:
    t = ExtractionTemplate(name="papers", rows="#papers > li.paper", fields=[
        FieldSpec(name="title", selector="span.title"), FieldSpec(name="year", selector="span.year", type="int"),
        FieldSpec(name="cites", selector="span.cites", type="int")],
        pagination=Pagination(kind="scroll", wait_ms=10_000))
    drv.run(page.goto(site.url("/scroll")))
    progress: list[tuple[int, int]] = []
    start = time.perf_counter()
    rows = drv.run(extract_rows(page, t, timeout_ms=5000, on_page=lambda n, total: progress.append((n, total))))
    took = time.perf_counter() - start
    assert len(rows) == demo.SCROLL_ITEMS == 45
    assert [r["title"] for r in rows] == [f"Paper {i:03d}" for i in range(45)]
    assert all(r["year"] == 2000 + i % 25 and r["cites"] == (i * 37) % 500 for i, r in enumerate(rows))
    assert progress == [(1, 15), (2, 30), (3, 45)]
    assert took < 6.0  # the end is seen when the network goes quiet, not after wait_ms (10 s)
    drv.run(page.goto(site.url("/scroll")))
    assert len(drv.run(extract_rows(page, t, timeout_ms=5000, max_pages=2))) == 30


def test_rows_that_appear_late_are_waited_for(drv: Driver, page: Any, site: DemoSite) -> None:
    t = ExtractionTemplate(name="late", rows="#slot p.status", fields=[FieldSpec(name="status")])
    drv.run(page.goto(site.url("/late?ms=600")))
    assert drv.run(extract_rows(page, t, timeout_ms=5000)) == [{"status": "ready"}]
    drv.run(page.goto(site.url("/late?ms=3000")))
    with pytest.raises(NotFoundError, match=r"'#slot p.status' matched nothing .* within 200 ms"):
        drv.run(extract_rows(page, t, timeout_ms=200))


def test_a_value_that_does_not_convert_names_the_row_the_field_and_the_value(drv: Driver, page: Any,
                                                                             site: DemoSite) -> None:
    t = ExtractionTemplate(name="wrong", rows="tr.result-row", fields=[
        FieldSpec(name="compound", selector="td.c-compound"), FieldSpec(name="assay", selector="td.c-assay",
                                                                       type="float")])
    drv.run(page.goto(site.url("/table?page=2")))
    with pytest.raises(ValidationError) as err:
        drv.run(extract_rows(page, t, timeout_ms=5000))
    assert "row 1 (page 1), field 'assay'" in str(err.value)
    assert repr(demo.TABLE[10]["assay"]) in str(err.value)
    assert err.value.row == 1 and err.value.field == "assay" and err.value.value == demo.TABLE[10]["assay"]
    # not required: the value becomes None instead
    loose = t.model_copy(update={"fields": [t.fields[0], t.fields[1].model_copy(update={"required": False})]})
    rows = drv.run(extract_rows(page, loose, timeout_ms=5000))
    assert [r["assay"] for r in rows] == [None] * 10
    # a missing element in a required field is named too
    gone = t.model_copy(update={"fields": [t.fields[0], FieldSpec(name="note", selector="td.c-note")]})
    with pytest.raises(ValidationError, match=r"row 1 \(page 1\), field 'note' is missing"):
        drv.run(extract_rows(page, gone, timeout_ms=5000))


def test_a_pattern_cuts_the_value_out_of_the_text(drv: Driver, page: Any, site: DemoSite) -> None:
    t = ExtractionTemplate(name="nums", rows="tr.result-row", fields=[
        FieldSpec(name="number", selector="td.c-compound", pattern=r"CMP-(\d+)", type="int")])
    drv.run(page.goto(site.url("/table?page=3")))
    assert [r["number"] for r in drv.run(extract_rows(page, t, timeout_ms=5000))] == list(range(21, 31))


def test_bad_selectors_are_usage_errors_not_playwright_tracebacks(drv: Driver, page: Any, site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    bad_css = ExtractionTemplate(name="bad", rows="tr.result-row", fields=[FieldSpec(name="c", selector="td[")])
    with pytest.raises(ValidationError, match="field 'c': its selector is not valid CSS"):
        drv.run(extract_rows(page, bad_css, timeout_ms=2000))
    pw_field = ExtractionTemplate(name="bad", rows="tr.result-row", fields=[FieldSpec(name="c", selector="text=x")])
    with pytest.raises(ValidationError, match="a field's selector is CSS inside the row"):
        drv.run(extract_rows(page, pw_field, timeout_ms=2000))
    bad_rows = ExtractionTemplate(name="bad", rows="tr[[", fields=[FieldSpec(name="c")])
    with pytest.raises(ValidationError, match=r"the rows selector 'tr\[\[' cannot be used"):
        drv.run(extract_rows(page, bad_rows, timeout_ms=2000))


def test_rows_inside_an_iframe_are_out_of_scope_and_the_error_says_so(drv: Driver, page: Any,
                                                                      site: DemoSite) -> None:
    drv.run(page.goto(site.url("/frame")))
    t = ExtractionTemplate(name="calc", rows="output#out", fields=[FieldSpec(name="v")])
    with pytest.raises(NotFoundError, match="1 iframe.*rows inside a frame are not supported"):
        drv.run(extract_rows(page, t, timeout_ms=300))


def test_template_from_a_pydantic_model_keeps_types_and_optional_fields() -> None:
    class Paper(BaseModel):
        title: str
        year: int | None
        cites: int = 0

    t = template_from_model("papers", Paper, rows="#papers > li", url="http://127.0.0.1/scroll",
                            selectors={"title": "span.title", "year": "span.year", "cites": "span.cites"})
    assert [(f.name, f.type, f.required) for f in t.fields] == [
        ("title", "str", True), ("year", "int", False), ("cites", "int", False)]
    with pytest.raises(ValidationError, match=r"no selector for the model's field\(s\) \['cites'\]"):
        template_from_model("papers", Paper, rows="li", selectors={"title": "a", "year": "b"})
    with pytest.raises(ValidationError, match="fields the model does not have"):
        template_from_model("papers", Paper, rows="li", selectors={"title": "a", "year": "b", "cites": "c",
                                                                   "author": "d"})

    class Tagged(BaseModel):
        tags: list[str]

    with pytest.raises(ValidationError, match="which a column cannot hold"):
        template_from_model("tagged", Tagged, rows="li", selectors={"tags": "span"})


def test_a_template_learned_from_one_row_reads_the_whole_paginated_table(drv: Driver, page: Any,
                                                                         site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    first = demo.TABLE[0]
    example = {"compound": first["compound"], "ic50": str(first["ic50_nm"]), "active": "yes",
               "measured": first["measured"]}
    t = drv.run(learn_template(page, example, name="learned"))
    assert {f.name: f.type for f in t.fields} == {"compound": "str", "ic50": "float", "active": "bool",
                                                  "measured": "date"}
    assert all(f.required for f in t.fields)
    assert t.pagination.kind == "next" and t.pagination.next is not None
    assert t.learned_from is not None and t.learned_from["example"] == example and t.learned_from["rows"] == 10
    assert t.url == site.url("/table?page=1")
    rows = drv.run(extract_rows(page, t, timeout_ms=5000))
    want = [{k: r[k] for k in example} for r in expected_rows()]
    assert rows == want
    # a part of a cell's text: the pattern cuts it out, the type follows the part
    drv.run(page.goto(site.url("/table?page=1")))
    part = drv.run(learn_template(page, {"number": "0001"}, name="numbers", pagination=False))
    assert part.rows == t.rows and part.fields[0].pattern and part.fields[0].type == "int"
    assert [r["number"] for r in drv.run(extract_rows(page, part, timeout_ms=5000))] == list(range(1, 11))


def test_a_learned_template_survives_the_redesign_because_it_avoids_the_renamed_row_class(
        drv: Driver, page: Any, site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    first = demo.TABLE[0]
    example = {"compound": first["compound"], "assay": first["assay"], "ic50": str(first["ic50_nm"])}
    t = drv.run(learn_template(page, example, name="l"))
    # the rows are anchored on the table's id and its structure, the fields on the column classes
    assert "result-row" not in t.rows
    site.mutate(True)
    drv.run(page.goto(site.url("/table?page=1")))
    assert drv.run(page.locator("tr.result-row").count()) == 0  # the redesign renamed the row class
    rows = drv.run(extract_rows(page, t, timeout_ms=5000, max_pages=3))
    assert [r["compound"] for r in rows] == [r["compound"] for r in demo.TABLE[:30]]
    # a template that names the renamed class says clearly why it finds nothing
    with pytest.raises(NotFoundError, match=r"the rows selector 'tr.result-row' matched nothing"):
        drv.run(extract_rows(page, results_template(), timeout_ms=300))


def test_learning_an_infinite_list_guesses_scroll(drv: Driver, page: Any, site: DemoSite) -> None:
    drv.run(page.goto(site.url("/scroll")))
    t = drv.run(learn_template(page, {"title": "Paper 001", "year": "2001", "cites": "37"}, name="papers"))
    assert t.pagination.kind == "scroll"
    assert {f.name: f.type for f in t.fields} == {"title": "str", "year": "int", "cites": "int"}
    drv.run(page.goto(site.url("/scroll")))
    rows = drv.run(extract_rows(page, t, timeout_ms=5000))
    assert [r["title"] for r in rows] == [f"Paper {i:03d}" for i in range(demo.SCROLL_ITEMS)]


def test_learning_fails_clearly_when_a_value_is_absent_or_not_in_a_repeating_row(drv: Driver, page: Any,
                                                                                 site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    with pytest.raises(ValidationError, match=r"the value 'CMP-9999' of field 'compound' is not on") as err:
        drv.run(learn_template(page, {"compound": "CMP-9999"}, name="x", timeout_ms=300))
    assert err.value.field == "compound"
    with pytest.raises(ValidationError, match="not inside a repeating row"):
        drv.run(learn_template(page, {"heading": "Assay results"}, name="x", timeout_ms=300))
    # values of two different rows have no repeating row around them both
    other = next(r for r in demo.TABLE if r["assay"] != demo.TABLE[0]["assay"])
    with pytest.raises(ValidationError, match="not inside a repeating row"):
        drv.run(learn_template(page, {"compound": demo.TABLE[0]["compound"], "assay": other["assay"],
                                      "ic50": str(demo.TABLE[0]["ic50_nm"])}, name="x", timeout_ms=300))
    with pytest.raises(ValidationError, match="not an identifier"):
        drv.run(learn_template(page, {"ic50 (nM)": "4.75"}, name="x"))


def test_templates_are_saved_versioned_and_survive_yaml(drv: Driver, page: Any, site: DemoSite,
                                                        tmp_path: Any) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    learned = drv.run(learn_template(page, {"compound": "CMP-0001", "ic50": "4.75"}, name="results"))
    again = ExtractionTemplate.from_yaml(learned.to_yaml())
    assert again == learned
    store = BrowserStore(SQLStore(f"sqlite:///{tmp_path / 'b.db'}"))
    saved = store.save(learned, by="human:test")
    assert store.template("results") == learned and saved.version == "1.0.0"
    changed = learned.model_copy(update={"pagination": Pagination()})
    assert store.save(changed, by="human:test").version == "1.1.0"
    loaded = store.template("results", "1.0.0")
    drv.run(page.goto(site.url("/table?page=1")))
    rows = drv.run(extract_rows(page, loaded, timeout_ms=5000, max_pages=3))
    assert [r["compound"] for r in rows] == [r["compound"] for r in demo.TABLE[:30]]


LOAD_MORE = """() => {
  window.onscroll = null;
  const b = document.createElement('button'); b.type = 'button'; b.textContent = 'Load more';
  b.onclick = () => more();  // the page's own loader: appends the next 15 papers from /api/items
  document.querySelector('h1').after(b);
}"""


def test_a_load_more_button_appends_rows_and_only_the_new_ones_are_read(drv: Driver, page: Any,
                                                                        site: DemoSite) -> None:
    drv.run(page.goto(site.url("/scroll")))
    drv.run(page.locator("li.paper").first.wait_for())
    drv.run(page.evaluate(LOAD_MORE))
    t = drv.run(learn_template(page, {"title": "Paper 000", "cites": "0"}, name="more"))
    assert t.pagination.kind == "next" and t.pagination.next is not None
    assert t.pagination.next.candidates[0].describe() == 'role button "Load more"'
    t = t.model_copy(update={"pagination": t.pagination.model_copy(update={"wait_ms": 800})})
    progress: list[tuple[int, int]] = []
    rows = drv.run(extract_rows(page, t, timeout_ms=5000, on_page=lambda n, total: progress.append((n, total))))
    assert [r["title"] for r in rows] == [f"Paper {i:03d}" for i in range(demo.SCROLL_ITEMS)]  # no duplicates
    assert progress == [(1, 15), (2, 30), (3, 45)]


STRIPES = """() => {
  document.querySelectorAll('#results tbody tr').forEach((tr, i) => { tr.className = i % 2 ? 'even' : 'odd'; });
  const head = document.createElement('tr'); head.className = 'batch';
  head.innerHTML = '<th colspan="5">Batch A</th>';
  document.querySelector('#results tbody').prepend(head);
}"""


def test_striped_rows_are_one_group_and_a_header_row_in_the_body_is_left_out(drv: Driver, page: Any,
                                                                             site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    drv.run(page.evaluate(STRIPES))  # odd/even classes instead of result-row, a group header among the rows
    t = drv.run(learn_template(page, {"compound": "CMP-0001", "ic50": "4.75"}, name="striped"))
    assert "odd" not in t.rows and drv.run(page.locator(t.rows).count()) == 10
    rows = drv.run(extract_rows(page, t, timeout_ms=5000, max_pages=2))  # page 2 is the site's own markup
    assert [r["compound"] for r in rows] == [r["compound"] for r in demo.TABLE[:20]]


def test_rows_that_do_not_fit_the_template_are_a_validation_error_naming_the_column() -> None:
    t = ExtractionTemplate(name="conv", rows="tr", fields=[FieldSpec(name="day", type="date")])
    with pytest.raises(ValidationError, match=r"column 'day' \(date\) holds a value of another type"):
        to_frame([{"day": "next tuesday"}], t)


SPA = """() => {
  window.spa = true;
  document.addEventListener('click', async (e) => {  // Next without leaving the document, URL first
    const a = e.target.closest('a.next'); if (!a) return;
    e.preventDefault();
    history.pushState({}, '', a.href);
    const html = await (await fetch(a.href)).text();
    await new Promise(r => setTimeout(r, 150));
    const doc = new DOMParser().parseFromString(html, 'text/html');
    document.querySelector('#results tbody').replaceWith(doc.querySelector('#results tbody'));
    document.querySelector('nav.pager').replaceWith(doc.querySelector('nav.pager'));
  }, true);
}"""


def test_a_single_page_app_that_changes_the_url_before_the_rows_is_read_page_by_page(drv: Driver, page: Any,
                                                                                    site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    drv.run(page.evaluate(SPA))
    rows = drv.run(extract_rows(page, results_template(), timeout_ms=5000, max_pages=3))
    assert rows == expected_rows()[:30]
    assert drv.run(page.evaluate("window.spa")) is True and page.url.endswith("page=3")  # one document throughout


def test_a_list_without_ids_or_classes_is_learned_by_position(drv: Driver, page: Any, site: DemoSite) -> None:
    drv.run(page.goto(site.url("/")))
    links = drv.run(page.locator("ul > li > a").all_inner_texts())
    t = drv.run(learn_template(page, {"page": links[0]}, name="links"))
    assert t.rows.startswith("body > ") and "nth-child" in t.rows and t.pagination.kind == "none"
    assert [r["page"] for r in drv.run(extract_rows(page, t, timeout_ms=3000))] == links


def test_a_typed_column_showing_n_a_for_a_missing_value_keeps_its_type(drv: Driver, page: Any,
                                                                       site: DemoSite) -> None:
    drv.run(page.goto(site.url("/table?page=1")))
    drv.run(page.evaluate("() => { const rows = document.querySelectorAll('tr.result-row');"
                          " rows[3].querySelector('td.c-ic50').textContent = 'n/a';"
                          " rows[5].querySelector('td.c-date').textContent = '\u2014'; }"))
    t = drv.run(learn_template(page, {"compound": "CMP-0001", "ic50": "4.75", "measured": demo.TABLE[0]["measured"]},
                               name="gaps", pagination=False))
    assert {f.name: (f.type, f.required) for f in t.fields} == {
        "compound": ("str", True), "ic50": ("float", False), "measured": ("date", False)}
    rows = drv.run(extract_rows(page, t, timeout_ms=3000))
    assert [i for i, r in enumerate(rows) if r["ic50"] is None] == [3]
    assert [i for i, r in enumerate(rows) if r["measured"] is None] == [5]
    assert rows[4]["ic50"] == demo.TABLE[4]["ic50_nm"]
