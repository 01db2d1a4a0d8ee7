"""LLM extraction and community labels through a local OpenAI-compatible server (real wire format)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from graph_helpers import make_graph, rec

from emergent.graph import LLMExtractor


class FakeOpenAI(BaseHTTPRequestHandler):
    replies: list[str] = []
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append(body)
        content = FakeOpenAI.replies.pop(0) if FakeOpenAI.replies else "not json"
        out = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content}}],
               "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model() -> Iterator[object]:
    from emergent.providers.llm import OpenAIChatModel

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeOpenAI.replies, FakeOpenAI.requests = [], []
    yield OpenAIChatModel("fake-model", base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="x",
                          max_retries=0)
    server.shutdown()


def test_llm_extraction_uses_structured_output_and_falls_back_to_rules(tmp_path: Path, model) -> None:
    FakeOpenAI.replies = [json.dumps({"entities": [{"name": "Ada Lovelace", "type": "person"},
                                                   {"name": "Analytical Engine", "type": "machine"}],
                                      "relations": [{"source": "Ada Lovelace", "relation": "wrote programs for",
                                                     "target": "Analytical Engine"}]}),
                          "this is not json", "still not json"]
    kg = make_graph(tmp_path, llm=model)
    assert isinstance(kg.extractor, LLMExtractor)
    r1 = kg.add_memories([rec("l1", "ada wrote notes on the engine", speaker="Babbage")])
    assert r1.strategy == "llm:fake-model"
    assert FakeOpenAI.requests[0]["response_format"]["type"] == "json_schema"
    ada = kg.find("Ada Lovelace", "a/u")
    assert ada.type == "person" and ada.origin == "llm:fake-model"
    assert [e.rel for e in kg.edges(ada.id) if e.rel != "mentions"] == ["wrote_programs_for"]
    r2 = kg.add_memories([rec("l2", "Charles Babbage met Ada Lovelace in London.")])
    assert r2.strategy == "rules (llm failed)" and kg.find("London", "a/u") is not None
    assert kg.check() == []


def test_community_labels_come_from_the_llm_when_configured(tmp_path: Path, model) -> None:
    from emergent.graph import RuleExtractor

    kg = make_graph(tmp_path, llm=model, extractor=RuleExtractor())
    kg.add_memories([rec("c1", "Alice met Bob and Carol in Paris.")])
    FakeOpenAI.replies = [json.dumps({"title": "Paris friends", "summary": "Alice, Bob and Carol met in Paris."})]
    comms = kg.communities()
    assert comms[0].label == "Paris friends" and comms[0].strategy == "llm"
