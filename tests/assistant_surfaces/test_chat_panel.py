"""The Chat widget driven as a person would: type, click Send, read the bubbles; click Approve or
Reject on a tool card; an approval decided elsewhere shows up by itself. Real workstation, real
assistant engine, real ipywidgets (no front-end needed: the widget's state is the page)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emergent.errors import PrincipalError

WRITE = '/tool files.write {"path": "notes/from-chat.txt", "content": "hello from the chat"}'


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def chat(ows: Any) -> Iterator[Any]:
    from emergent.ui import Chat

    c = Chat(ows.assistant(), principal=ows.principal, poll_s=0.2)
    yield c
    c.close()


def type_and_send(chat: Any, text: str) -> Any:
    chat.input.value = text
    chat.send_button.click()
    chat.wait(60)
    return chat.last


def test_a_typed_question_is_answered_offline_with_its_memory_sources_and_mode(chat: Any, ows: Any) -> None:
    turn = type_and_send(chat, "Why did the ring buffer overflow?")
    assert chat.input.value == ""  # the box is cleared for the next question
    assert "Why did the ring buffer overflow?" in turn.user_html.value
    assert turn.status == "completed"
    assert "4096" in turn.answer_html.value
    ids = re.findall(r"\[([0-9a-f-]{8,})\]", turn.result.answer)
    assert ids and all(i in turn.sources_html.value for i in ids)  # each memory the answer cites is a source
    assert "emergent-chat-source" in turn.sources_html.value and "memory" in turn.sources_html.value
    assert "offline" in turn.footer_html.value and "completed" in turn.footer_html.value
    assert "recalled 3 passage(s)" in turn.recall_html.value
    assert len(chat.history) == 1 and chat.conversation.children == (turn.box,)


def test_a_tool_call_waits_on_its_card_and_approve_runs_it_as_the_widget_principal(chat: Any, ows: Any) -> None:
    turn = type_and_send(chat, WRITE)
    assert turn.status == "waiting_approval"
    (card,) = turn.cards
    assert card.tool == "files.write" and card.outcome == "waiting" and card.approval
    assert card.approve_button is not None and card.approve_button.layout.display != "none"
    assert card.approval in card.html.value and "notes/from-chat.txt" in card.html.value
    assert "waiting for approval" in chat.status.value
    assert not (Path(ows.path) / "files" / "notes" / "from-chat.txt").exists()

    card.approve_button.click()
    chat.wait(60)
    assert turn.status == "completed" and card.outcome == "ok"
    assert "notes/from-chat.txt" in (card.result or "") and "emergent-tool-result" in card.html.value
    assert card.approve_button.layout.display == "none"  # decided: the buttons go
    assert "files.write returned" in turn.answer_html.value
    assert "tool call" in turn.sources_html.value and "files.write" in turn.sources_html.value
    assert (Path(ows.path) / "files" / "notes" / "from-chat.txt").read_text() == "hello from the chat"
    decided = ows.autonomy.approvals.get(card.approval)
    assert decided.decided_by == ows.principal.key  # the person the widget was given, never a name


def test_reject_tells_the_run_and_nothing_is_written(chat: Any, ows: Any) -> None:
    turn = type_and_send(chat, WRITE)
    (card,) = turn.cards
    chat.decide(turn, card, False, reason="not today", wait=True)
    chat.wait(60)
    assert card.outcome == "rejected" and "not today" in (card.result or "")
    assert turn.status == "completed" and "did not run" in turn.answer_html.value
    assert not (Path(ows.path) / "files" / "notes" / "from-chat.txt").exists()


def test_an_approval_decided_elsewhere_resumes_the_waiting_card(chat: Any, ows: Any) -> None:
    turn = type_and_send(chat, WRITE)
    (card,) = turn.cards
    ows.autonomy.approvals.approve(card.approval, by=ows.principal, reason="from the CLI")  # not through the chat
    until(lambda: card.outcome == "ok", timeout=20)  # the poll (every poll_s) resumed the run
    until(lambda: turn.status == "completed")
    assert "notes/from-chat.txt" in (card.result or "")
    assert (Path(ows.path) / "files" / "notes" / "from-chat.txt").exists()


def test_typing_approve_in_the_chat_updates_the_card_of_the_waiting_run(chat: Any, ows: Any) -> None:
    waiting = type_and_send(chat, WRITE)
    (card,) = waiting.cards
    decision = type_and_send(chat, f"/approve {card.approval} looks fine")
    assert decision.status == "completed" and f"approved {card.approval}" in decision.answer_html.value
    until(lambda: card.outcome == "ok" and waiting.status == "completed")
    assert "files.write returned" in waiting.answer_html.value


def test_a_malformed_command_shows_its_message_and_hint_on_the_turn(chat: Any) -> None:
    turn = type_and_send(chat, "/tool files.write {not json")
    assert turn.status == "failed"
    assert "not JSON" in turn.answer_html.value and "hint:" in turn.answer_html.value
    assert "Traceback" not in turn.answer_html.value


def test_sending_nothing_does_nothing(chat: Any) -> None:
    chat.input.value = "   "
    chat.send_button.click()
    assert chat.history == [] and chat.ask("") is None


def test_the_chat_acts_for_a_principal_never_a_name(ows: Any) -> None:
    from emergent.ui.chat import Chat

    with pytest.raises(PrincipalError):
        Chat(ows.assistant(), principal="human:alice")  # type: ignore[arg-type]


def test_the_kernel_stays_free_while_a_run_is_in_flight_and_tokens_stream_into_the_bubble(home: Path) -> None:
    """Send returns at once (the run is in its thread); the answer streams in token by token."""
    from emergent import Workstation
    from emergent.providers.local_openai import LocalOpenAIServer
    from emergent.ui.chat import Chat

    answer = "The buffer was 4096 entries; doubling it to 8192 stopped the overflow [m1]."

    def slow(_body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(1.0)  # the model thinks: the notebook must not
        return {"content": answer}

    with LocalOpenAIServer(script=[slow]) as srv, \
            Workstation.open(home, embedder="hashing", llm_model="local-model", llm_base_url=srv.base_url,
                             llm_api_key="sk-local") as w:
        w.memory.ingest(["The ring buffer overflowed at 4096 entries; 8192 fixed it."], scope="assistant")
        chat = Chat(w.assistant(), principal=w.principal)
        t0 = time.monotonic()
        turn = chat.ask("Why did the ring buffer overflow?")
        assert time.monotonic() - t0 < 0.5 and not turn.done.is_set()
        chat.wait(60)
        assert turn.status == "completed" and turn.tokens >= 3  # the text arrived in pieces, each shown
        assert "8192" in turn.answer_html.value and "▌" not in turn.answer_html.value
        assert "llm:local-model" in turn.footer_html.value
        assert len(turn.result.sources) == 1 and turn.result.sources[0].kind == "memory"  # the cited memory
        chat.close()
