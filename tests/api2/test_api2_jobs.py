"""/v1/jobs: defining is an admin's (a notebook inside the workspace only), running an operator's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import audited, problem, until


def notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def job(ws: Any, client: Any, headers: Any) -> dict[str, Any]:
    notebook(Path(ws.path) / "notebooks" / "hello.ipynb", "print(n * 2)")
    r = client.post("/v1/jobs", json={"name": "hello", "notebook": "notebooks/hello.ipynb", "schedule": "every 1h"},
                    headers=headers["admin"])
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_an_admin_defines_a_job_and_a_viewer_lists_it(ws: Any, me: Any, client: Any, headers: Any,
                                                       job: dict[str, Any]) -> None:
    assert job["notebook"] == str((Path(ws.path) / "notebooks" / "hello.ipynb").resolve())
    assert job["next_run_at"] is not None and not job["paused"]
    listed = client.get("/v1/jobs", headers=headers["viewer"]).json()
    assert [j["name"] for j in listed["items"]] == ["hello"]
    assert [e.actor for e in audited(ws, "job.define")] == [me.key]


def test_a_notebook_outside_the_workspace_is_refused(ws: Any, tmp_path: Path, client: Any, headers: Any) -> None:
    outside = notebook(tmp_path / "elsewhere" / "x.ipynb", "print(1)")
    for given in (str(outside), "../elsewhere/x.ipynb", "nb\x00.ipynb"):
        body = problem(client.post("/v1/jobs", json={"name": "x", "notebook": given}, headers=headers["admin"]), 400)
        assert body["field"] in ("notebook", "body")
    assert ws.jobs.list() == []


def test_an_operator_may_not_define_a_job(ws: Any, client: Any, headers: Any) -> None:
    notebook(Path(ws.path) / "n.ipynb", "print(1)")
    problem(client.post("/v1/jobs", json={"name": "x", "notebook": "n.ipynb"}, headers=headers["operator"]), 403)


def test_defining_an_existing_job_again_is_a_conflict_unless_replaced(client: Any, headers: Any,
                                                                      job: dict[str, Any]) -> None:
    again = {"name": "hello", "notebook": "notebooks/hello.ipynb"}
    problem(client.post("/v1/jobs", json=again, headers=headers["admin"]), 409)
    r = client.post("/v1/jobs", json={**again, "replace": True}, headers=headers["admin"])
    assert r.status_code == 201 and r.json()["schedule"] is None


def test_an_operator_pauses_and_resumes_a_job(client: Any, headers: Any, job: dict[str, Any]) -> None:
    assert client.post("/v1/jobs/hello/pause", headers=headers["operator"]).json()["paused"] is True
    assert client.post("/v1/jobs/hello/resume", headers=headers["operator"]).json()["paused"] is False


def test_an_admin_removes_a_job(ws: Any, client: Any, headers: Any, job: dict[str, Any]) -> None:
    assert client.delete("/v1/jobs/hello", headers=headers["admin"]).status_code == 204
    problem(client.get("/v1/jobs/hello", headers=headers["viewer"]), 404)


def test_a_run_started_by_an_operator_answers_at_once_and_runs_in_the_background(
        ws: Any, me: Any, client: Any, headers: Any, job: dict[str, Any]) -> None:
    r = client.post("/v1/jobs/hello/run", json={"parameters": {"n": 21}}, headers=headers["operator"])
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["job"] == "hello" and run["trigger"] == "api" and run["parameters"] == {"n": 21}

    def finished() -> Any:
        runs = client.get("/v1/jobs/hello/runs", headers=headers["viewer"]).json()
        return next((x for x in runs if x["id"] == run["id"] and x["status"] != "running"), None)

    done = until(finished, timeout=60)
    assert done is not None and done["status"] == "succeeded", done
    assert [e.actor for e in audited(ws, "job.run")] == [me.key]


def test_running_an_unknown_job_is_a_404(client: Any, headers: Any) -> None:
    problem(client.post("/v1/jobs/nope/run", json={}, headers=headers["operator"]), 404)
