"""The "Emergent" persona in a real JupyterLab with jupyter-ai 3, driven from Debian's headless Chromium.

A researcher opens a chat, the persona picker offers Emergent (found through the ``jupyter_ai.personas``
entry point), and "@Emergent <question>" is answered from the workspace's memories with its sources and
the mode that produced it; a ``/remember`` waits for an approval whose id the chat shows, and
``/approve ID`` typed in the same chat lets it run. With a model configured (a local server speaking
the chat-completions wire format, through the real ``openai`` client) the model's tool calls and its
streamed answer appear in the chat.

Every piece of Jupyter and Chromium state lives in a temporary directory; the workspace
(``EMERGENT_HOME``) is seeded with notes in the assistant's memory scope; the embedder is "hashing".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_jupyterlab_widgets import CHROMIUM, CHROMIUM_ARGS, free_port

pytestmark = pytest.mark.e2e

PERSONA_ID = "jupyter-ai-personas::emergent::EmergentPersona"
NOTES = [
    "The ring buffer overflowed because its size was 4096 entries. We doubled it to 8192 and the overflow stopped.",
    "Ana prefers green tea in the afternoon.",
    "The calibration run on March 3 used the old thermocouple; its numbers are 2 degrees too high.",
]
SERVER_CONFIG = f"""
# The MCP server extension jupyter-ai installs is not needed here (and would listen on a fixed port).
c.ServerApp.jpserver_extensions = {{"jupyter_server_mcp": False}}
# What the README recommends: Emergent answers in every chat unless the picker names another persona.
c.PersonaManager.default_persona_id = {PERSONA_ID!r}
c.LabApp.news_url = None
"""


class ChatLab:
    """A JupyterLab server (jupyter-ai 3 installed) whose Emergent workspace holds NOTES."""

    def __init__(self, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        from emergent import Workstation

        self.tmp = tmp
        self.state = tmp / "state"
        self.root = tmp / "lab"
        self.root.mkdir()
        home = tmp / "workspace"
        with Workstation.open(home, embedder="hashing") as ws:
            self.ids = ws.memory.ingest(NOTES, scope="assistant")
        self.env = {**os.environ, "HOME": str(self.state / "home"), "JUPYTER_CONFIG_DIR": str(self.state / "config"),
                    "JUPYTER_DATA_DIR": str(self.state / "data"), "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"),
                    "IPYTHONDIR": str(self.state / "ipython"),
                    "JUPYTERLAB_SETTINGS_DIR": str(self.state / "lab-settings"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(self.state / "lab-workspaces"),
                    "EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing", **(extra_env or {})}
        for key in ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            Path(self.env[key]).mkdir(parents=True, exist_ok=True)
        (self.state / "config" / "jupyter_server_config.py").write_text(SERVER_CONFIG)
        news = self.state / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no "Jupyter news?" toast
        self.log_path = tmp / "lab.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        port = free_port()
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={self.root}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        return base
            except OSError:
                pass
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "JupyterLab did not answer in 60 s"
            time.sleep(0.2)

    def new_chat(self, name: str) -> str:
        """A new, empty chat file in Lab's root (what File > New > Chat writes)."""
        (self.root / name).write_text("{}")
        return name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()



def our_tracebacks(log: str) -> list[str]:
    """Tracebacks in the server log that pass through Emergent's code (a browser tab closing while the
    server writes to its websocket logs tornado's own WebSocketClosedError: not ours)."""
    blocks = log.split("Traceback (most recent call last):")[1:]
    return [b[:2000] for b in blocks if "/emergent/" in b]

