"""Papermill jobs and workflows both ways: a scheduled-job notebook starts a workflow (``ws.workflows.run``
in the job's kernel, on the job's workspace, as the job's principal) and hands its run id on; and a
workflow's notebook step runs a notebook (``notebook.run`` through the gate) — the report chain template's
test (test_templates.py) covers that way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from emergent.jobs.model import RunStatus

JOB = """\
import os

from emergent import Workstation
from emergent.jobs import outputs

ws = Workstation.open(os.environ["EMERGENT_HOME"], embedder=embedder)
run = ws.workflows.run(template, inputs, principal=ws.principal, timeout=120)
outputs(run_id=run.id, status=run.status, principal=run.principal, error=run.error)
ws.close()
"""


def _job_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('template = "incident_triage"\ninputs = {}\nembedder = "hashing"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(JOB)]
    nbformat.write(nb, str(path))
    return path


def test_a_job_notebook_starts_a_workflow_on_the_jobs_workspace(wws: Any, tmp_path: Path) -> None:
    me = wws.principal
    nb = _job_notebook(tmp_path / "start_workflow.ipynb")
    wws.jobs.add("triage", nb, parameters={"inputs": {"incident": "North Buoy oxygen sensor reads zero"}},
                 principal=me)
    job = wws.jobs.run("triage", principal=me)
    assert job.status is RunStatus.SUCCEEDED, job.error
    assert job.outputs["status"] == "completed", job.outputs
    run = wws.workflows.get(job.outputs["run_id"])  # the job's kernel wrote it to this workspace's SQL
    assert run.status == "completed" and run.principal == me.key == job.outputs["principal"]
    assert run.step("escalate").status == "completed"
    assert "power-cycle the sonde" in (wws.path / "files" / "incidents" / "escalations.md").read_text()
