"""``emergent kernel install``: the "Emergent" Jupyter kernel (IPython with the workspace open and
``%load_ext emergent`` done at start-up)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True)

KERNEL_NAME = "emergent"


def kernel_spec(python: str | None = None) -> dict[str, Any]:
    """The spec in kernels/emergent/kernel.json, with this interpreter as the kernel's Python."""
    return {
        "argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext", "emergent"],
        "display_name": "Emergent",
        "language": "python",
        "metadata": {"debugger": True},
    }


def install(*, user: bool = False, prefix: str | None = None, name: str = KERNEL_NAME) -> str:
    """Install the kernel spec; returns the directory it was written to."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(kernel_spec(), indent=2), "utf-8")
        return str(KernelSpecManager().install_kernel_spec(tmp, kernel_name=name, user=user, prefix=prefix))


@app.command("install")
def install_cmd(user: bool = typer.Option(False, "--user", help="install for this user (~/.local/share/jupyter)"),
                sys_prefix: bool = typer.Option(False, "--sys-prefix", help="install into this Python environment"),
                name: str = typer.Option(KERNEL_NAME, help="kernel name")) -> None:
    """Install the Emergent kernel (default: --user)."""
    if user and sys_prefix:
        raise typer.BadParameter("choose one of --user and --sys-prefix")
    where = install(user=not sys_prefix, prefix=sys.prefix if sys_prefix else None, name=name)
    typer.echo(f"installed kernel {name!r} (display name 'Emergent') in {where}")


@app.command("spec")
def spec_cmd() -> None:
    """Print the kernel spec this command would install."""
    typer.echo(json.dumps(kernel_spec(), indent=2))
