"""IPython magics: ``%load_ext emergent`` (done at start-up by the Emergent kernel).

* ``%remember [--kind K] [--importance X] [--scope S] [--ltm] TEXT`` and ``%%remember`` (the cell body
  is the memory);
* ``%recall [-k N] [--scope S] QUERY`` and ``%%recall`` (the cell body is the query) — a question
  mark at the end is part of the question, not IPython's help request (a cleanup input
  transformer turns the line into an explicit magic call first); a table of hits with their ids;
* ``%tool NAME {json args}`` or ``%tool NAME key=value ...`` (calls ``ws.tools`` when the workstation
  has tools, as the notebook's principal ``ws.principal``: the OS user running the kernel, or the
  agent or service ``EMERGENT_PRINCIPAL`` lowered it to; a call the gate asks about does not block
  the kernel: it names the approval to decide, and ``ws.tools.resume(id)`` runs it once approved);
* ``%emergent status`` (workspace, stores, jobs);
* ``%ask [--assistant NAME] QUESTION`` and ``%%ask [--assistant NAME]`` (the cell body is the
  question): ``ws.assistant(...).ask(text, user=ws.principal)``, shown as the answer, its sources,
  the mode, the tool steps and a pending approval with its id and how to decide it (a question
  mark at the end is part of the question; ``$`` and ``{...}`` are passed through, never expanded).

The workstation is the ``ws`` variable of the notebook when it holds one, else the one the
extension opened (``EMERGENT_HOME``). Coroutines returned by tools are awaited on a private loop in
a helper thread, so they work inside the kernel's running event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import inspect
import json
import re
import shlex
from collections.abc import Awaitable
from typing import Any, TypeVar

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from emergent.errors import EmergentError

T = TypeVar("T")


def run_sync(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` from sync code, also when an event loop is already running here (a Jupyter
    kernel): then it runs on a fresh loop in a helper thread instead of failing like asyncio.run."""

    async def main() -> T:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="emergent-async") as pool:
        return pool.submit(asyncio.run, main()).result()


class Hits(list):  # type: ignore[type-arg]
    """Recall hits that display as a table (with each memory's id, for get/forget/reinforce)."""

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{h.score:.3f}</td><td><code>{html.escape(h.record.id)}</code></td>"
                       f"<td>{html.escape(h.record.kind.value)}</td><td>{html.escape(h.text[:200])}</td></tr>"
                       for h in self)
        return f"<table><tr><th>score</th><th>id</th><th>kind</th><th>text</th></tr>{rows}</table>"

    def __repr__(self) -> str:
        return "\n".join(f"{h.score:.3f}  {h.record.id}  {h.text[:100]}" for h in self) or "(no memories)"


_QUESTION_MAGICS = ("recall", "ask")


_QUESTION_LINE = re.compile(r"^(?P<indent>\s*)(?:(?P<target>[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*)?"
                            r"%(?P<name>" + "|".join(_QUESTION_MAGICS) + r")[ \t]+(?P<body>.*\?)[ \t]*$")


def questions_are_not_help(lines: list[str]) -> list[str]:
    """IPython reads a line ending in ``?`` as a help request (``%recall what does Alice like?``
    → "Object `like` not found"). For our question-taking magics (also as ``hits = %recall ...?``),
    turn such a line into the explicit ``run_line_magic`` call before IPython's help transformer."""
    out = []
    for line in lines:
        m = _QUESTION_LINE.match(line.rstrip("\n"))
        if m:
            target = f"{m['target']} = " if m["target"] else ""
            line = f"{m['indent']}{target}get_ipython().run_line_magic({m['name']!r}, {m['body']!r})\n"
        out.append(line)
    return out


