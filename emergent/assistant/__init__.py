"""The assistant (``ws.assistant()``): recalls, asks a model or works offline, acts through the gate,
pauses for approvals and resumes after a person decides (see :mod:`emergent.assistant.engine`)."""

from emergent.assistant.engine import (
    OFFLINE,
    Assistant,
    AssistantSpec,
    Budget,
    RunEvent,
    RunResult,
    Source,
)

__all__ = ["OFFLINE", "Assistant", "AssistantSpec", "Budget", "RunEvent", "RunResult", "Source"]
