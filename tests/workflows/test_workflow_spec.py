"""The workflow spec: YAML and the Python builder agree; broken specs are refused naming the step and field."""

from __future__ import annotations

from typing import Any

import pytest

from emergent.errors import ValidationError
from emergent.workflows import Workflow

YAML = """
name: digest
description: fetch, summarise, file
inputs:
  topic: null
  limit: 3
steps:
  - id: search
    kind: tool
    tool: memory.recall
    args: {query: "${inputs.topic}", k: "${inputs.limit}"}
  - id: summarise
    kind: assistant
    assistant: writer
    prompt: "Summarise ${steps.search.output}"
  - id: each
    kind: tool
    tool: files.write
    foreach: ${steps.search.output}
    args: {path: "notes/${item.id}.md", content: "${item.text}"}
    when: {ref: "${steps.search.output}", op: truthy}
    retries: 2
    timeout_s: 5
    compensate: {tool: files.delete, args: {path: "${steps.each.output.path}"}}
outputs:
  summary: ${steps.summarise.output.answer}
"""


def test_a_yaml_spec_parses_and_infers_dependencies_from_references() -> None:
    wf = Workflow.from_yaml(YAML)
    assert [s.id for s in wf.steps] == ["search", "summarise", "each"]
    assert wf.step("summarise").depends_on() == ["search"]
    assert wf.step("each").depends_on() == ["search"]
    assert wf.step("each").retries == 2 and wf.step("each").compensate is not None
    again = Workflow.from_yaml(wf.to_yaml())
    assert again.model_dump() == wf.model_dump()


def test_the_python_builder_wires_outputs_by_reference() -> None:
    def parse(text: str) -> dict[str, int]:
        return {"n": len(text)}

    wf = Workflow.build("b", inputs={"path": "a.txt"})
    a = wf.tool("fetch", "files.read", args={"path": "${inputs.path}"})
    b = wf.call("parse", parse, args={"text": a.output["text"]})
    c = wf.call("twice", parse, args={"text": b.output["n"]}, retries=1)
    done = wf.done()
    assert done.step("parse").args == {"text": "${steps.fetch.output.text}"}
    assert done.step("twice").depends_on() == ["parse"] and c.step.retries == 1
    with pytest.raises(ValidationError, match="step 'parse': field 'fn': call steps cannot be written as YAML"):
        done.to_yaml()


@pytest.mark.parametrize("patch, message", [
    ({"retries": -1}, "step 'b': field 'retries': must be ≥ 0"),
    ({"timeout_s": 0}, "step 'b': field 'timeout_s': must be > 0"),
    ({"id": "B C"}, "step 'B C': field 'id'"),
    ({"tool": None}, "step 'b': field 'tool': a tool step needs it"),
    ({"args": {"x": "${steps.nope.output}"}}, "step 'b': field 'args': refers to step 'nope', which does not exist"),
    ({"args": {"x": "${inputs.nope}"}}, "step 'b': field 'args': refers to input 'nope'"),
    ({"args": {"x": "${item}"}}, "step 'b': field 'args': \\$\\{item\\} is only defined in a fan-out step"),
    ({"needs": ["ghost"]}, "step 'b': field 'needs': no step 'ghost'"),
    ({"bogus": 1}, "step 'b': field 'bogus'"),
    ({"retries": "many"}, "step 'b': field 'retries'"),
])
def test_a_broken_step_is_refused_naming_the_step_and_the_field(patch: dict[str, object], message: str) -> None:
    b = {"id": "b", "kind": "tool", "tool": "files.read", "args": {"x": "${steps.a.output}"}, **patch}
    b = {k: v for k, v in b.items() if v is not None}
    data = {"name": "w", "steps": [{"id": "a", "kind": "tool", "tool": "files.read"}, b]}
    with pytest.raises(ValidationError, match=message):
        Workflow.parse(data)


def test_a_cycle_is_refused_with_the_cycle_spelled_out() -> None:
    data = {"name": "w", "steps": [
        {"id": "a", "kind": "tool", "tool": "t", "args": {"x": "${steps.c.output}"}},
        {"id": "b", "kind": "tool", "tool": "t", "needs": ["a"]},
        {"id": "c", "kind": "tool", "tool": "t", "args": {"y": "${steps.b.output.k}"}},
        {"id": "d", "kind": "tool", "tool": "t", "needs": ["c"]},
    ]}
    with pytest.raises(ValidationError) as err:
        Workflow.parse(data)
    assert "cycle: a → b → c → a" in str(err.value)  # arrows as data flows: b needs a, c needs b, a needs c
    assert err.value.cycle == ["a", "b", "c", "a"]


def test_a_cycle_in_a_long_chain_is_found_without_recursion_limits() -> None:
    steps = [{"id": f"s{i}", "kind": "tool", "tool": "t", "needs": [f"s{i - 1}"] if i else ["s2999"]}
             for i in range(3000)]
    with pytest.raises(ValidationError, match=r"^cycle: s0 → s1 → s2 → .* → s2999 → s0 "):
        Workflow.parse({"name": "long", "steps": steps})


def test_yaml_cannot_carry_python_callables() -> None:
    with pytest.raises(ValidationError, match="step 'x': field 'fn': call steps exist only in Python"):
        Workflow.parse({"name": "w", "steps": [{"id": "x", "kind": "call", "fn": "os:system"}]})


def test_nan_times_binary_files_and_deep_nesting_are_validation_errors(tmp_path: Any) -> None:
    for fld in ("retry_delay_s", "timeout_s"):
        with pytest.raises(ValidationError, match=f"field '{fld}'"):
            Workflow.from_yaml(f"name: n\nsteps:\n  - {{id: a, kind: tool, tool: t, {fld}: .nan}}\n")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(ValidationError, match="is not UTF-8 text"):
        Workflow.from_yaml(binary)
    deep = "name: x\nsteps:\n  - {id: a, kind: tool, tool: t, args: {x: " + "[" * 3000 + "]" * 3000 + "}}\n"
    with pytest.raises(ValidationError, match="nested too deep"):
        Workflow.from_yaml(deep)


def test_a_step_edited_in_place_is_checked_again() -> None:
    wf = Workflow.build("edited")
    a = wf.tool("a", "t")
    wf.tool("c", "t", args={"x": a.output})
    done = wf.done()
    done.steps[1].args = {"x": "${steps.ghost.output}"}
    with pytest.raises(ValidationError, match="ghost"):
        done.validate()
    done.steps[1].args = {"x": a.output}
    done.steps[0].needs.append("c")
    with pytest.raises(ValidationError, match="cycle: a → c → a|cycle: c → a → c"):
        done.validate()
