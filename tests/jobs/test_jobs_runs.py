"""Real papermill runs: success with outputs and a chain, and each way a notebook can fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest

from emergent.jobs.model import RunStatus


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_run_executes_into_the_workspace_with_parameters_outputs_and_a_chain(jobs, me, make_nb, ws) -> None:
    producer = make_nb("producer", "import os\nfrom emergent.jobs import outputs\n"
                       "outputs(total=n * 2, home=os.environ['EMERGENT_HOME'], cwd=os.getcwd())", params="n = 1")
    consumer = make_nb("consumer", "assert total == 42, total\nfrom emergent.jobs import outputs\noutputs(seen=total)",
                       params="total = 0")
    jobs.add("consumer", consumer, principal=me)
    jobs.add("producer", producer, parameters={"n": 5}, chain=["consumer"], principal=me)
    run = jobs.run("producer", {"n": 21}, principal=me)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"total": 42, "home": str(ws.path), "cwd": str(producer.parent)}
    assert run.parameters == {"n": 21} and run.duration_s and run.duration_s > 0
    out = Path(run.output_path)
    assert out.parent == ws.path / "runs" / "producer" and out.suffix == ".ipynb"
    assert nbformat.read(str(out), as_version=4).metadata.papermill.parameters == {"n": 21}
    child, parent = jobs.history(limit=2)
    assert child.job == "consumer" and child.status is RunStatus.SUCCEEDED, child.error
    assert child.parameters == {"total": 42} and child.trigger == f"chain:producer#{parent.id}"
    assert child.outputs == {"seen": 42}


def test_a_raising_notebook_fails_with_cell_and_exception_retries_then_notifies(jobs, me, make_nb, webhook) -> None:
    url, received = webhook
    nb = make_nb("raiser", "x = 1", "raise ValueError(f'bad input {x}')")
    jobs.add("raiser", nb, retries=1, notify=[url, "slack:#ops"], principal=me)
    run = jobs.run("raiser", principal=me)
    assert run.status is RunStatus.FAILED and run.attempt == 2
    assert run.error_cell == 1 and run.error_name == "ValueError" and "bad input 1" in run.error
    first, second = sorted(jobs.history("raiser"), key=lambda r: r.attempt)
    assert (first.attempt, first.status, second.attempt) == (1, RunStatus.FAILED, 2)
    assert first.output_path != second.output_path and Path(first.output_path).exists()
    body, = received  # once, on the final failure
    assert body["job"] == "raiser" and body["status"] == "failed" and body["error_cell"] == 1
    assert body["run_id"] == run.id
    deliveries = {d.target: d for d in jobs.last_deliveries}
    assert deliveries[url].ok
    slack = deliveries["slack:#ops"]  # no Slack configured here (or an approval pending): said, not hidden
    assert not slack.ok and slack.detail


def test_a_notebook_that_never_ends_is_stopped_as_a_timeout(jobs, me, make_nb) -> None:
    nb = make_nb("forever", "import time", "while True:\n    time.sleep(0.1)")
    jobs.add("forever", nb, timeout_s=2, principal=me)
    run = jobs.run("forever", principal=me)
    assert run.status is RunStatus.TIMEOUT and run.error_cell == 1
    assert "timeout of 2s" in run.error and run.duration_s < 30


def test_a_killed_kernel_is_a_dead_kernel_not_a_failure_or_timeout(jobs, me, make_nb) -> None:
    nb = make_nb("oom", "import os, signal", "os.kill(os.getpid(), signal.SIGKILL)")
    jobs.add("oom", nb, timeout_s=60, principal=me)
    run = jobs.run("oom", principal=me)
    assert run.status is RunStatus.KERNEL_DIED, run.error
    assert "signal 9" in run.error and "out-of-memory" in run.error and run.error_cell == 1


def test_a_notebook_deleted_after_add_is_an_invalid_run_in_history(jobs, me, make_nb) -> None:
    nb = make_nb("gone", "1")
    jobs.add("gone", nb, retries=3, principal=me)
    nb.unlink()
    run = jobs.run("gone", principal=me)
    assert run.status is RunStatus.INVALID and run.attempt == 1  # not retried: retrying cannot help
    assert "does not exist" in run.error
    assert [r.id for r in jobs.history("gone")] == [run.id]


def test_a_wrong_parameter_type_at_run_time_is_invalid_and_nothing_executes(jobs, me, make_nb) -> None:
    nb = make_nb("typed", "n + 1", params="n = 1")
    jobs.add("typed", nb, principal=me)
    run = jobs.run("typed", {"n": "1"}, principal=me)
    assert run.status is RunStatus.INVALID and "must be int" in run.error
    assert run.output_path is None


WHO = ("import os\nfrom emergent import Workstation\nfrom emergent.jobs import outputs\n"
       "with Workstation.open(os.environ['EMERGENT_HOME'], embedder='hashing') as w:\n"
       "    outputs(principal=w.principal.key)")


def test_a_scheduled_run_acts_as_the_scheduler_and_an_on_demand_run_as_the_user(jobs, me, make_nb, ws) -> None:
    from emergent.jobs.scheduler import Scheduler

    nb = make_nb("who", WHO)
    jobs.add("who", nb, schedule="every 1h", principal=me)
    jobs.store.set_next("who", ws.clock.now() - 1)
    scheduler = ws.scheduler_principal
    (fut,) = Scheduler(jobs, principal=scheduler, poll_s=0.1).tick()
    scheduled = fut.result(timeout=120)
    assert scheduled.status is RunStatus.SUCCEEDED, scheduled.error
    assert scheduled.outputs["principal"] == "service:scheduler"  # the notebook is the scheduler's, not the user's
    manual = jobs.run("who", principal=me)
    assert manual.outputs["principal"] == me.key
    runs = [(e.actor, e.data["phase"], e.data.get("status")) for e in ws.audit.entries(kind="job.run")]
    assert runs == [(scheduler.key, "intent", None), (scheduler.key, "done", "succeeded"),
                    (me.key, "intent", None), (me.key, "done", "succeeded")]


def test_a_run_whose_intent_cannot_be_audited_does_not_execute(jobs, me, make_nb, ws, tmp_path) -> None:
    from emergent.errors import AuditWriteError

    marker = tmp_path / "ran"
    jobs.add("touch", make_nb("touch", f"open({str(marker)!r}, 'w').write('x')"), principal=me)
    with ws.sql.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
    ws.audit.busy_retry_s = 0.2
    try:
        with pytest.raises(AuditWriteError):
            jobs.run("touch", principal=me)
    finally:
        with ws.sql.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_log_gone RENAME TO audit_log")
    assert not marker.exists()
    (run,) = jobs.history("touch")
    assert run.status is RunStatus.FAILED and run.error_name == "AuditWriteError"
    assert jobs.get("touch").lease_owner is None  # the job is free to run again


def test_a_failure_notification_calls_the_tool_as_the_runs_principal(make_nb, me, ws) -> None:
    from emergent.jobs.notify import Notifier
    from emergent.jobs.service import JobService

    calls: list[tuple[object, str, dict]] = []
    svc = JobService(ws.sql, ws.path, clock=ws.clock, audit=ws.audit, principals=ws.principals,
                     notifier=Notifier(lambda principal, tool, args: calls.append((principal, tool, args))))
    svc.add("raiser", make_nb("raiser", "1 / 0"), notify=["slack:#ops"], principal=me)
    run = svc.run("raiser", principal=me)
    assert run.status is RunStatus.FAILED
    ((who, tool, args),) = calls
    assert who == me and tool == "slack.post_message" and args["channel"] == "#ops" and "raiser" in args["text"]
