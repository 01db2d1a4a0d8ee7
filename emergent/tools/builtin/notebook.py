"""``notebook.run``: execute a workspace notebook with parameters (papermill).

A notebook's kernel runs code on the host, outside the sandbox, so the tool is declared
``side_effect=execute, runs_code=host``: the gate asks a human before every run by an agent or a
service, whatever a rule says. The approval is bound to the notebook's bytes (``reads``), and the
tool executes exactly those bytes (``ctx.contents``, written to a private temporary file), never
the workspace file again: a notebook changed after the approval cannot run under it.

Parameters are data, not code: their names must be plain Python identifiers (not keywords, not
dunder names) and their values JSON (str, int, float, bool, None, lists, dicts with str keys). The
cell papermill injects is checked to contain nothing but one literal assignment per parameter,
equal to the value given.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import os
import re
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from emergent.errors import MissingExtraError, ToolExecutionError, UsageError, ValidationError
from emergent.tools.builtin._common import (
    files_root,
    open_dir,
    read_bytes,
    rel_parts,
    workspace_tmp,
    write_bytes,
)
from emergent.tools.spec import RunsCode, SideEffect, ToolContext, tool

MAX_NOTEBOOK = 50_000_000
MAX_DEPTH = 32
MAX_CELL_TIMEOUT = 24 * 3600
_KERNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValidationError(f"parameter name {name!r} is not a Python identifier",
                              hint="name parameters like variables: letters, digits and _, e.g. n_rows",
                              field="parameters")
    if name.startswith("__") and name.endswith("__"):
        raise ValidationError(f"parameter name {name!r} is a dunder name", hint="use a plain name such as n_rows",
                              field="parameters")
    return name


def _check_value(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ValidationError(f"parameter {where} nests deeper than {MAX_DEPTH} levels", field="parameters")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) >= 10 ** 4000:
            raise ValidationError(f"parameter {where} is an integer too large to pass", field="parameters")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"parameter {where} is {value!r}; only finite numbers are JSON",
                                  field="parameters")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(f"parameter {where} has a non-string key {k!r}",
                                      hint="dict keys must be strings (as in JSON)", field="parameters")
            _check_value(v, f"{where}[{k!r}]", depth + 1)
        return
    raise ValidationError(f"parameter {where} is a {type(value).__name__}, which is not a JSON value",
                          hint="pass str, int, float, bool, None, lists and dicts with string keys",
                          field="parameters")


def check_parameters(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """``parameters`` if every name is an identifier and every value JSON; ValidationError otherwise."""
    params = dict(parameters or {})
    for name, value in params.items():
        _check_value(value, _check_name(name))
    return params


def _verify_injected(params: dict[str, Any], kernel: str) -> None:
    """The cell papermill will inject must be exactly one literal assignment per parameter."""
    if not params:
        return
    from papermill.translators import translate_parameters

    code = translate_parameters(kernel, "python", params, "Parameters")
    try:
        tree = ast.parse(code)
    except SyntaxError:
        raise ValidationError("the parameters do not translate to a valid Python cell",
                              hint="pass plain JSON values", field="parameters") from None
    seen: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValidationError("the parameters would inject a statement that is not a plain assignment",
                                  hint="pass plain JSON values", field="parameters")
        try:
            seen[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValidationError(f"parameter {node.targets[0].id!r} would not be injected as a literal",
                                  hint="pass plain JSON values", field="parameters") from None
    if json.dumps(seen, sort_keys=True) != json.dumps(params, sort_keys=True):
        raise ValidationError("the injected parameters cell would not reproduce the values given",
                              hint="pass plain JSON values", field="parameters")


def _check_call(kwargs: dict[str, Any]) -> None:
    check_parameters(kwargs.get("parameters"))
    if not _KERNEL.match(kwargs.get("kernel") or ""):
        raise ValidationError(f"kernel {kwargs.get('kernel')!r} is not a kernel name",
                              hint="`jupyter kernelspec list` shows the installed kernels", field="kernel")
    if kwargs.get("output") is not None:
        rel_parts(kwargs["output"], field="output")
    timeout = kwargs.get("timeout", 600)
    if not 0 < timeout <= MAX_CELL_TIMEOUT:
        raise ValidationError(f"timeout must be between 1 and {MAX_CELL_TIMEOUT} seconds per cell, got {timeout}",
                              field="timeout")


def _reads(kwargs: dict[str, Any], ctx: ToolContext) -> dict[str, bytes]:
    """The notebook's bytes, read once before the gate decides (the approval binds to them)."""
    _check_call(kwargs)  # refuse a malformed call before anyone is asked to approve it
    path = kwargs["path"]
    data = read_bytes(ctx, path, limit=MAX_NOTEBOOK)
    if len(data) > MAX_NOTEBOOK:
        raise ValidationError(f"notebook {path!r} is larger than {MAX_NOTEBOOK} bytes", field="path")
    return {path: data}


