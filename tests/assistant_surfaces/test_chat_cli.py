"""``emergent chat`` as a user runs it: the installed console script in a subprocess, on a temporary
workspace with the hashing embedder (no model: offline). One-shot questions, a conversation on
stdin with ``/approve``, approvals decided with ``emergent approvals``, errors without tracebacks,
EOF and Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

EMERGENT = str(Path(sys.executable).with_name("emergent"))
WRITE = '/tool files.write {"path": "cli/out.txt", "content": "written from the terminal"}'
APPROVAL = re.compile(r"waiting for approval ([0-9a-f]{8,})")


@pytest.fixture
def env(home: Path, notes: list[str]) -> dict[str, str]:
    from emergent import Workstation

    with Workstation.open(home, embedder="hashing") as w:
        w.memory.ingest(notes, scope="assistant")
    return {**os.environ, "EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing", "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200", "NO_COLOR": "1"}


def emergent(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120) -> Any:
    return subprocess.run([EMERGENT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


def test_a_one_shot_question_answers_with_sources_and_mode(env: dict[str, str]) -> None:
    p = emergent(env, "chat", "Why did the ring buffer overflow?")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "recalled 3 passage(s)" in out and "4096" in out
    ids = re.findall(r"\[1\] memory (\S+):", out)
    assert ids and ids[0] in out.split("[1] memory")[0]  # the first source is cited in the answer
    assert "mode offline · completed" in out
    assert "Traceback" not in p.stdout + p.stderr


def test_a_one_shot_tool_call_waits_and_emergent_approvals_approve_finishes_the_run(env: dict[str, str],
                                                                                   home: Path) -> None:
    p = emergent(env, "chat", WRITE)
    assert p.returncode == 0, p.stderr
    assert "→ files.write" in p.stdout and "⏸ files.write waits for approval" in p.stdout
    (aid,) = set(APPROVAL.findall(p.stdout))
    assert f"emergent approvals approve {aid}" in p.stdout and "/approve" not in p.stdout  # nothing to type into
    assert not (home / "files" / "cli" / "out.txt").exists()

    done = emergent(env, "approvals", "approve", aid)
    assert done.returncode == 0, done.stderr
    assert f"{aid} approved by human:" in done.stdout
    assert re.search(r"assistant assistant run \S+: completed · mode offline", done.stdout)
    assert "files.write returned" in done.stdout
    assert (home / "files" / "cli" / "out.txt").read_text() == "written from the terminal"


def test_emergent_approvals_reject_tells_the_waiting_run(env: dict[str, str], home: Path) -> None:
    (aid,) = set(APPROVAL.findall(emergent(env, "chat", WRITE).stdout))
    p = emergent(env, "approvals", "reject", aid, "--reason", "not in this folder")
    assert p.returncode == 0, p.stderr
    assert "completed" in p.stdout and "did not run" in p.stdout and "not in this folder" in p.stdout
    assert not (home / "files" / "cli" / "out.txt").exists()


def test_json_prints_the_run(env: dict[str, str]) -> None:
    p = emergent(env, "chat", "--json", "What does Ana prefer?")
    assert p.returncode == 0, p.stderr
    run = json.loads(p.stdout)
    assert run["status"] == "completed" and run["mode"] == "offline" and "green tea" in run["answer"]
    assert run["sources"][0]["kind"] == "memory"


@pytest.mark.parametrize(("args", "message"), [
    (["chat", "/tool files.write {nope"], "not JSON"),
    (["chat", "   "], "the question is empty"),
    (["chat", "--assistant", "nobody", "hello"], ""),  # an agent principal created by the person: fine
])
def test_mistakes_print_a_message_and_a_hint_never_a_traceback(env: dict[str, str], args: list[str],
                                                               message: str) -> None:
    p = emergent(env, *args)
    assert "Traceback" not in p.stdout + p.stderr
    if message:
        assert p.returncode == 2, p.stderr
        assert re.search(rf"^error: .*{message}", p.stderr, re.M) and re.search(r"^hint: \S", p.stderr, re.M)
    else:
        assert p.returncode == 0 and "mode offline" in p.stdout


class Repl:
    """``emergent chat`` on pipes: send lines, wait for output."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([EMERGENT, "chat"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for ch in iter(lambda: self.proc.stdout.read(1), ""):  # type: ignore[union-attr]
            self.lines.put(ch)

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.seen)
            if m:
                self.seen = self.seen[m.end():]
                return m
            try:
                self.seen += self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{pattern!r} not seen; got:\n{self.seen}") from None

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


@pytest.fixture
def repl(env: dict[str, str]) -> Iterator[Repl]:
    r = Repl(env)
    yield r
    if r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)


