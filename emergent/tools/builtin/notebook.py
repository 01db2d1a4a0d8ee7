"""``notebook.run``: execute a workspace notebook with parameters (papermill)."""

from __future__ import annotations

import time
from typing import Any

from emergent.errors import MissingExtraError, ToolExecutionError
from emergent.tools.builtin._common import files_root, jailed
from emergent.tools.spec import SideEffect, ToolContext, tool


@tool(name="notebook.run", version="1.0.0", side_effect=SideEffect.WRITE, resource="path",
      python_requires=("papermill>=2.5",), tags=("jupyter",))
def run(path: str, ctx: ToolContext, parameters: dict[str, Any] | None = None, output: str | None = None,
        kernel: str = "python3", timeout: int = 600) -> dict[str, Any]:
    """Run a notebook from the workspace with papermill and keep the executed copy.

    Args:
        path: the notebook, relative to the workspace's files directory
        parameters: values injected into the cell tagged "parameters"
        output: where to write the executed notebook (default: runs/<name>-<time>.ipynb)
        kernel: Jupyter kernel name
        timeout: seconds allowed per cell
    """
    try:
        import papermill as pm
    except ImportError:
        raise MissingExtraError("notebook.run", "jupyter", "papermill") from None
    src = jailed(ctx, path, must_exist=True)
    out = jailed(ctx, output or f"runs/{src.stem}-{time.strftime('%Y%m%d-%H%M%S')}.ipynb")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(out), parameters=parameters or {}, kernel_name=kernel,
                            execution_timeout=timeout, progress_bar=False, cwd=str(src.parent), language="python")
    except pm.PapermillExecutionError as exc:
        raise ToolExecutionError(f"notebook {path} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue}",
                                 hint=f"open {out} to see the failing cell", output=str(out)) from None
    return {"output": str(out.relative_to(files_root(ctx))), "seconds": round(time.perf_counter() - t0, 3)}


TOOLS = [run]
