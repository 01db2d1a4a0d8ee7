"""The designer's workflow, before anything runs: scripts become ``browser.replay`` steps and templates
``browser.extract`` steps, in order (each needs the one before), wired to workflow inputs and earlier
steps' outputs; mistakes are refused with a hint. (Running one end to end: test_designer_run.py.)"""

from __future__ import annotations

import pytest

from emergent.browser.designer import ExtractStep, ScriptStep, inp, ref, to_workflow
from emergent.errors import ValidationError
from emergent.workflows.spec import Workflow


def test_parts_become_tool_steps_in_order_each_waiting_for_the_one_before() -> None:
    wf = to_workflow("report", [ScriptStep("portal-login", params={"email": inp("email")}),
                                ExtractStep("assay-table", url=inp("table_url"), max_pages=3),
                                ScriptStep("portal-login", heal=False, version="1.1.0")],
                     inputs={"table_url": "http://127.0.0.1:1/table"})
    assert [(s.id, s.kind, s.tool) for s in wf.steps] == [
        ("portal-login", "tool", "browser.replay"), ("assay-table", "tool", "browser.extract"),
        ("portal-login_2", "tool", "browser.replay")]
    assert wf.dependencies() == {"portal-login": [], "assay-table": ["portal-login"],
                                 "portal-login_2": ["assay-table"]}
    login, table, again = wf.steps
    assert login.args == {"script": "portal-login", "check": True, "params": {"email": "${inputs.email}"}}
    assert table.args == {"template": "assay-table", "url": "${inputs.table_url}", "max_pages": 3}
    assert again.args == {"script": "portal-login", "check": True, "version": "1.1.0", "heal": False}
    # email has no default: a run must give it; table_url keeps the default passed
    assert wf.inputs == {"table_url": "http://127.0.0.1:1/table", "email": None}
    assert wf.outputs == {"portal-login": "${steps.portal-login.output.status}",
                          "assay-table": "${steps.assay-table.output.rows}",
                          "portal-login_2": "${steps.portal-login_2.output.status}"}


def test_the_workflow_round_trips_through_yaml_as_a_saved_one_would() -> None:
    wf = to_workflow("chain", [ExtractStep("first", id="a"),
                               ScriptStep("use", params={"compound": ref("a", "rows", 0, "compound")})])
    again = Workflow.from_yaml(wf.to_yaml())
    assert again.to_data() == wf.to_data()
    assert again.step("use").args["params"] == {"compound": "${steps.a.output.rows.0.compound}"}
    assert again.dependencies()["use"] == ["a"]


def test_a_reference_to_a_later_or_unknown_step_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValidationError, match="refers to step 'nope'"):
        to_workflow("bad", [ScriptStep("s", params={"x": ref("nope", "rows")})])


def test_no_parts_duplicate_ids_and_foreign_parts_are_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError) as e:
        to_workflow("empty", [])
    assert e.value.hint and "ScriptStep" in e.value.hint
    with pytest.raises(ValidationError, match="two parts have the id 'x'"):
        to_workflow("dup", [ScriptStep("a", id="x"), ExtractStep("b", id="x")])
    with pytest.raises(ValidationError, match="not a ScriptStep or an ExtractStep"):
        to_workflow("odd", ["login"])  # type: ignore[list-item]
