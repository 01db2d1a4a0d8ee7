"""Workflows: DAGs of tool calls, notebook runs, assistant tasks, sub-workflows and Python calls,
run event by event, checkpointed in SQL, on threads or a Dask cluster (see ``service.py``)."""

from __future__ import annotations

from emergent.workflows.spec import Builder, Compensation, Condition, Step, Workflow

__all__ = ["Builder", "Compensation", "Condition", "Step", "StepServices", "WorkflowRun", "Workflow", "Workflows"]


def __getattr__(name: str) -> object:  # the service pulls SQLAlchemy and the engine only when used
    if name in ("Workflows", "StepServices", "WorkflowRun", "StepState", "TemplateInfo"):
        from emergent.workflows import service

        return getattr(service, name)
    raise AttributeError(name)
