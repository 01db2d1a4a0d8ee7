"""The Chat widget in a real JupyterLab driven through Debian's headless Chromium (Playwright): a
question typed into the box is answered offline with its memory sources and mode; a
``/tool files.write`` command (the assistant is an agent: the gate asks a person) shows Approve /
Reject on its card, and clicking Approve runs the call: the card shows the result and the file is
on disk. Screenshot in tests/artifacts/jupyterlab_chat.png.

The harness is the one of test_jupyterlab_widgets.py: every piece of Jupyter and Chromium state in
a temporary directory, Lab on a free loopback port, no token, no news, no update checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from test_jupyterlab_widgets import CHROMIUM, CHROMIUM_ARGS, lab_env, running_lab

pytestmark = pytest.mark.e2e

NOTES = [
    "The ring buffer overflowed because its size was 4096 entries. We doubled it to 8192 and the overflow stopped.",
    "Ana prefers green tea in the afternoon.",
]
WRITE = '/tool files.write {"path": "e2e/from-browser.txt", "content": "approved in the browser"}'


def _chat_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Ask the assistant"),
        nbformat.v4.new_code_cell("from emergent import Workstation\nfrom emergent.ui import Chat\n"
                                  f"ws = Workstation.open()\nws.memory.ingest({NOTES!r}, scope='assistant')\n"
                                  "chat = Chat(ws.assistant(), principal=ws.principal)  # approvals decided as me\n"
                                  "chat"),
    ]
    nbformat.write(nb, str(path))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """JupyterLab on a free loopback port serving the chat notebook; yields (url, state dir, workspace)."""
    state = tmp_path / "state"
    root = tmp_path / "notebooks"
    workspace = tmp_path / "workspace"
    env = lab_env(state, workspace)
    root.mkdir()
    _chat_notebook(root / "chat.ipynb")
    with running_lab(root, env, tmp_path / "lab.log") as base:
        yield f"{base}/lab/tree/chat.ipynb?reset", state, workspace


def test_chat_answers_offline_and_an_inline_approve_runs_the_tool(lab, artifacts: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, state, workspace = lab
    shot = artifacts / "jupyterlab_chat.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     env={**os.environ, "HOME": str(state / "home")})
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
            _accept_kernel_dialog(page, wait_s=5)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            _accept_kernel_dialog(page, wait_s=2)
            chat = page.locator(".emergent-chat")
            chat.wait_for(timeout=120_000)
            assert page.get_by_text("Error displaying widget").count() == 0

            # a typed question, answered offline from memory, with its sources and mode
            box = chat.locator(".emergent-chat-input textarea")
            box.fill("Why did the ring buffer overflow?")
            chat.locator("button.emergent-chat-send").click()
            answer = chat.locator(".emergent-chat-answer").first
            expect(answer).to_contain_text("4096", timeout=60_000)
            sources = chat.locator(".emergent-chat-sources").first
            expect(sources).to_contain_text("memory")
            expect(chat.locator(".emergent-chat-mode").first).to_have_text("offline")
            expect(box).to_have_value("")

            # a tool call the gate asks about: Approve on its card runs it
            box.fill(WRITE)
            chat.locator("button.emergent-chat-send").click()
            card = chat.locator(".emergent-tool-card").first
            expect(card.locator(".emergent-tool-outcome")).to_have_text("waiting", timeout=60_000)
            expect(card).to_contain_text("files.write")
            expect(card.locator(".emergent-approval-id")).to_be_visible()
            assert not (workspace / "files" / "e2e" / "from-browser.txt").exists()
            card.locator("button.emergent-approve").click()
            expect(card.locator(".emergent-tool-outcome")).to_have_text("ok", timeout=60_000)
            expect(card.locator(".emergent-tool-result")).to_contain_text("e2e/from-browser.txt")
            expect(card.locator("button.emergent-approve")).to_be_hidden()
            expect(chat.locator(".emergent-chat-answer").last).to_contain_text("files.write returned")
            assert (workspace / "files" / "e2e" / "from-browser.txt").read_text() == "approved in the browser"
        finally:
            if page.locator(".emergent-chat").count():
                page.locator(".emergent-chat").first.screenshot(path=str(shot))  # the widget, even when scrolled
            else:
                page.screenshot(path=str(shot), full_page=True)
            page.close()
            browser.close()
    assert shot.stat().st_size > 10_000


def _accept_kernel_dialog(page, wait_s: float) -> None:
    """Lab may ask which kernel to start; take its preselected one (the notebook's)."""
    button = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        button.wait_for(state="visible", timeout=wait_s * 1000)
    except Exception:  # no dialog: the kernel started by itself
        return
    button.click()
    page.locator(".jp-Dialog").wait_for(state="detached", timeout=10_000)
