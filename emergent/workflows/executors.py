"""Where a workflow's ``call`` steps run, chosen by string id.

* ``threads`` — a thread pool of ``max_workers`` in this process (the default);
* ``threads:N`` — the same with N threads;
* ``dask://host:port`` — a Dask distributed scheduler (``pip install 'emergent[scale]'``): the
  function and its arguments are pickled to a worker process; a worker that dies has its tasks
  run again on another one (Dask's own rescheduling).

Only ``call`` steps (pure Python compute) go to an executor. Steps that cross the gate (tool,
notebook, assistant, sub-workflow) are authorised, audited and run in the engine's process, as
the run's principal: a principal never crosses a process boundary as a name.

Each executor hands back a stdlib :class:`concurrent.futures.Future`, so the engine treats them
alike (a done-callback feeds its event queue).
"""

from __future__ import annotations

import concurrent.futures as cf
import re
from collections.abc import Callable
from typing import Any, Protocol

from emergent.errors import MissingExtraError, StoreUnavailableError, ValidationError
from emergent.registry import Registry


class Executor(Protocol):
    name: str

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]: ...

    def close(self) -> None: ...


class ThreadsExecutor:
    """A thread pool: no pickling, no copy; the default (I/O-bound steps, light compute)."""

    def __init__(self, max_workers: int = 32) -> None:
        self.name = f"threads:{max_workers}"
        self.runners = max_workers  # the engine runs at most this many queue-draining tasks here
        self._pool = cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wf-call")

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        return self._pool.submit(fn, *args)

    def cancel(self, fut: cf.Future[Any]) -> None:
        fut.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class DaskExecutor:
    """A Dask distributed cluster (``dask://host:port``); ``client.submit(fn, *args, pure=False)``."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise MissingExtraError("the dask executor of workflows", "scale", "distributed") from None
        self.name = f"dask://{address.removeprefix('tcp://')}"
        try:
            self.client = Client(address, set_as_default=False, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailableError(f"the dask scheduler at {self.name} did not answer: {exc}",
                                        hint="start it (dask scheduler / a LocalCluster) or choose another executor "
                                             "(threads)", executor=self.name) from None
        self._live: dict[int, Any] = {}
        # outcomes are handed to the engine on this thread, never on the client's event loop (the engine
        # may write a checkpoint or start a gate-crossing step while handling one)
        self._relay = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="wf-dask-relay")

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        out: cf.Future[Any] = cf.Future()
        out.set_running_or_notify_cancel()
        dfut = self.client.submit(fn, *args, pure=False)
        self._live[id(out)] = dfut

        def settle(f: Any) -> None:
            self._live.pop(id(out), None)
            if out.done():
                return
            try:
                if f.status == "cancelled":
                    out.set_exception(cf.CancelledError("the dask task was cancelled"))
                else:
                    out.set_result(f.result())
            except BaseException as exc:  # noqa: BLE001 - the task's own error is the step's outcome
                out.set_exception(exc)

        dfut.add_done_callback(lambda f: self._relay.submit(settle, f))
        return out

    def cancel(self, fut: cf.Future[Any]) -> None:
        dfut = self._live.pop(id(fut), None)
        if dfut is not None:
            dfut.cancel()

    def close(self) -> None:
        self.client.close()
        self._relay.shutdown(wait=False, cancel_futures=True)


EXECUTORS: Registry[Callable[[str, int], Any]] = Registry("workflow executor", group="emergent.workflow_executors")
EXECUTORS.register("threads", lambda arg, max_workers: ThreadsExecutor(int(arg) if arg else max_workers))
EXECUTORS.register("dask", lambda arg, max_workers: DaskExecutor(f"tcp://{arg}"))

_ID = re.compile(r"^(?P<kind>[a-z][a-z0-9_-]*)(?:(?::(?P<n>\d+))|(?:://(?P<addr>[^\s/]+)))?$")


def open_executor(spec: str, *, max_workers: int = 32) -> Any:
    """The executor named by ``spec``: ``threads``, ``threads:8``, ``dask://127.0.0.1:8786``."""
    m = _ID.match(spec.strip())
    if m is None:
        raise ValidationError(f"executor {spec!r} is not an executor id",
                              hint="use threads, threads:N or dask://host:port", field="executor")
    kind = m.group("kind")
    factory = EXECUTORS.get(kind)
    if kind == "threads" and m.group("addr"):
        raise ValidationError(f"executor {spec!r}: threads takes a number of threads, e.g. threads:8",
                              field="executor")
    if kind == "dask" and not m.group("addr"):
        raise ValidationError(f"executor {spec!r}: the dask executor needs the scheduler's address",
                              hint="e.g. dask://127.0.0.1:8786", field="executor")
    if m.group("n") is not None and int(m.group("n")) < 1:
        raise ValidationError(f"executor {spec!r}: needs at least one thread",
                              hint="use threads:N with N ≥ 1, or threads for the configured number", field="executor")
    return factory(m.group("n") or m.group("addr") or "", max_workers)


__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "ThreadsExecutor", "open_executor"]
