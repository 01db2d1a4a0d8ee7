"""Language models: a small ``ChatModel`` contract over the ``openai`` client.

Any OpenAI-compatible endpoint works (OpenAI, Azure, vLLM, Ollama, llama.cpp): set
``EMERGENT_LLM_BASE_URL``, ``EMERGENT_LLM_API_KEY`` and ``EMERGENT_LLM_MODEL``. Without a model,
:func:`get_chat_model` returns ``None`` and every service that could use one runs its deterministic
strategy instead, recording which strategy produced each result (see :func:`strategy_of`).

Retries are bounded and ours (the client's own retries are off): timeouts, dropped connections,
429 and 5xx are retried ``max_retries`` times with exponential backoff, everything else fails at
once with an :class:`~emergent.errors.LLMError` that names the endpoint, the status and the remedy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from emergent.errors import ConfigError, LLMError, LLMOutputError, MissingExtraError
from emergent.registry import Registry

M = TypeVar("M", bound=BaseModel)
Message = dict[str, Any]
TEMPLATE = "template"


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class ChatResult:
    """One completed chat call (after retries)."""

    content: str | None
    tool_calls: list[ToolCall]
    model: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    attempts: int


@dataclass
class Usage:
    """Token and latency accounting of one model, thread-safe."""

    calls: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, ok: bool, attempts: int, prompt: int = 0, completion: int = 0, ms: float = 0.0) -> None:
        with self._lock:
            self.calls += 1
            self.failures += 0 if ok else 1
            self.retries += max(0, attempts - 1)
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.latency_ms += ms

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        d["mean_latency_ms"] = self.latency_ms / self.calls if self.calls else 0.0
        return d


@runtime_checkable
class ChatModel(Protocol):
    """The contract every language model backend meets."""

    id: str
    usage: Usage

    def chat(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] | None = None,
             json_output: bool = False, temperature: float = 0.0, max_tokens: int | None = None) -> ChatResult: ...

    def structured(self, messages: Sequence[Message], schema: type[M], *, temperature: float = 0.0) -> M: ...


def strategy_of(model: ChatModel | None) -> str:
    """The name recorded beside a result: ``llm:<model id>`` or ``template``."""
    return f"llm:{model.id}" if model is not None else TEMPLATE


def tool_spec(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``tools`` entry from a JSON schema of the arguments."""
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


