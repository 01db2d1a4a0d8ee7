"""``WorkflowRuns`` over real runs of ``ws.workflows``: the runs list, the selected run's DAG coloured
by each step's state (fan-out instances, a skipped branch, a failed step), refresh picking up a new run,
and the dashboard's workflows section opening it."""

from __future__ import annotations

import re
from typing import Any

from emergent.ui.workflows import STATE_COLOURS, WorkflowRuns
from emergent.workflows import Workflow


def split(text: str) -> list[str]:
    return text.split()


def count(words: list[str]) -> int:
    return len(words)


def total(counts: list[int]) -> int:
    return sum(counts)


def explode(n: int) -> int:
    raise ValueError(f"cannot handle {n}")


def _flow() -> Any:
    wf = Workflow.build("words", inputs={"lines": ["a b", "c d e"], "strict": False})
    parts = wf.call("split", split, args={"text": "${item}"}, foreach="${inputs.lines}")
    counted = wf.call("count", count, args={"words": parts.output})  # fan-in: the list of the instances' outputs
    wf.call("total", total, args={"counts": [counted.output]})
    wf.call("audit", explode, args={"n": counted.output}, when={"ref": "${inputs.strict}", "op": "truthy"})
    return wf


def _nodes(html: str) -> dict[str, str]:
    return dict(re.findall(r"data-key='([^']+)' data-status='([^']+)'", html))


def test_the_widget_lists_runs_and_draws_the_newest_dag_coloured_by_state(wws: Any) -> None:
    ok = wws.workflows.run(_flow(), principal=wws.principal)
    assert ok.status == "completed", ok.error
    w = WorkflowRuns(wws.workflows)
    assert w.runs_list.value == ok.id and ok.id in w.runs_list.options[0][0]
    nodes = _nodes(w.svg)
    assert nodes == {"split[0]": "completed", "split[1]": "completed", "count": "completed", "total": "completed",
                     "audit": "skipped"}
    assert f"fill='{STATE_COLOURS['skipped']}'" in w.svg and "data-edge='split[1]->count'" in w.svg
    assert ">skipped</text>" in w.svg.split("emergent-wf-legend")[1]


def test_refresh_shows_a_new_failed_run_and_selecting_goes_back(wws: Any) -> None:
    ok = wws.workflows.run(_flow(), principal=wws.principal)
    w = WorkflowRuns(wws.workflows)
    bad = wws.workflows.run(_flow(), {"strict": True}, principal=wws.principal)
    assert bad.status == "failed"
    w.refresh()
    assert w.runs_list.value == ok.id  # the selection is kept ...
    w.runs_list.value = bad.id  # ... until the user picks another run
    assert _nodes(w.svg)["audit"] == "failed" and "ValueError: cannot handle 2" in w.svg
    assert f"fill='{STATE_COLOURS['failed']}'" in w.svg
    w.select(ok.id)
    assert _nodes(w.svg)["audit"] == "skipped"
    assert [v for _, v in w.runs_list.options] == [bad.id, ok.id]


def test_an_empty_workspace_says_how_to_start(wws: Any) -> None:
    w = WorkflowRuns(wws.workflows)
    assert w.runs_list.options == () and "ws.workflows.run(" in w.detail.value
    assert wws.workflows.widget().__class__ is WorkflowRuns


def test_the_dashboard_shows_workflow_runs_and_opens_the_widget(wws: Any) -> None:
    from emergent.ui.dashboard import Dashboard

    run = wws.workflows.run(_flow(), {"strict": True}, principal=wws.principal)
    d = Dashboard.of(wws)
    data = d.read()
    rows, error = data["workflows"]
    assert error is None and rows[0]["run"] == run.id and rows[0]["status"] == "failed" and rows[0]["steps"] == "4/5"
    assert "WorkflowRuns(ws.workflows, principal=ws.principal)" in d.html(data)
    d.widget(data)
    panel = d.open("workflows")
    assert isinstance(panel, WorkflowRuns) and panel.runs_list.value == run.id and panel.principal is wws.principal


def _stage(n: int) -> int:
    import time

    time.sleep(0.3)
    return n + 1


def test_pause_resume_and_cancel_buttons_act_on_the_selected_run_as_the_principal(wws: Any) -> None:
    me = wws.principal
    wf = Workflow.build("stages")
    prev = wf.call("s1", _stage, args={"n": 1})
    for i in range(2, 5):
        prev = wf.call(f"s{i}", _stage, args={"n": prev.output})
    run_id = wws.workflows.start(wf, principal=me)
    w = WorkflowRuns(wws.workflows, principal=me)
    assert w.runs_list.value == run_id and "Pause" in [b.description for b in w.buttons.values()]
    w.buttons["pause"].click()
    paused = wws.workflows.wait(run_id, timeout=30)
    assert paused.status == "paused" and any(s.status == "pending" for s in paused.steps)
    w.act("resume", wait=True)
    assert wws.workflows.get(run_id).status == "completed" and _nodes(w.svg)["s4"] == "completed"
    assert "resume" in w.message.value

    other = wws.workflows.start(wf, principal=me)
    w.select(other)
    w.buttons["cancel"].click()
    assert wws.workflows.wait(other, timeout=30).status == "cancelled"
    w.buttons["cancel"].click()  # again: the service refuses, the panel says why
    assert "already cancelled" in w.message.value
    kinds = [e.kind for e in wws.audit.entries() if e.actor == me.key and e.kind.startswith("workflow.run.")]
    assert {"workflow.run.pause", "workflow.run.resume", "workflow.run.cancel"} <= set(kinds)


def test_without_a_principal_the_widget_only_shows(wws: Any) -> None:
    w = WorkflowRuns(wws.workflows)
    assert not any(isinstance(c, type(w.refresh_button)) and c.description == "Pause" for c in w.children[0].children)