def _format_safe(path: Path) -> str:
    """papermill formats paths with the parameters (``str.format``): braces must stay literal."""
    return str(path).replace("{", "{{").replace("}", "}}")


@tool(name="notebook.run", version="2.0.0", side_effect=SideEffect.EXECUTE, runs_code=RunsCode.HOST,
      resource="path", resource_kind="path", reads=_reads, python_requires=("papermill>=2.5",), tags=("jupyter",))
def run(path: str, ctx: ToolContext, parameters: dict[str, Any] | None = None, output: str | None = None,
        kernel: str = "python3", timeout: int = 600) -> dict[str, Any]:
    """Run a workspace notebook on the host with papermill (a human approves each run by an agent).

    Args:
        path: the notebook, relative to the workspace's files directory
        parameters: JSON values injected as data after the cell tagged "parameters"; names are
            Python identifiers
        output: where to write the executed notebook (default: runs/<name>-<time>.ipynb)
        kernel: Jupyter kernel name
        timeout: seconds allowed per cell
    """
    try:
        import nbformat
        import papermill as pm
    except ImportError:
        raise MissingExtraError("notebook.run", "jupyter", "papermill") from None
    kwargs = {"path": path, "parameters": parameters, "output": output, "kernel": kernel, "timeout": timeout}
    _check_call(kwargs)
    params = check_parameters(parameters)
    _verify_injected(params, kernel)
    source = ctx.contents.get(path)
    if source is None:
        raise UsageError("notebook.run runs the notebook bytes the runner read before the gate decided, and has none",
                         hint="call it through ws.tools.call(...), not directly")
    try:
        nbformat.reads(source.decode("utf-8"), as_version=4)
    except Exception as exc:
        raise ValidationError(f"{path!r} is not a Jupyter notebook: {exc}", field="path") from None
    parts = rel_parts(path)
    out_rel = output or str(PurePosixPath("runs", f"{PurePosixPath(path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
                                                  ".ipynb"))
    with open_dir(ctx, parts[:-1], shown=path):
        cwd = files_root(ctx).joinpath(*parts[:-1])  # the notebook's folder (checked: no links on the way)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="run-", dir=workspace_tmp(ctx, "notebook")) as tmp:
        src, out = Path(tmp) / "input.ipynb", Path(tmp) / "output.ipynb"
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(source)  # exactly the approved bytes
        try:
            # cwd through the kernel's start (resources.metadata.path): papermill's cwd= would chdir the process
            pm.execute_notebook(_format_safe(src), _format_safe(out), parameters=params, kernel_name=kernel,
                                language="python", execution_timeout=timeout, progress_bar=False,
                                resources={"metadata": {"path": str(cwd)}})
        except pm.PapermillExecutionError as exc:
            _keep(ctx, out, out_rel)
            raise ToolExecutionError(f"notebook {path} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue}",
                                     hint=f"open {out_rel} to see the failing cell", output=out_rel) from None
        except Exception as exc:
            if type(exc).__name__ == "NoSuchKernel":
                raise ValidationError(f"there is no Jupyter kernel named {kernel!r}",
                                      hint="`jupyter kernelspec list` shows the installed kernels",
                                      field="kernel") from None
            raise
        _keep(ctx, out, out_rel)
    return {"output": out_rel, "seconds": round(time.perf_counter() - t0, 3)}


def _keep(ctx: ToolContext, out: Path, out_rel: str) -> None:
    """Copy the executed notebook into the workspace (through the jail: no links followed)."""
    if out.exists():
        write_bytes(ctx, out_rel, out.read_bytes(), field="output")


TOOLS = [run]
