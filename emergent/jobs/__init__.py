"""Scheduled notebook jobs: papermill runs with a schedule, retries, chains and notifications.

``ws.jobs`` is a :class:`~emergent.jobs.service.JobService`; ``emergent jobs ...`` and
``emergent scheduler run`` drive it. In a job notebook, ``emergent.jobs.outputs(name=value)`` hands
values to the chained jobs.
"""

from __future__ import annotations

from typing import Any


def outputs(**values: Any) -> None:
    """Record ``values`` as this run's outputs (passed as parameters to chained jobs)."""
    from emergent.jobs.runner import outputs as _outputs

    _outputs(**values)


__all__ = ["outputs"]
