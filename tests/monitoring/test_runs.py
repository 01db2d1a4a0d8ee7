"""Run ids in the logs: what the run's own thread logs (the events it streams) names the run."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    from emergent.monitoring import logs

    out = io.StringIO()
    handler = logs.configure("json", stream=out)
    yield out
    logging.getLogger().removeHandler(handler)  # type: ignore[arg-type]


def test_the_events_of_an_assistant_run_are_logged_with_its_run_id(ws: Any, json_lines: io.StringIO) -> None:
    from emergent.monitoring import current_run_id

    seen: list[str | None] = []

    def on_event(ev: Any) -> None:  # what the API's event stream does, in the run's thread
        seen.append(current_run_id())
        logging.getLogger("emergent.test.stream").info("event %s", type(ev).__name__)

    logging.getLogger("emergent.test.stream").info("before the run")
    r = ws.assistant().ask("/status", user=ws.principal, on_event=on_event)
    assert r.status == "completed"
    assert seen and set(seen) == {r.run_id}
    lines = [json.loads(x) for x in json_lines.getvalue().splitlines()]
    ours = [x for x in lines if x["logger"] == "emergent.test.stream"]
    assert ours[0]["run_id"] is None
    assert len(ours) > 1 and all(x["run_id"] == r.run_id for x in ours[1:])
    assert current_run_id() is None  # the binding ended with the run
