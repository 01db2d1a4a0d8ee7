"""Execute one notebook with papermill and classify how it ended.

The kernel starts with the job's workspace in ``EMERGENT_HOME`` and the notebook's directory as its
working directory (set on the kernel process, not with ``chdir`` in ours, so runs in threads do not
interfere). A whole-run deadline becomes nbclient's per-cell ``timeout_func``; a cell that raises,
a deadline passed and a kernel that died are three distinct outcomes.
"""

from __future__ import annotations

import ast
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergent.jobs.model import RunStatus

OUTPUTS_MIME = "application/vnd.emergent.outputs+json"
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple),
    "dict": (dict,), "tuple": (list, tuple),
}


@dataclass
class Outcome:
    status: RunStatus
    error: str | None = None
    error_cell: int | None = None
    error_name: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


class InvalidJob(Exception):
    """The job cannot run as defined; the message says why and what to do."""


def outputs(**values: Any) -> None:
    """Call in a job notebook to hand ``values`` to the chained jobs (and record them on the run)."""
    from IPython.display import display

    json.dumps(values)  # fail in the notebook, clearly, if a value is not JSON
    display({OUTPUTS_MIME: values, "text/plain": f"job outputs: {values!r}"}, raw=True)


# ---------------------------------------------------------------------------- validation
def parameters_cell(nb_path: Path) -> dict[str, str] | None:
    """Parameter name -> inferred type name from the cell tagged ``parameters``; None if there is none."""
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return None
    types: dict[str, str] = {}
    for node in ast.parse(cell.source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) else None)
        if not isinstance(target, ast.Name) or node.value is None:
            continue
        try:
            types[target.id] = type(ast.literal_eval(node.value)).__name__
        except ValueError:
            types[target.id] = "any"
    return types


def check_notebook(nb_path: Path, parameters: dict[str, Any]) -> None:
    """Raise InvalidJob when the notebook is missing or ``parameters`` do not fit its parameters cell."""
    from emergent.registry import suggest

    if not nb_path.is_file():
        raise InvalidJob(f"notebook {nb_path} does not exist; restore it or point the job at another "
                         "notebook (emergent jobs add NAME NOTEBOOK --replace)")
    if not parameters:
        return
    declared = parameters_cell(nb_path)
    if declared is None:
        raise InvalidJob(f"notebook {nb_path.name} has no cell tagged 'parameters' but the job passes "
                         f"{sorted(parameters)}; tag the cell that defines the defaults with 'parameters'")
    for name, value in parameters.items():
        if name not in declared:
            hint = suggest(name, list(declared)) or f"it declares {sorted(declared)}"
            raise InvalidJob(f"parameter {name!r} is not in the parameters cell of {nb_path.name}; {hint}")
        expected = _TYPES.get(declared[name])
        if expected and (not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)):
            raise InvalidJob(f"parameter {name!r} must be {declared[name]} (the default in the parameters "
                             f"cell is one), got {type(value).__name__} {value!r}")


# ---------------------------------------------------------------------------- execution
def _kernel_manager_class(env: dict[str, str], cwd: str, seen: list[Any]) -> type:
    from jupyter_client.manager import AsyncKernelManager

    class JobKernelManager(AsyncKernelManager):  # type: ignore[misc]
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["env"] = {**(kw.get("env") or os.environ), **env}
            kw["cwd"] = cwd
            seen.append(self)
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return JobKernelManager


def _exit_detail(managers: list[Any]) -> str:
    proc = getattr(getattr(managers[-1], "provisioner", None), "process", None) if managers else None
    code = proc.poll() if proc is not None else None
    if code is not None and code < 0:
        sig = -code
        why = " (SIGKILL: killed, e.g. by the out-of-memory killer)" if sig == 9 else ""
        return f"the kernel process was killed by signal {sig}{why}"
    return "the kernel process died" + (f" with exit code {code}" if code is not None else "")


def read_outputs(nb_path: Path) -> dict[str, Any]:
    import nbformat

    if not nb_path.is_file():
        return {}
    found: dict[str, Any] = {}
    for cell in nbformat.read(str(nb_path), as_version=4).cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if OUTPUTS_MIME in data:
                found.update(data[OUTPUTS_MIME])
    return found


def execute(notebook: Path, output: Path, parameters: dict[str, Any], *, kernel: str, timeout_s: float,
            env: dict[str, str], progress_bar: bool = False) -> Outcome:
    """Run ``notebook`` into ``output``; never raises for a failure of the notebook itself.
    ``progress_bar``: papermill's own cell-by-cell bar (on stderr), for a person watching a terminal."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    try:
        check_notebook(notebook, parameters)
    except InvalidJob as exc:
        return Outcome(RunStatus.INVALID, str(exc), error_name="InvalidJob")
    output.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    managers: list[Any] = []
    current: list[Any] = []

    def cell_timeout(cell: Any) -> int:
        current[:] = [cell.get("id")]
        return max(1, int(deadline - time.monotonic() + 0.999))

    try:
        pm.execute_notebook(
            str(notebook), str(output), parameters=parameters or None, kernel_name=kernel,
            progress_bar=progress_bar, log_output=False, start_timeout=min(60.0, timeout_s + 5),
            kernel_manager_class=_kernel_manager_class(env, str(notebook.parent), managers),
            timeout_func=cell_timeout,
        )
    except pm.PapermillExecutionError as exc:
        return Outcome(RunStatus.FAILED, f"cell {exc.cell_index} raised {exc.ename}: {exc.evalue}",
                       error_cell=exc.cell_index, error_name=exc.ename, outputs=read_outputs(output))
    except CellTimeoutError:
        return Outcome(RunStatus.TIMEOUT, f"the run passed its timeout of {timeout_s:g}s and was stopped; "
                       "raise --timeout or make the notebook faster", error_name="Timeout",
                       error_cell=_cell_index(output, current))
    except DeadKernelError:
        return Outcome(RunStatus.KERNEL_DIED, f"{_exit_detail(managers)} during the run; check the "
                       "notebook's memory use", error_name="DeadKernel", error_cell=_cell_index(output, current))
    except RuntimeError as exc:
        if "Kernel died" in str(exc) or "kernel died" in str(exc):
            return Outcome(RunStatus.KERNEL_DIED, f"{_exit_detail(managers)}: {exc}", error_name="DeadKernel")
        return Outcome(RunStatus.FAILED, f"{type(exc).__name__}: {exc}", error_name=type(exc).__name__)
    except Exception as exc:  # kernel not found, unreadable notebook, ...
        return Outcome(RunStatus.INVALID if _is_setup_error(exc) else RunStatus.FAILED,
                       f"{type(exc).__name__}: {exc}", error_name=type(exc).__name__)
    return Outcome(RunStatus.SUCCEEDED, outputs=read_outputs(output))


def _is_setup_error(exc: Exception) -> bool:
    from jupyter_client.kernelspec import NoSuchKernel

    return isinstance(exc, (NoSuchKernel, FileNotFoundError, json.JSONDecodeError))


def _cell_index(output: Path, current: list[Any]) -> int | None:
    """Index, in the saved output notebook, of the cell that was executing (by cell id)."""
    import nbformat

    if not current or current[0] is None:
        return None
    try:
        cells = nbformat.read(str(output), as_version=4).cells
    except (OSError, ValueError):
        return None
    return next((i for i, c in enumerate(cells) if c.get("id") == current[0]), None)
