"""@tool: schemas from type hints and docstrings, validation that lists every bad field."""

import pytest

from emergent.errors import ToolExecutionError, UsageError, ValidationError
from emergent.tools import RetryPolicy, SideEffect, ToolContext, tool
from emergent.tools._semver import parse_range, split_ref


@tool(version="1.2.0", side_effect="write", permissions=("net",), retry=3, resource="channel")
def post(channel: str, text: str, ctx: ToolContext, urgent: bool = False, tags: list[str] | None = None) -> dict:
    """Post a message.

    Args:
        channel: where to post
        text: what to say
        urgent: ring a bell
    """
    return {"channel": channel, "actor": ctx.actor}


def test_schema_comes_from_hints_and_docstring_and_skips_the_context():
    s = post.args_schema
    assert s["required"] == ["channel", "text"]
    assert s["properties"]["channel"]["description"] == "where to post"
    assert s["properties"]["urgent"]["default"] is False and "ctx" not in s["properties"]
    assert s["additionalProperties"] is False
    assert post.description == "Post a message." and post.side_effect is SideEffect.WRITE
    assert post.retry == RetryPolicy(attempts=3) and post.result_schema == {"type": "object",
                                                                            "additionalProperties": True}


def test_validation_error_lists_every_bad_and_missing_field():
    with pytest.raises(ValidationError) as e:
        post.validate_args({"channel": 5, "urgent": "maybe", "extra": 1})
    msg = str(e.value)
    for field in ("channel", "text", "urgent", "extra"):
        assert f"{field}:" in msg
    assert len(e.value.invalid) == 4 and e.value.fields["invalid"] == e.value.invalid


def test_non_mapping_arguments_are_refused():
    with pytest.raises(ValidationError, match="must be an object"):
        post.validate_args(["a"])


def test_wrong_result_type_is_reported():
    @tool
    def count(x: int) -> int:
        """Count."""
        return "many"  # type: ignore[return-value]

    with pytest.raises(ToolExecutionError, match="returned str"):
        count.check_result(count.invoke(count.validate_args({"x": 1})))


def test_parameter_without_hint_or_with_varargs_is_a_usage_error():
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(UsageError, match="no type hint"):
        tool(untyped)
    with pytest.raises(UsageError, match=r"\*"):
        @tool
        def f(*args: int) -> int:
            return 0


def test_bad_version_name_and_level_are_refused():
    with pytest.raises(ValidationError, match="semantic version"):
        tool(version="1.2")(post.func)
    with pytest.raises(ValidationError, match="not valid"):
        tool(name="Bad Name")(post.func)
    with pytest.raises(ValidationError, match="side-effect"):
        tool(side_effect="nuclear")(post.func)


def test_class_tools_use_their_run_method():
    @tool(version="2.0.0")
    class WordCount:
        def run(self, text: str) -> int:
            """Count words. :param text: the text"""
            return len(text.split())

    assert WordCount.name == "word_count"
    assert WordCount.invoke(WordCount.validate_args({"text": "a b c"})) == 3
    assert WordCount.args_schema["properties"]["text"]["description"] == "the text"


def test_direct_call_bypasses_the_gate_but_gets_a_context_that_acts_for_no_one():
    assert post("c", "t") == {"channel": "c", "actor": ""}  # no principal: nobody is impersonated
    assert ToolContext().principal is None


@pytest.mark.parametrize(("rng", "inside", "outside"), [
    ("^1.2", ["1.2.0", "1.9.9"], ["2.0.0", "1.1.9"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
    ("~1.4", ["1.4.0", "1.4.7"], ["1.5.0"]),
    ("1.4.2", ["1.4.2"], ["1.4.3"]),
    (">=1,<3", ["1.0.0", "2.9.0"], ["3.0.0"]),
])
def test_caret_tilde_and_pep440_ranges(rng, inside, outside):
    s = parse_range(rng)
    assert all(s.contains(v) for v in inside) and not any(s.contains(v) for v in outside)


def test_refs_split_and_bad_ranges_fail():
    assert split_ref("files.read@^1.2") == ("files.read", "^1.2") and split_ref("x") == ("x", "*")
    with pytest.raises(ValidationError):
        parse_range("^banana")
