"""The ChatModel contract against a local server speaking the chat-completions wire format."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import BaseModel

from emergent.errors import LLMError, LLMOutputError
from emergent.providers.llm import OpenAIChatModel, get_chat_model, strategy_of, tool_spec


class Verdict(BaseModel):
    title: str
    confidence: float


def model(server, **kw):
    kw.setdefault("backoff", 0.01)
    return OpenAIChatModel("fake-model", base_url=server.base_url, api_key="sk-test", **kw)


def test_unconfigured_model_is_none_and_strategy_is_template():
    assert get_chat_model(None) is None
    assert get_chat_model("") is None
    assert strategy_of(None) == "template"


def test_chat_returns_content_and_accounts_tokens_and_latency(llm_server):
    llm_server.default = {"content": "hello"}
    m = model(llm_server)
    r = m.chat([{"role": "user", "content": "hi"}])
    assert r.content == "hello" and r.prompt_tokens == 11 and r.completion_tokens == 7 and r.attempts == 1
    assert llm_server.requests[0]["path"] == "/v1/chat/completions"
    assert llm_server.requests[0]["auth"] == "Bearer sk-test"
    u = m.usage.as_dict()
    assert u["calls"] == 1 and u["prompt_tokens"] == 11 and u["latency_ms"] > 0
    assert strategy_of(m) == "llm:fake-model"


def test_structured_output_parses_into_pydantic_and_sends_the_schema(llm_server):
    llm_server.default = {"content": json.dumps({"title": "Raise timeout", "confidence": 0.8})}
    v = model(llm_server).structured([{"role": "user", "content": "x"}], Verdict)
    assert v == Verdict(title="Raise timeout", confidence=0.8)
    rf = llm_server.requests[0]["body"]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"]["required"] == ["title", "confidence"]


def test_tool_calls_are_parsed(llm_server):
    llm_server.default = {"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "recall", "arguments": '{"q": "tea", "k": 3}'}}]}
    tools = [tool_spec("recall", "search memory", {"type": "object", "properties": {"q": {"type": "string"}}})]
    r = model(llm_server).chat([{"role": "user", "content": "x"}], tools=tools)
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls[0].name == "recall" and r.tool_calls[0].arguments == {"q": "tea", "k": 3}
    assert llm_server.requests[0]["body"]["tools"][0]["function"]["name"] == "recall"


def test_invalid_json_is_reasked_once_then_a_clear_error(llm_server):
    llm_server.default = {"content": "Sure! Here is my answer: title=foo"}
    m = model(llm_server)
    with pytest.raises(LLMOutputError, match="does not match Verdict after 2 answers") as ei:
        m.structured([{"role": "user", "content": "x"}], Verdict)
    assert ei.value.reason == "invalid_json" and len(llm_server.requests) == 2
    assert "template" in ei.value.hint


def test_invalid_json_then_valid_json_succeeds(llm_server):
    llm_server.script = [{"content": "{not json"}, {"content": '{"title": "t", "confidence": 0.5}'}]
    assert model(llm_server).structured([{"role": "user", "content": "x"}], Verdict).title == "t"


def test_refusal_is_not_retried(llm_server):
    llm_server.default = {"content": None, "refusal": "I can't help with that."}
    with pytest.raises(LLMOutputError, match="refused") as ei:
        model(llm_server).chat([{"role": "user", "content": "x"}])
    assert ei.value.reason == "refusal" and len(llm_server.requests) == 1


def test_429_and_500_are_retried_a_bounded_number_of_times(llm_server):
    llm_server.script = [("status", 429, "slow down"), ("status", 500, "boom"), {"content": "fine"}]
    m = model(llm_server, max_retries=2)
    assert m.chat([{"role": "user", "content": "x"}]).attempts == 3
    llm_server.default = ("status", 500, "still broken")
    with pytest.raises(LLMError, match=r"HTTP 500.*gave up after 3 attempts") as ei:
        m.chat([{"role": "user", "content": "x"}])
    assert ei.value.status == 500 and len(llm_server.requests) == 6
    assert m.usage.failures == 1 and m.usage.retries == 4


def test_client_errors_fail_at_once_with_a_remedy(llm_server):
    llm_server.default = ("status", 401, "bad key")
    with pytest.raises(LLMError, match="HTTP 401") as ei:
        model(llm_server, max_retries=3).chat([{"role": "user", "content": "x"}])
    assert "EMERGENT_LLM_API_KEY" in ei.value.hint and len(llm_server.requests) == 1


def test_timeout_is_retried_then_reported(llm_server):
    llm_server.default = ("sleep", 1.0)
    m = model(llm_server, timeout=0.2, max_retries=1)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match="did not answer in time.*2 attempts") as ei:
        m.chat([{"role": "user", "content": "x"}])
    assert ei.value.reason == "timeout" and time.perf_counter() - t0 < 2.0


def test_malformed_body_is_a_clear_error(llm_server):
    llm_server.default = ("raw", b"<html>gateway</html>")
    with pytest.raises(LLMError, match="not valid chat-completions JSON|no choices"):
        model(llm_server, max_retries=1).chat([{"role": "user", "content": "x"}])
    assert len(llm_server.requests) == 2


def test_unreachable_endpoint_names_the_setting():
    m = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=1)
    with pytest.raises(LLMError, match="cannot reach") as ei:
        m.chat([{"role": "user", "content": "x"}])
    assert "EMERGENT_LLM_BASE_URL" in ei.value.hint


def test_workstation_llm_follows_settings(llm_server, tmp_path):
    from emergent import Workstation

    with Workstation.open(tmp_path / "w", embedder="hashing") as ws:
        assert ws.llm is None
    with Workstation.open(tmp_path / "w2", embedder="hashing", llm_model="fake-model",
                          llm_base_url=llm_server.base_url) as ws:
        assert ws.llm.id == "fake-model" and ws.llm.chat([{"role": "user", "content": "x"}]).content == "ok"
