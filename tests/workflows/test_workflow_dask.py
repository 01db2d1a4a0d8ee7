"""The ``dask://host:port`` executor on a real LocalCluster of worker processes; one worker is killed with
SIGKILL mid-run and the run still completes (Dask runs the lost tasks again on the other worker)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from emergent.errors import ValidationError
from emergent.workflows import Workflow
from emergent.workflows.executors import open_executor

distributed = pytest.importorskip("distributed", reason="the scale extra: pip install 'emergent[scale]'")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=40) as c:
        yield c


def _address(cluster: Any) -> str:
    return "dask://" + cluster.scheduler_address.removeprefix("tcp://")


def test_call_steps_run_on_the_cluster_and_a_killed_worker_does_not_fail_the_run(wsx: Any, cluster: Any) -> None:
    def work(i: int) -> dict[str, int]:  # a local function: cloudpickle ships it by value
        import os as _os
        import time as _time

        _time.sleep(0.4)
        return {"i": i, "pid": _os.getpid()}

    def gather(parts: list[dict[str, int]]) -> dict[str, Any]:
        return {"sum": sum(p["i"] for p in parts), "pids": sorted({p["pid"] for p in parts})}

    wf = Workflow.build("scaled", inputs={"items": list(range(8))})
    w = wf.call("work", work, args={"i": "${item}"}, foreach="${inputs.items}")
    g = wf.call("gather", gather, args={"parts": w.output})
    wf.output("result", g.output)

    with distributed.Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)  # worker address -> pid
    victim = sorted(pids.values())[0]
    killed = threading.Event()

    def kill_soon() -> None:
        time.sleep(0.6)  # both workers are inside a task by now
        os.kill(victim, signal.SIGKILL)
        killed.set()

    threading.Thread(target=kill_soon, daemon=True).start()
    run = wsx.workflows.run(wf, principal=wsx.principal, executor=_address(cluster), timeout=90)
    assert killed.is_set()
    assert run.status == "completed", run.error
    assert run.outputs["result"]["sum"] == sum(range(8))
    assert os.getpid() not in run.outputs["result"]["pids"]  # the work ran in worker processes
    assert all(run.step(f"work[{i}]").status == "completed" for i in range(8))


def test_executor_ids_are_checked() -> None:
    assert open_executor("threads:3").name == "threads:3"
    for bad, msg in (("threads:0", "at least one thread"), ("dask://", "not an executor id"),
                     ("dask", "needs the scheduler's address"), ("thread", "did you mean 'threads'")):
        with pytest.raises(Exception, match=msg) as err:
            open_executor(bad)
        assert isinstance(err.value, ValidationError) or "unknown" in str(err.value)


def test_the_workflows_service_imports_without_dask() -> None:
    """Dask is an extra: the service and the threads executor never import it (only dask:// does)."""
    import subprocess
    import sys

    code = ("import sys, emergent.workflows.service, emergent.workflows.executors as ex; ex.open_executor('threads:2')"
            ".close(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
