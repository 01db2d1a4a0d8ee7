"""The local chat-completions server (emergent.providers.local_openai), scripted per test.

Each request takes the next step of ``server.script`` (or ``server.default`` when the script is
empty). A step is one of: a dict (the assistant message to answer with), ``("status", code, body)``,
``("sleep", seconds)`` (answers nothing in time), ``("raw", bytes)`` (a malformed body).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emergent.providers.local_openai import LocalOpenAIServer


@pytest.fixture
def llm_server() -> Iterator[LocalOpenAIServer]:
    with LocalOpenAIServer() as server:
        yield server