def _tool_args(rest: str) -> dict[str, Any]:
    rest = rest.strip()
    if not rest:
        return {}
    if rest.startswith("{"):
        try:
            return dict(json.loads(rest))
        except json.JSONDecodeError as exc:
            raise IPythonUsageError(f"%tool arguments are not valid JSON: {exc}") from None
    out: dict[str, Any] = {}
    for pair in shlex.split(rest):
        key, sep, raw = pair.partition("=")
        if not sep:
            raise IPythonUsageError(f"%tool argument {pair!r} is not key=value (or pass one JSON object)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@magics_class
class EmergentMagics(Magics):
    def __init__(self, shell: Any, ws: Any = None) -> None:
        super().__init__(shell)
        self._own_ws = ws

    @property
    def ws(self) -> Any:
        from emergent.workstation import Workstation

        user_ws = self.shell.user_ns.get("ws") if self.shell is not None else None
        if isinstance(user_ws, Workstation):
            return user_ws
        if self._own_ws is None:
            self._own_ws = Workstation.open()
        return self._own_ws

    @magic_arguments()
    @argument("--kind", default="episodic", help="episodic, semantic, procedural, ...")
    @argument("--importance", type=float, default=0.5)
    @argument("--scope", default=None)
    @argument("--ltm", action="store_true", help="write straight to long-term memory")
    @argument("text", nargs="*")
    @line_cell_magic
    def remember(self, line: str, cell: str | None = None) -> str:
        """%remember TEXT / %%remember: store a memory; returns its id."""
        args = parse_argstring(self.remember, line)
        text = cell if cell is not None else " ".join(args.text)
        if not text.strip():
            raise IPythonUsageError("nothing to remember: %remember TEXT, or %%remember with a cell body")
        rec = self._call(self.ws.memory.remember, text.strip("\n"), kind=args.kind, importance=args.importance,
                         scope=args.scope, tier="ltm" if args.ltm else "stm")
        return str(rec.id)

    @magic_arguments()
    @argument("-k", type=int, default=5)
    @argument("--scope", default=None)
    @argument("query", nargs="*")
    @line_cell_magic
    def recall(self, line: str, cell: str | None = None) -> Hits:
        """%recall QUERY / %%recall (the cell body is the query): the memories that best answer it."""
        args = parse_argstring(self.recall, line)
        query = cell.strip() if cell is not None else " ".join(args.query)
        if not query:
            raise IPythonUsageError("nothing to recall: %recall QUESTION, or %%recall with the question as the body")
        return Hits(self._call(self.ws.memory.recall, query, k=args.k, scope=args.scope))

    @line_magic
    def tool(self, line: str) -> Any:
        """%tool NAME {json} | key=value ...: call a tool of the workstation as ``ws.principal``."""
        name, _, rest = line.strip().partition(" ")
        if not name:
            raise IPythonUsageError("usage: %tool NAME {\"arg\": 1} or %tool NAME arg=1")
        tools = getattr(self.ws, "tools", None)
        if tools is None:
            raise IPythonUsageError("this workstation has no tools service (emergent.tools is not installed)")
        result = self._call(tools.call, name, _tool_args(rest), principal=self._call(lambda: self.ws.principal),
                            wait=False)
        return run_sync(result) if inspect.isawaitable(result) else result

    @line_magic
    def emergent(self, line: str) -> Any:
        """%emergent status: the workspace, its stores and its jobs."""
        sub = line.strip() or "status"
        if sub != "status":
            raise IPythonUsageError(f"unknown %emergent subcommand {sub!r}; try: %emergent status")
        status = self._call(self.ws.status)
        jobs = self._call(self.ws.jobs.list)
        status["jobs"] = {j.name: ("paused" if j.paused else "active") for j in jobs}
        return _Status(status)

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EmergentError as exc:
            raise IPythonUsageError(str(exc)) from None


    @no_var_expand
    @line_cell_magic
    def ask(self, line: str, cell: str | None = None) -> Answer:
        """%ask [--assistant NAME] QUESTION / %%ask [--assistant NAME] (the cell body is the question):
        ask the workstation's assistant as ``ws.principal``; shows the answer, sources, mode, tool
        steps and a pending approval. Commands pass through: /remember, /recall, /tool, /approve ..."""
        name, rest = _ask_options(line)
        text = (cell if cell is not None else rest).strip()
        if cell is not None and rest.strip():
            raise IPythonUsageError(f"%%ask takes only --assistant NAME on its first line, not {rest.strip()!r}; "
                                    "put the question in the cell body")
        if not text:
            raise IPythonUsageError("nothing to ask: %ask QUESTION, or %%ask with the question as the cell body")
        ws = self.ws
        bot = self._call(ws.assistant, name) if name else self._call(ws.assistant)
        return Answer(self._call(bot.ask, text, user=self._call(lambda: ws.principal)))


_ASK_OPTION = re.compile(r"^\s*--assistant(?:=|\s+)(?P<name>[^\s]+)")


def _ask_options(line: str) -> tuple[str | None, str]:
    """``--assistant NAME`` at the start of the line (the rest is the question, verbatim)."""
    m = _ASK_OPTION.match(line)
    if m:
        return m["name"], line[m.end():]
    if line.lstrip().startswith("--"):
        raise IPythonUsageError(f"%ask knows one option, --assistant NAME; not {line.split()[0]!r}")
    return None, line


class Answer:
    """An assistant's RunResult that displays as HTML (answer, sources, mode, steps, a pending
    approval) and as plain text; its fields are the RunResult's (``.answer``, ``.sources``, ...)."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def __getattr__(self, name: str) -> Any:
        if name == "result":  # not set yet (copy/pickle): never recurse
            raise AttributeError(name)
        return getattr(self.result, name)

    def _repr_html_(self) -> str:
        from emergent.ui.chat import result_html

        return result_html(self.result)

    def __repr__(self) -> str:
        from emergent.ui.chat import result_text

        return result_text(self.result)


class _Status(dict):  # type: ignore[type-arg]
    def __repr__(self) -> str:
        return json.dumps(self, indent=2, default=str)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics; put the workspace in ``ws`` unless the notebook already has one."""
    magics = EmergentMagics(ipython)
    ipython.register_magics(magics)
    cleanup = ipython.input_transformers_cleanup
    if questions_are_not_help not in cleanup:
        cleanup.append(questions_are_not_help)
    if "ws" not in ipython.user_ns:
        from emergent.workstation import Workstation

        magics._own_ws = Workstation.open()
        ipython.push({"ws": magics._own_ws})


def unload_ipython_extension(ipython: Any) -> None:
    ws = ipython.user_ns.get("ws")
    if ws is not None and hasattr(ws, "close"):
        ws.close()