def test_a_conversation_streams_steps_and_approves_a_call_typed_at_the_keyboard(repl: Repl, home: Path) -> None:
    repl.expect(r"you are human:\S+ · mode offline")
    repl.expect(r"you> ")
    repl.send("Why did the ring buffer overflow?")
    repl.expect(r"recalled 3 passage\(s\)")
    repl.expect(r"4096")
    repl.expect(r"mode offline · completed")
    repl.send(WRITE)
    aid = repl.expect(r"⏸ files.write waits for approval ([0-9a-f]+)[:\s]").group(1)
    repl.expect(rf"type /approve {aid}")
    repl.send(f"/approve {aid} ok from the keyboard")
    repl.expect(r"→ files.write")  # the resumed run's call, streamed
    repl.expect(r"← files.write ok")
    repl.expect(rf"approved {aid}; run \S+ is completed")
    repl.expect(r"you> ")
    assert (home / "files" / "cli" / "out.txt").read_text() == "written from the terminal"
    repl.proc.stdin.close()  # type: ignore[union-attr]  # Ctrl-D
    repl.expect(r"bye")
    assert repl.proc.wait(30) == 0
    assert "Traceback" not in repl.seen


def test_a_run_approved_elsewhere_is_picked_up_by_the_conversation(repl: Repl, env: dict[str, str]) -> None:
    repl.expect(r"you> ")
    repl.send(WRITE)
    aid = repl.expect(r"waits for approval ([0-9a-f]+)[:\s]").group(1)
    repl.expect(r"you> ")
    from emergent import Workstation

    with Workstation.open(env["EMERGENT_HOME"], embedder="hashing") as w:  # another process decides
        w.autonomy.approvals.approve(aid, by=w.principal, reason="from elsewhere")
    repl.send("/status")
    repl.expect(r"resumed: its approval was decided")
    repl.expect(r"files.write returned")
    repl.proc.stdin.close()  # type: ignore[union-attr]
    assert repl.proc.wait(30) == 0


def test_ctrl_c_at_the_prompt_leaves_cleanly(repl: Repl) -> None:
    repl.expect(r"you> ")
    repl.proc.send_signal(signal.SIGINT)
    repl.expect(r"bye")
    assert repl.proc.wait(30) == 0
    assert "Traceback" not in repl.seen and "KeyboardInterrupt" not in repl.seen


def test_a_mistake_in_a_conversation_is_shown_and_the_conversation_goes_on(repl: Repl) -> None:
    repl.expect(r"you> ")
    repl.send("/tool files.write {nope")
    repl.expect(r"error: the tool's arguments are not JSON")
    repl.expect(r"hint: ")
    repl.expect(r"you> ")
    repl.send("/quit")
    repl.expect(r"bye")
    assert repl.proc.wait(30) == 0


@pytest.fixture
def model(env: dict[str, str]) -> Iterator[tuple[Any, dict[str, str]]]:
    """A local server speaking the chat-completions wire format, and the environment that points at it."""
    from emergent.providers.local_openai import LocalOpenAIServer

    with LocalOpenAIServer() as srv:
        yield srv, {**env, "EMERGENT_LLM_MODEL": "local-model", "EMERGENT_LLM_BASE_URL": srv.base_url,
                    "EMERGENT_LLM_API_KEY": "sk-local"}


def test_with_a_model_the_answer_streams_and_names_its_mode(model: tuple[Any, dict[str, str]]) -> None:
    srv, llm_env = model
    srv.script = [{"content": "It overflowed at 4096 entries; 8192 fixed it [m1]."}]
    p = emergent(llm_env, "chat", "Why did the ring buffer overflow?")
    assert p.returncode == 0, p.stderr
    assert "assistant It overflowed at 4096 entries; 8192 fixed it [m1]." in p.stdout
    assert "[1] memory" in p.stdout and "[2] memory" not in p.stdout  # the one memory it cites
    assert "mode llm:local-model · completed" in p.stdout
    assert srv.requests and srv.requests[0]["body"].get("stream") is True  # tokens were streamed


def test_ctrl_c_during_a_run_cancels_it_and_the_conversation_goes_on(model: tuple[Any, dict[str, str]],
                                                                    env: dict[str, str]) -> None:
    srv, llm_env = model

    def slow(_body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(4)
        return {"content": "too late"}

    srv.script = [slow]
    r = Repl(llm_env)
    try:
        r.expect(r"you> ")
        r.send("Why did the ring buffer overflow?")
        r.expect(r"recalled 3 passage\(s\)")
        r.proc.send_signal(signal.SIGINT)
        r.expect(r"cancelled")
        r.expect(r"you> ")
        r.proc.stdin.close()  # type: ignore[union-attr]
        assert r.proc.wait(30) == 0
        assert "Traceback" not in r.seen
    finally:
        if r.proc.poll() is None:
            r.proc.kill()
    from emergent import Workstation

    with Workstation.open(env["EMERGENT_HOME"], embedder="hashing") as w:
        (run,) = w.assistant().runs(limit=1)
        assert run.status == "cancelled" and run.stop_reason == "cancelled"
