"""A local HTTP server that speaks the OpenAI chat-completions wire format, answering from a script.

It is what the assistant's tests and ``emergent bench assistant`` talk to through the real ``openai``
client (no internet, no model): JSON answers and server-sent-event streams exactly as the API sends
them, including tool calls split across chunks. Each request takes the next step of ``script`` (or
``default`` when the script is empty). A step is:

- a dict: the assistant message to answer with (``content``, ``tool_calls``, optional ``finish_reason``);
- a callable ``(request body) -> step``, to answer from what was asked;
- ``("status", code, message)``: an HTTP error with the API's error body (429, 500, ...);
- ``("sleep", seconds)``: answer nothing for that long (a client timeout), then a plain answer;
- ``("raw", bytes)``: a malformed body.

Written by hand (``http.server``, no framework): a dozen lines of wire format, and the server must
start in milliseconds inside a test or a benchmark.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = dict[str, Any] | tuple[Any, ...] | Callable[[dict[str, Any]], Any]


def completion(message: dict[str, Any], *, model: str = "local-model", finish: str = "stop",
               prompt_tokens: int = 11, completion_tokens: int = 7) -> dict[str, Any]:
    """A ``chat.completion`` object answering with ``message``."""
    return {
        "id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def chunks(message: dict[str, Any], *, model: str = "local-model", finish: str = "stop",
           prompt_tokens: int = 11, completion_tokens: int = 7, piece: int = 4) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects a stream of ``message`` is made of: the text in pieces of
    ``piece`` characters, each tool call's arguments in two halves, then the usage chunk."""
    def chunk(delta: dict[str, Any], fin: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": fin, "logprobs": None}]}

    out = [chunk({"role": "assistant", "content": ""})]
    text = message.get("content") or ""
    out += [chunk({"content": text[i:i + piece]}) for i in range(0, len(text), piece)]
    for i, tc in enumerate(message.get("tool_calls") or []):
        args = tc["function"].get("arguments", "")
        half = len(args) // 2
        out.append(chunk({"tool_calls": [{"index": i, "id": tc.get("id", f"call_{i}"), "type": "function",
                                          "function": {"name": tc["function"]["name"], "arguments": args[:half]}}]}))
        out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    out.append(chunk({}, finish))
    out.append({"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}})
    return out


def tool_call(name: str, arguments: dict[str, Any] | str, call_id: str = "call_1") -> dict[str, Any]:
    """One ``tool_calls`` entry (``arguments`` as a dict, or a raw string to send malformed JSON)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


class LocalOpenAIServer:
    """A scripted chat-completions endpoint on a free loopback port (``base_url`` ends in ``/v1``)."""

    def __init__(self, script: list[Step] | None = None, default: Step | None = None) -> None:
        self.script: list[Step] = list(script or [])
        self.default: Step = default if default is not None else {"content": "ok"}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server._lock:
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
                    self._send(step[1], json.dumps({"error": {"message": step[2], "type": "local"}}).encode())
                    return
                if isinstance(step, tuple) and step[0] == "raw":
                    self._send(200, step[1])
                    return
                msg = dict(step)
                finish = msg.pop("finish_reason", "tool_calls" if msg.get("tool_calls") else "stop")
                model = body.get("model", "local-model")
                if body.get("stream"):
                    self._stream(chunks(msg, model=model, finish=finish))
                else:
                    self._send(200, json.dumps(completion(msg, model=model, finish=finish)).encode())

            def _stream(self, parts: list[dict[str, Any]]) -> None:
                data = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in parts) + b"data: [DONE]\n\n"
                self._send(200, data, "text/event-stream")

            def _send(self, code: int, payload: bytes, ctype: str = "application/json") -> None:
                try:
                    self.send_response(code)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="local-openai", daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LocalOpenAIServer", "chunks", "completion", "tool_call"]