# ------------------------------------------------------------------------------ openai backend
_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIChatModel:
    """A chat model behind any OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 2, backoff: float = 0.5,
                 schema_mode: str = "json_schema") -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - the extra is part of [all]
            raise MissingExtraError("the OpenAI-compatible chat model", "openai", "openai") from exc
        if not model:
            raise ConfigError("no LLM model name given", hint="set EMERGENT_LLM_MODEL, e.g. gpt-4o-mini")
        if not 0 <= max_retries <= 10:
            raise ConfigError(f"max_retries must be in [0, 10], got {max_retries}")
        if schema_mode not in ("json_schema", "json_object"):
            raise ConfigError(f"unknown schema_mode {schema_mode!r}", hint="use 'json_schema' or 'json_object'")
        self.id = model
        self.base_url = base_url or "https://api.openai.com/v1"
        self.max_retries = max_retries
        self.backoff = backoff
        self.schema_mode = schema_mode
        self.usage = Usage()
        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout,
                                     max_retries=0)

    # -------------------------------------------------------------- public
    def chat(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] | None = None,
             json_output: bool = False, temperature: float = 0.0, max_tokens: int | None = None,
             response_format: dict[str, Any] | None = None) -> ChatResult:
        kwargs: dict[str, Any] = {"model": self.id, "messages": list(messages), "temperature": temperature}
        if tools:
            kwargs["tools"] = list(tools)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        elif json_output:
            kwargs["response_format"] = {"type": "json_object"}
        return self._call(kwargs)

    def stream(self, messages: Sequence[Message], *, on_token: Callable[[str], None],
               tools: Sequence[dict[str, Any]] | None = None, temperature: float = 0.0,
               max_tokens: int | None = None) -> ChatResult:
        """Like :meth:`chat`, with the answer's text handed to ``on_token`` as it arrives.

        Retries (same policy as :meth:`chat`) happen only before the first token: once text was
        shown, a failure is an error, never a second, different answer appended to the first."""
        kwargs: dict[str, Any] = {"model": self.id, "messages": list(messages), "temperature": temperature,
                                  "stream": True, "stream_options": {"include_usage": True}}
        if tools:
            kwargs["tools"] = list(tools)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        shown = [False]

        def emit(text: str) -> None:
            shown[0] = True
            on_token(text)

        return self._call(kwargs, lambda resp, attempts, t0: self._collect(resp, attempts, t0, emit),
                          retry_ok=lambda: not shown[0])

    def structured(self, messages: Sequence[Message], schema: type[M], *, temperature: float = 0.0,
                   output_retries: int = 1) -> M:
        """Ask for JSON matching ``schema`` and validate it; re-ask ``output_retries`` times on bad JSON."""
        msgs = list(messages)
        rf = ({"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()}}
              if self.schema_mode == "json_schema" else {"type": "json_object"})
        problem = ""
        for _ in range(output_retries + 1):
            result = self.chat(msgs, temperature=temperature, response_format=rf)
            text = (result.content or "").strip()
            try:
                return schema.model_validate_json(_strip_fence(text))
            except PydanticValidationError as exc:
                problem = _short(exc)
                msgs = [*msgs, {"role": "assistant", "content": text},
                        {"role": "user", "content": f"That was not valid JSON for the schema ({problem}). "
                                                    "Answer again with only the JSON object."}]
        raise LLMOutputError(
            f"model {self.id!r} at {self.base_url} returned JSON that does not match {schema.__name__} "
            f"after {output_retries + 1} answers: {problem}",
            hint="use a model that supports JSON output, or unset EMERGENT_LLM_MODEL to use templates",
            model=self.id, schema=schema.__name__, reason="invalid_json",
        )

    # -------------------------------------------------------------- internals
    def _call(self, kwargs: dict[str, Any], read: Callable[[Any, int, float], ChatResult] | None = None,
              retry_ok: Callable[[], bool] = lambda: True) -> ChatResult:
        t0 = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            try:
                resp = self._client.chat.completions.create(**kwargs)
                result = (read(resp, attempts, t0) if read is not None
                          else self._result(resp, attempts, (time.perf_counter() - t0) * 1e3))
            except Exception as exc:
                err, retryable = self._classify(exc)
                if retryable and attempts <= self.max_retries and retry_ok():
                    time.sleep(min(self.backoff * 2 ** (attempts - 1), 10.0))
                    continue
                self.usage.add(ok=False, attempts=attempts, ms=(time.perf_counter() - t0) * 1e3)
                if retryable:
                    err = LLMError(f"{err.message} (gave up after {attempts} attempts)", hint=err.hint,
                                   **{**err.fields, "attempts": attempts})
                raise err from exc
            self.usage.add(ok=True, attempts=attempts, prompt=result.prompt_tokens,
                           completion=result.completion_tokens, ms=result.latency_ms)
            return result

    def _result(self, resp: Any, attempts: int, ms: float) -> ChatResult:
        if isinstance(resp, str) or not getattr(resp, "choices", None):
            raise LLMError(f"model {self.id!r} at {self.base_url} sent a reply with no choices",
                           hint="check that the endpoint speaks the OpenAI chat-completions API",
                           reason="malformed")
        choice = resp.choices[0]
        msg = choice.message
        refusal = getattr(msg, "refusal", None)
        if refusal or choice.finish_reason == "content_filter":
            raise LLMOutputError(f"model {self.id!r} refused: {refusal or 'content filter'}",
                                 hint="rephrase the request, or unset EMERGENT_LLM_MODEL to use templates",
                                 reason="refusal", model=self.id)
        calls = []
        for tc in msg.tool_calls or []:
            try:
                args = json.loads(tc.function.arguments or "{}")
            except json.JSONDecodeError as exc:
                raise LLMOutputError(f"model {self.id!r} called tool {tc.function.name!r} with arguments that "
                                     f"are not JSON: {tc.function.arguments[:200]!r}", reason="invalid_json",
                                     model=self.id) from exc
            calls.append(ToolCall(tc.id, tc.function.name, args))
        usage = getattr(resp, "usage", None)
        return ChatResult(msg.content, calls, getattr(resp, "model", self.id) or self.id, choice.finish_reason,
                          int(getattr(usage, "prompt_tokens", 0) or 0),
                          int(getattr(usage, "completion_tokens", 0) or 0), ms, attempts)

    def _collect(self, stream: Any, attempts: int, t0: float, emit: Callable[[str], None]) -> ChatResult:
        """A streamed answer put together: text deltas go to ``emit``; tool-call deltas are joined by index."""
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish, model, prompt, completion = None, self.id, 0, 0
        seen = 0
        for chunk in stream:
            seen += 1
            model = getattr(chunk, "model", None) or model
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
                completion = int(getattr(usage, "completion_tokens", 0) or 0)
            for choice in getattr(chunk, "choices", None) or []:
                delta = choice.delta
                if getattr(delta, "refusal", None):
                    raise LLMOutputError(f"model {self.id!r} refused: {delta.refusal}", reason="refusal",
                                         hint="rephrase the request, or unset EMERGENT_LLM_MODEL to use templates",
                                         model=self.id)
                if delta.content:
                    text.append(delta.content)
                    emit(delta.content)
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
                finish = choice.finish_reason or finish
        if finish is None and not text and not calls:
            raise LLMError(f"model {self.id!r} at {self.base_url} sent a stream with "
                           f"{'no chunks' if not seen else 'no answer and no end'}",
                           hint="check that the endpoint speaks the OpenAI chat-completions API (with stream=true)",
                           reason="malformed")
        if finish == "content_filter":
            raise LLMOutputError(f"model {self.id!r} refused: content filter", reason="refusal", model=self.id,
                                 hint="rephrase the request, or unset EMERGENT_LLM_MODEL to use templates")
        parsed = []
        for i in sorted(calls):
            c = calls[i]
            try:
                args = json.loads(c["arguments"] or "{}")
            except json.JSONDecodeError as exc:
                raise LLMOutputError(f"model {self.id!r} called tool {c['name']!r} with arguments that are not "
                                     f"JSON: {c['arguments'][:200]!r}", reason="invalid_json", model=self.id) from exc
            parsed.append(ToolCall(c["id"] or f"call_{i}", c["name"], args if isinstance(args, dict) else {}))
        return ChatResult("".join(text) or None, parsed, model, finish, prompt, completion,
                          (time.perf_counter() - t0) * 1e3, attempts)

    def _classify(self, exc: Exception) -> tuple[LLMError, bool]:
        """An :class:`LLMError` for ``exc`` and whether retrying could help."""
        o = self._openai
        where = f"model {self.id!r} at {self.base_url}"
        if isinstance(exc, LLMError):
            return exc, False
        if isinstance(exc, o.APITimeoutError):
            return LLMError(f"{where} did not answer in time", reason="timeout",
                            hint="raise the timeout or check the server load"), True
        if isinstance(exc, o.APIConnectionError):
            return LLMError(f"cannot reach {where}: {exc}", reason="connection",
                            hint="check EMERGENT_LLM_BASE_URL and that the server is running"), True
        if isinstance(exc, o.APIStatusError):
            status = exc.status_code
            hint = {401: "check EMERGENT_LLM_API_KEY", 403: "check EMERGENT_LLM_API_KEY and its permissions",
                    404: "check EMERGENT_LLM_MODEL and EMERGENT_LLM_BASE_URL (it usually ends in /v1)",
                    429: "the endpoint is rate limiting: wait, or lower the request rate"}.get(
                status, "retry later; if it persists check the server's logs")
            return LLMError(f"{where} answered HTTP {status}: {_body(exc)}", hint=hint, reason="status",
                            status=status), status in _RETRYABLE_STATUS
        if isinstance(exc, (o.APIResponseValidationError, json.JSONDecodeError, ValueError, AttributeError,
                            TypeError)):
            return LLMError(f"{where} sent a reply that is not valid chat-completions JSON: {exc}",
                            reason="malformed",
                            hint="check that the endpoint speaks the OpenAI chat-completions API"), True
        return LLMError(f"{where} failed: {type(exc).__name__}: {exc}", reason="unknown"), False


def _body(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    return str(body if body is not None else exc)[:300]


def _strip_fence(text: str) -> str:
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def _short(exc: PydanticValidationError) -> str:
    errs = exc.errors()
    first = errs[0] if errs else {"msg": str(exc), "loc": ()}
    loc = ".".join(str(x) for x in first.get("loc", ()))
    return f"{len(errs)} error(s), first: {loc + ': ' if loc else ''}{first.get('msg')}"


# ------------------------------------------------------------------------------ registry
LLMS: Registry[Any] = Registry("LLM provider", group="emergent.llms")
LLMS.register("openai", OpenAIChatModel)


def get_chat_model(model: str | None, *, base_url: str | None = None, api_key: str | None = None,
                   **options: Any) -> ChatModel | None:
    """The configured chat model, or ``None`` when no model is set (deterministic strategies).

    ``model`` is ``<name>`` (OpenAI-compatible) or ``<provider>:<name>`` for a registered provider.
    """
    if not model:
        return None
    provider, _, name = model.partition(":")
    if name and provider in LLMS:
        return LLMS.get(provider)(name, base_url=base_url, api_key=api_key, **options)  # type: ignore[no-any-return]
    return OpenAIChatModel(model, base_url=base_url, api_key=api_key, **options)


__all__ = ["LLMS", "TEMPLATE", "ChatModel", "ChatResult", "OpenAIChatModel", "ToolCall", "Usage",
           "get_chat_model", "strategy_of", "tool_spec"]
