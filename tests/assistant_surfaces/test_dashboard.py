"""The workstation dashboard: memory, pending approvals, recent tool calls, jobs and the assistant's
last runs in one HTML view, each section opening its panel; built from narrow callables, each
failing alone; cheap to show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from emergent.errors import PrincipalError, StoreUnavailableError


def test_the_dashboard_shows_every_section_of_a_busy_workstation(ows: Any, tmp_path: Path) -> None:
    from emergent.ui import Dashboard

    me = ows.principal
    nb = tmp_path / "daily.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), str(nb))
    ows.jobs.add("daily-digest", nb, schedule="every 1h", principal=me)
    bot = ows.assistant()
    asked = bot.ask("Why did the ring buffer overflow?", user=me)
    waiting = bot.ask('/tool files.write {"path": "d.txt", "content": "x"}', user=me)

    html = Dashboard.of(ows).html()
    for title in ("Memory", "Pending approvals", "Recent tool calls", "Jobs", "Assistant: last runs"):
        assert f"<b>{title}</b>" in html
    assert "<b>3</b> long-term memories" in html
    assert waiting.pending_approval in html and "agent:assistant" in html  # who asks, for what
    assert "memory.recall" in html  # the assistant recalls through the gate: a tool call
    assert "daily-digest" in html and "every 1h" in html
    assert asked.run_id in html and "Why did the ring buffer overflow?" in html and "waiting_approval" in html
    assert "Chat(ws.assistant(), principal=ws.principal)" in html  # how to open each panel from code
    text = repr(Dashboard.of(ows))
    assert "Pending approvals: 1" in text and "3 long-term memories" in text


def test_a_section_that_fails_shows_its_error_and_the_others_still_show() -> None:
    from emergent.ui.dashboard import Dashboard

    def down() -> Any:
        raise StoreUnavailableError("LanceDB is not reachable", hint="check the disk")

    d = Dashboard(memory=down, approvals=lambda: [{"id": "a1", "tool": "files.write"}], jobs=lambda: [])
    html = d.html()
    assert "LanceDB is not reachable" in html and "emergent-dash-error" in html
    assert "a1" in html and "files.write" in html
    assert "no jobs yet" in html
    assert "Recent tool calls" not in html  # a section nobody wired is not shown


def test_showing_the_dashboard_never_creates_the_assistant(ws: Any) -> None:
    from emergent.ui.dashboard import Dashboard

    html = Dashboard.of(ws).html()
    assert "no runs yet" in html
    with pytest.raises(PrincipalError):
        ws.principals.agent("assistant")


def test_each_section_opens_its_panel(ows: Any) -> None:
    from emergent.ui.agents import AgentMonitor
    from emergent.ui.approvals import ApprovalsInbox
    from emergent.ui.chat import Chat
    from emergent.ui.dashboard import Dashboard
    from emergent.ui.jobs_panel import JobsPanel
    from emergent.ui.marketplace import ToolMarketplace
    from emergent.ui.memory_stats import MemoryStats
    from emergent.ui.workflows import WorkflowRuns

    d = Dashboard.of(ows)
    d.widget()
    expected = {"assistant": Chat, "approvals": ApprovalsInbox, "jobs": JobsPanel, "tools": ToolMarketplace,
                "workflows": WorkflowRuns, "agents": AgentMonitor, "memory": MemoryStats}
    for key, kind in expected.items():
        d.buttons[key].click()
        assert isinstance(d.opened, kind), key
        assert d.panel_area.children == (d.opened,)
    assert d.opened.memory is ows.memory
    chat = d.open("assistant")
    assert chat.principal == ows.principal  # the panel acts for the person at the keyboard


def test_a_panel_that_cannot_open_says_why_in_its_place() -> None:
    from emergent.ui.dashboard import Dashboard

    def broken() -> Any:
        raise PrincipalError("agent:x may not create the assistant", hint="a person opens it once")

    d = Dashboard(runs=lambda: [], panels={"assistant": broken})
    d.widget()
    d.buttons["assistant"].click()
    assert d.opened is None and "may not create the assistant" in d.panel_area.children[0].value


def test_the_mimebundle_offers_the_widget_with_html_and_text_fallbacks(ows: Any) -> None:
    from emergent.ui.dashboard import Dashboard

    bundle = Dashboard.of(ows)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "emergent-dashboard" in bundle["text/html"] and bundle["text/plain"].startswith("Emergent workstation")


def test_importing_the_dashboard_is_cheap() -> None:
    """Showing the workstation must not drag in widgets, dataframes or plots before a panel opens."""
    code = ("import sys, emergent.ui.dashboard as d\n"
            "print(sorted(m for m in ('ipywidgets', 'polars', 'matplotlib', 'emergent.ui.chat') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