@pytest.fixture
def chat_lab(tmp_path: Path) -> Iterator[Any]:
    """Starts a ChatLab (call it with extra environment); stops it afterwards."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make sysdeps` (apt-get install -y chromium)")
    labs: list[ChatLab] = []

    def start(**extra_env: str) -> tuple[ChatLab, str]:
        lab = ChatLab(tmp_path, extra_env)
        labs.append(lab)
        return lab, lab.start()

    yield start
    for lab in labs:
        lab.stop()


@pytest.fixture
def browser(chat_lab: Any, tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                               env={**os.environ, "HOME": str(tmp_path / "chromium-home")})
        try:
            yield b
        finally:
            b.close()


# ---------------------------------------------------------------- driving the chat panel
def open_chat(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.locator(".jp-chat-input-container textarea").first.wait_for(timeout=60_000)
    picker = page.locator(".jp-jai-personaControls-persona-btn").first
    picker.wait_for(timeout=30_000)
    deadline = time.monotonic() + 30
    while "Emergent" not in picker.inner_text():  # the persona list arrives over the server's events
        assert time.monotonic() < deadline, f"the persona picker shows {picker.inner_text()!r}, not Emergent"
        time.sleep(0.2)
    return page


def send(page: Any, text: str) -> None:
    box = page.locator(".jp-chat-input-container textarea").first
    box.click()
    box.fill(text)
    box.press("Enter")
    page.locator(".jp-chat-rendered-message", has_text=text).first.wait_for(timeout=15_000)


def emergent_reply(page: Any, *need: str, timeout_s: float = 45) -> str:
    """The text of the chat message that contains every string in ``need`` (an Emergent reply: the
    strings are ones only its replies contain). Consecutive messages of one sender share one header, so
    the message is found by what it says rather than under a header."""
    messages = page.locator(".jp-chat-rendered-message")
    deadline = time.monotonic() + timeout_s
    while True:
        for text in messages.all_inner_texts():
            if all(s in text for s in need):
                return str(text)
        assert time.monotonic() < deadline, (f"no reply from Emergent containing {need!r} in {timeout_s:.0f} s; "
                                             f"the panel shows: {page.locator('.jp-chat-messages-container').inner_text()}")
        time.sleep(0.25)


# ---------------------------------------------------------------- tests
def test_a_question_to_emergent_in_the_jupyterlab_chat_is_answered_from_memory_with_sources(
        chat_lab: Any, browser: Any, artifacts: Path) -> None:
    lab, base = chat_lab()
    page = open_chat(browser, f"{base}/lab/tree/{lab.new_chat('research.chat')}?reset")
    try:
        send(page, "@Emergent why did the ring buffer overflow?")
        answer = emergent_reply(page, "4096 entries", "mode: offline")
        assert page.locator(".jp-chat-message-header", has_text="Emergent").count()  # its name and avatar  # the passage of the seeded note ...
        assert lab.ids[0] in answer  # ... with its memory id as the source
        assert "Sources" in answer and "recalled 3 memories" in answer
    finally:
        page.screenshot(path=str(artifacts / "jupyter_ai_emergent_answer.png"), full_page=True)
        page.close()
    assert not our_tracebacks(lab.log())


def test_a_remember_waits_for_approve_typed_in_the_same_chat_then_the_memory_is_recalled(
        chat_lab: Any, browser: Any, artifacts: Path) -> None:
    lab, base = chat_lab()
    page = open_chat(browser, f"{base}/lab/tree/{lab.new_chat('approvals.chat')}?reset")
    try:
        send(page, "@Emergent /remember The cryostat's second stage settles at 3.9 K after 40 minutes.")
        waiting = emergent_reply(page, "Waiting for approval")
        approval = re.search(r"/approve (\S+)", waiting)
        assert approval, waiting
        assert "memory.remember" in waiting and "mode: offline" in waiting
        page.screenshot(path=str(artifacts / "jupyter_ai_emergent_waiting.png"), full_page=True)
        box = page.locator(".jp-chat-input-container textarea").first
        box.click()
        box.press_sequentially("/appr", delay=30)  # the input completes the commands the persona advertises
        page.locator(".jp-chat-command-name", has_text="/approve").first.wait_for(timeout=10_000)
        box.press("Escape")
        send(page, f"/approve {approval.group(1)}")
        # the reply streams: "calling ... (approved ID)" shows before the run's "completed" line
        done = emergent_reply(page, f"approved {approval.group(1)}", "completed")
        assert "Remembered" in done
        send(page, "@Emergent when does the cryostat's second stage settle?")
        answer = emergent_reply(page, "From memory", "settles at 3.9 K")
        assert "mode: offline" in answer
        send(page, "@Emergent /remember")  # a malformed command: its message and hint, and the server lives on
        error = emergent_reply(page, "could not do that")
        assert "/remember needs text" in error and "What to do" in error
    finally:
        page.screenshot(path=str(artifacts / "jupyter_ai_emergent_approval.png"), full_page=True)
        page.close()
    assert lab.proc is not None and lab.proc.poll() is None
    assert not our_tracebacks(lab.log())


def test_with_a_model_the_tool_calls_and_the_streamed_answer_appear_and_the_stop_button_cancels(
        chat_lab: Any, browser: Any, artifacts: Path) -> None:
    from emergent.providers.local_openai import LocalOpenAIServer, tool_call

    script: list[Any] = [
        {"content": None, "tool_calls": [tool_call("memory-recall", {"query": "thermocouple", "k": 2})]},
        {"content": "The March 3 calibration read 2 degrees too high: the old thermocouple [m1]."},
    ]
    with LocalOpenAIServer(script) as llm:
        lab, base = chat_lab(EMERGENT_LLM_MODEL="local-model", EMERGENT_LLM_BASE_URL=llm.base_url,
                             EMERGENT_LLM_API_KEY="sk-local")
        page = open_chat(browser, f"{base}/lab/tree/{lab.new_chat('model.chat')}?reset")
        try:
            send(page, "@Emergent what went wrong with the March 3 calibration?")
            answer = emergent_reply(page, "mode: llm:local-model")
            assert "calling memory.recall" in answer and "memory.recall → ok" in answer
            assert "read 2 degrees too high" in answer
            assert lab.ids[2] in answer  # the cited memory is the source
            assert all(r["body"].get("stream") for r in llm.requests)  # streamed through the real openai client

            llm.script.append(("sleep", 4.0))  # a slow model: the server stays responsive, the stop button stops
            send(page, "@Emergent summarise everything we know")
            t0 = time.monotonic()
            with urllib.request.urlopen(f"{base}/api/status", timeout=5) as resp:
                assert resp.status == 200
            assert time.monotonic() - t0 < 1.0, "the server's event loop waited for the assistant"
            stop = page.locator(".jp-jai-stopButton:not(.Mui-disabled)").first
            stop.click(timeout=10_000)
            stopped = emergent_reply(page, "Run cancelled.")
            assert "mode: llm:local-model" in stopped
        finally:
            page.screenshot(path=str(artifacts / "jupyter_ai_emergent_model.png"), full_page=True)
            page.close()
    assert not our_tracebacks(lab.log())
