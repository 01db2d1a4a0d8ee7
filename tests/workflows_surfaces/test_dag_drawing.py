"""The DAG drawing of the ``WorkflowRuns`` widget: networkx topological generations left to right,
a box per step coloured by its state, an arrow per dependency, a legend of the states present; plain
SVG (no script, nothing fetched)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from emergent.ui.workflows import MAX_DRAWN, STATE_COLOURS, dag_svg, layout

SVG = "{http://www.w3.org/2000/svg}"


def _svg(html: str) -> ET.Element:
    body = re.search(r"<svg xmlns='http://www.w3.org/2000/svg' width=.*?</svg>", html, re.S)
    assert body is not None, html
    return ET.fromstring(body.group(0))


def _boxes(html: str) -> dict[str, tuple[float, float, str, str]]:
    out = {}
    for g in _svg(html).iter(f"{SVG}g"):
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        out[g.attrib["data-key"]] = (float(rect.attrib["x"]), float(rect.attrib["y"]), rect.attrib["fill"],
                                     g.attrib["data-status"])
    return out


def test_every_edge_points_right_and_siblings_share_a_column() -> None:
    nodes = [{"key": k, "status": "completed"} for k in ("fetch", "a", "b", "join", "report")]
    edges = [("fetch", "a"), ("fetch", "b"), ("a", "join"), ("b", "join"), ("join", "report")]
    boxes = _boxes(dag_svg(nodes, edges))
    assert set(boxes) == {"fetch", "a", "b", "join", "report"}
    for a, b in edges:
        assert boxes[a][0] < boxes[b][0], (a, b)
    assert boxes["a"][0] == boxes["b"][0] and boxes["a"][1] != boxes["b"][1]
    assert len(_svg(dag_svg(nodes, edges)).findall(f".//{SVG}path[@class='emergent-wf-edge']")) == len(edges)


def test_a_step_sits_one_column_after_its_longest_path() -> None:
    pos = layout(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "c"), ("a", "d")])
    assert pos["a"][0] == 0 and pos["b"][0] == 1 and pos["c"][0] == 2 and pos["d"][0] == 1


def test_nodes_are_coloured_by_state_with_a_legend_of_the_states_present() -> None:
    states = {"ok": "completed", "bad": "failed", "wait": "waiting_approval", "off": "skipped", "todo": "pending"}
    html = dag_svg([{"key": k, "status": s, "kind": "tool"} for k, s in states.items()], [("ok", "bad")])
    boxes = _boxes(html)
    for key, state in states.items():
        assert boxes[key][2] == STATE_COLOURS[state] and boxes[key][3] == state
    legend = html.split("emergent-wf-legend", 1)[1]
    for state in states.values():
        assert f">{state}</text>" in legend
    assert ">running</text>" not in legend  # only the states present


def test_a_failed_step_shows_its_error_and_attempt_on_hover() -> None:
    class Step:  # a step state as the store returns it (attributes, a status enum-like value)
        key, kind, attempt, error, approval_id = "parse", "call", 3, "ValueError: bad <row>", None

        class status:  # noqa: N801 - mimics an Enum member
            value = "failed"

    html = dag_svg([Step()], [])
    title = _svg(html).find(f".//{SVG}title")
    assert title is not None and title.text == "parse: failed (call)\nattempt 3\nValueError: bad <row>"
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")


def test_fan_out_instances_and_labels_are_escaped() -> None:
    keys = ["split", "work[0]", "work[1]", "work[2]", "<b>merge</b>"]
    edges = [("split", k) for k in keys[1:4]] + [(k, "<b>merge</b>") for k in keys[1:4]]
    html = dag_svg([{"key": k, "status": "completed"} for k in keys], edges)
    assert "<b>merge</b>" not in html and "&lt;b&gt;merge&lt;/b&gt;" in html
    boxes = _boxes(html)
    assert len({boxes[k][0] for k in keys[1:4]}) == 1 and len({boxes[k][1] for k in keys[1:4]}) == 3


def test_a_dag_too_large_to_read_is_summarised_by_state() -> None:
    n = MAX_DRAWN + 1
    html = dag_svg([{"key": f"s{i}", "status": "completed" if i % 2 else "failed"} for i in range(n)],
                   [(f"s{i}", f"s{i + 1}") for i in range(n - 1)])
    assert "<svg" not in html and f"{n} steps" in html and f"{(n + 1) // 2} failed" in html


def test_no_steps_draws_nothing() -> None:
    assert "no steps" in dag_svg([], [])
