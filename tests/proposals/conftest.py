"""A local HTTP server that speaks the OpenAI chat-completions wire format, scripted per test.

Each request takes the next step of ``server.script`` (or ``server.default`` when the script is
empty). A step is one of: a dict (the assistant message to answer with), ``("status", code, body)``,
``("sleep", seconds)`` (answers nothing in time), ``("raw", bytes)`` (a malformed body).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def completion(message: dict[str, Any], *, model: str = "fake-model", finish: str = "stop",
               prompt_tokens: int = 11, completion_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class FakeLLMServer:
    def __init__(self) -> None:
        self.script: list[Any] = []
        self.default: Any = {"content": "ok"}
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                server.requests.append({"path": self.path, "body": body,
                                        "auth": self.headers.get("authorization")})
                step = server.script.pop(0) if server.script else server.default
                if callable(step):
                    step = step(body)
                self._answer(step, body)

            def _answer(self, step: Any, body: dict[str, Any]) -> None:
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                    step = {"content": "too late"}
                if isinstance(step, tuple) and step[0] == "status":
                    self._send(step[1], json.dumps({"error": {"message": step[2], "type": "test"}}).encode())
                elif isinstance(step, tuple) and step[0] == "raw":
                    self._send(200, step[1])
                else:
                    msg = dict(step)
                    finish = msg.pop("finish_reason", "tool_calls" if msg.get("tool_calls") else "stop")
                    self._send(200, json.dumps(completion(msg, model=body.get("model", "fake"),
                                                          finish=finish)).encode())

            def _send(self, code: int, payload: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    yield server
    server.close()
