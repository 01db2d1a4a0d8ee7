"""``%ask`` and ``%%ask`` in a real IPython ``InteractiveShell``: the answer displays as HTML (answer,
sources, mode, steps, a pending approval and how to decide it) and as text; a question mark at the
end is part of the question; ``$`` and ``{...}`` reach the assistant as typed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture
def shell(ows: Any) -> Iterator[InteractiveShell]:
    from emergent.magics import load_ipython_extension

    sh = InteractiveShell.instance()
    sh.user_ns["ws"] = ows  # the notebook's workstation: the extension uses it and does not open another
    load_ipython_extension(sh)
    yield sh
    sh.user_ns.pop("ws", None)
    InteractiveShell.clear_instance()


def run(shell: InteractiveShell, cell: str) -> Any:
    res = shell.run_cell(cell, store_history=True)
    assert res.error_before_exec is None and res.error_in_exec is None, (res.error_before_exec, res.error_in_exec)
    return res.result


def test_ask_with_a_question_mark_answers_and_is_not_a_help_request(shell: InteractiveShell) -> None:
    out = run(shell, "%ask Why did the ring buffer overflow?")
    assert out.status == "completed" and out.mode == "offline" and "4096" in out.answer
    html = out._repr_html_()
    assert "4096" in html and "emergent-chat-sources" in html and "offline" in html
    assert all(s.ref in html for s in out.sources)
    text = repr(out)
    assert "4096" in text and "mode offline" in text and "[1] memory" in text


def test_an_assigned_ask_keeps_the_run(shell: InteractiveShell) -> None:
    run(shell, "r = %ask what does Ana prefer?")
    r = shell.user_ns["r"]
    assert "green tea" in r.answer and r.run_id and r.sources[0].kind == "memory"
    assert shell.user_ns["ws"].assistant().get(r.run_id).status == "completed"


def test_cell_ask_takes_the_body_as_the_question_and_an_assistant_option(shell: InteractiveShell, ows: Any) -> None:
    ows.memory.ingest(["Scout found the spare thermocouple in drawer B."], scope="scout")
    out = run(shell, "%%ask --assistant scout\nWhere is the spare\nthermocouple?\n")
    assert out.assistant == "scout" and "drawer B" in out.answer
    assert out.question.strip() == "Where is the spare\nthermocouple?"


def test_a_tool_command_passes_through_unexpanded_and_shows_the_pending_approval(shell: InteractiveShell,
                                                                                 ows: Any) -> None:
    shell.user_ns["path"] = "wrong.txt"  # {path} must not be expanded by IPython
    out = run(shell, '%ask /tool files.write {"path": "ask/$HOME.txt", "content": "hi"}')
    assert out.status == "waiting_approval" and out.pending_tool["args"] == {"path": "ask/$HOME.txt", "content": "hi"}
    html, text = out._repr_html_(), repr(out)
    aid = out.pending_approval
    assert aid in html and f"emergent approvals approve {aid}" in html and f"%ask /approve {aid}" in html
    assert "files.write" in html and "waiting" in html
    assert f"waiting for approval {aid}" in text
    done = run(shell, f"%ask /approve {aid} fine")
    assert done.status == "completed" and f"approved {aid}" in done.answer
    assert (Path(ows.path) / "files" / "ask" / "$HOME.txt").read_text() == "hi"
    assert ows.autonomy.approvals.get(aid).decided_by == ows.principal.key


def test_an_empty_or_malformed_ask_is_a_usage_error_not_a_traceback(shell: InteractiveShell, capsys: Any) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="nothing to ask"):
        shell.run_line_magic("ask", "   ")
    with pytest.raises(UsageError, match="not JSON"):
        shell.run_line_magic("ask", "/tool files.write {nope")
    with pytest.raises(UsageError, match="--assistant"):
        shell.run_line_magic("ask", "--scope x what?")
    res = shell.run_cell("%ask /tool files.write {nope")
    assert res.success is False
    assert "Traceback" not in capsys.readouterr().out
