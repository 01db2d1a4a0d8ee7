"""What the assistant does without a model: explicit commands, and answers made of the best passages.

Deterministic by construction: the same memories and the same question give the same answer. A
passage is the sentence (or two) of a recalled memory that shares the most words with the question,
so a long note answers with the part that matters, with the memory's id as its source.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from dataclasses import dataclass
from typing import Any

from emergent.errors import ValidationError

COMMANDS = {
    "/remember": "/remember TEXT — keep TEXT in the assistant's memory",
    "/recall": "/recall QUERY — the memories that best match QUERY",
    "/tool": "/tool NAME {json} (or NAME key=value ...) — run a tool through the gate",
    "/approve": "/approve ID [reason] — approve a pending request (and continue the run waiting on it)",
    "/reject": "/reject ID [reason] — reject a pending request (the run is told why)",
    "/status": "/status — who the assistant is, its mode, its waiting runs",
    "/help": "/help — this list",
}
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_'-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP_WORDS = """a an and are as at be been but by can could did do does for from had has have how i if in
into is it its me my no not of on or our so that the their them then there these they this to was we were what
when where which who why will with would you your about did does done any some than"""
_STOP = frozenset(_STOP_WORDS.split())
_SURROGATE = re.compile("[\ud800-\udfff]")
#: control characters a terminal acts on (ESC sequences, \r, C1), kept out of everything a run shows
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """``text`` as a run may show it: no lone surrogates (U+FFFD instead: it must stay encodable for
    the audit and SQL) and no control characters but tab and newline (a terminal would act on them)."""
    return _CONTROL.sub("", _SURROGATE.sub("\ufffd", text))


@dataclass(frozen=True)
class Command:
    name: str  # "remember", "recall", "tool", "approve", "reject", "status", "help"
    text: str = ""
    tool: str = ""
    args: dict[str, Any] | None = None
    target: str = ""


def parse_command(text: str) -> Command | None:
    """The command ``text`` spells, None for plain text; a malformed command is a ValidationError."""
    t = text.strip()
    if not t.startswith("/"):
        return None
    head, _, rest = t.partition(" ")
    rest = rest.strip()
    name = head.lower()
    if name not in COMMANDS:
        raise ValidationError(f"unknown command {head!r}", hint="commands: " + ", ".join(sorted(COMMANDS)))
    if name in ("/remember", "/recall") and not rest:
        raise ValidationError(f"{head} needs text", hint=COMMANDS[name])
    if name == "/tool":
        tool, _, raw = rest.partition(" ")
        if not tool:
            raise ValidationError("/tool needs a tool name", hint=COMMANDS[name])
        return Command("tool", tool=tool, args=_tool_args(raw.strip()))
    if name in ("/approve", "/reject"):
        target, _, reason = rest.partition(" ")
        if not target:
            raise ValidationError(f"{head} needs an approval id", hint=COMMANDS[name])
        return Command(name[1:], text=reason.strip(), target=target)
    return Command(name[1:], text=rest)


def _tool_args(raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"the tool's arguments are not JSON: {exc.msg} at character {exc.pos}",
                                  hint='write them as a JSON object, e.g. /tool memory.recall {"query": "x"}') from None
        if not isinstance(value, dict):
            raise ValidationError("the tool's arguments must be a JSON object", hint='e.g. {"query": "x"}')
        return _encodable(value)
    out: dict[str, Any] = {}
    for part in shlex.split(raw):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValidationError(f"argument {part!r} is not key=value", hint="write key=value pairs or a JSON object")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return _encodable(out)


def _encodable(args: dict[str, Any]) -> dict[str, Any]:
    """``args``, refused when a JSON escape made a lone surrogate (no UTF-8 for it: the audit would fail)."""
    if _SURROGATE.search(json.dumps(args, ensure_ascii=False)):
        raise ValidationError("the tool's arguments contain a lone surrogate (a \\ud800-\\udfff escape)",
                              hint="write the text as plain Unicode")
    return args


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP}


def passage(question: str, text: str, *, limit: int = 400) -> str:
    """The sentence of ``text`` sharing most words with ``question`` (with the next one when short)."""
    sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
    if len(sentences) <= 1:
        return _clip(text.strip(), limit)
    q = words(question)
    best = max(range(len(sentences)), key=lambda i: (len(q & words(sentences[i])), -i))
    out = sentences[best]
    if len(out) < 80 and best + 1 < len(sentences):
        out = f"{out} {sentences[best + 1]}"
    return _clip(out, limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def answer_from_memory(question: str, hits: list[dict[str, Any]], *, n: int = 3) -> str:
    """The offline answer: the best passages of the best memories, each with its memory id."""
    if not hits:
        return ("I have no memories about that yet. Teach me with /remember TEXT (or ingest notes into my "
                "scope), or configure a model (EMERGENT_LLM_MODEL) so I can plan with tools.")
    lines = [f"{i}. {passage(question, h['text'])} [{h['id']}]" for i, h in enumerate(hits[:n], 1)]
    return "From memory (offline: no model is configured, so these are my best passages):\n" + "\n".join(lines)


_HIDDEN = frozenset({"Cf", "Cc", "Co", "Cs", "Zl", "Zp"})


def visible(text: str) -> str:
    """``text`` as a person deciding on it must see it: format, control, private-use and surrogate
    characters (bidi overrides such as U+202E, zero-width spaces, ...) written as ``\\uXXXX``, so an
    approval card never shows something other than what will run. Tab and newline stay."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c in "\t\n" or unicodedata.category(c) not in _HIDDEN else f"\\u{ord(c):04x}"
                   for c in text)


def args_json(args: Any) -> str:
    """A tool call's arguments as JSON a person can read and trust (see :func:`visible`)."""
    try:
        return visible(json.dumps(args, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return visible(repr(args))


def inert_markdown(text: str) -> str:
    """Markdown that cannot make a browser fetch anything by itself: no image (``![x](url)`` would be
    loaded with no click, carrying whatever an injected answer put in its URL) and no raw HTML."""
    return text.replace("<", "&lt;").replace("![", "!\\[")


def format_result(value: Any, *, limit: int = 2000) -> str:
    """A tool's result as text for a chat and for the model (JSON when it is data)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False, indent=None)
        except (TypeError, ValueError):
            text = repr(value)
    return _clip(shown(text), limit)


__all__ = ["COMMANDS", "Command", "answer_from_memory", "format_result", "parse_command", "passage", "shown"]
