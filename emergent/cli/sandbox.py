"""``emergent sandbox``: run one command in the sandbox; show the isolation this machine gives.

``emergent sandbox run [--timeout S] [--memory MB] [--no-network] [--kill MECHANISM] [-v] -- CMD ARGS...``
prints the command's output and exits with its status; when a limit killed it, a message goes to
stderr (with the isolation level and the kill mechanism the run got) and the exit status is 124
(timeout), 152 (cpu), 153 (memory), 154 (file size), 155 (output) or 156 (processes). ``-v`` also
reports them for a run that ended by itself.

``emergent sandbox info`` (alias ``isolation``) prints what this machine gives as JSON: the level
(process | network | namespace), the kill guarantee (pid-namespace | subreaper | cgroup |
process-group), which mechanisms work here, the system calls every run is refused and those a
run of the `unshare` backend without network is refused on top.
"""

from __future__ import annotations

import json
import sys

import typer

app = typer.Typer(no_args_is_help=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(cmd: list[str] = typer.Argument(..., help="the command and its arguments (after --)"),
        timeout: float = typer.Option(10.0, help="wall-clock seconds"),
        memory: int = typer.Option(512, help="address-space limit in MiB"),
        cpu: int = typer.Option(None, help="CPU seconds (default: the timeout, rounded up)"),
        no_network: bool = typer.Option(True, "--no-network/--network", help="cut the network (default)"),
        output: int = typer.Option(1_000_000, help="cap on stdout+stderr bytes"),
        backend: str = typer.Option("auto", help="auto (bubblewrap when usable) | bwrap | unshare"),
        kill: str = typer.Option("auto", help="how the run's processes are made to end: auto | pid-namespace | "
                                              "subreaper | cgroup | process-group (not auto: no bubblewrap)"),
        require: str = typer.Option("none", help="refuse to run below this isolation: process|network|namespace"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="report isolation and kill mechanism on stderr")) -> None:
    """Run CMD in the sandbox and exit with its status."""
    from emergent.tools.sandbox import EXIT_CODES, Limits, Sandbox

    limits = Limits(timeout=timeout, memory_mb=memory, cpu_seconds=cpu or int(timeout) + 1,
                    output_bytes=output, network=not no_network)
    res = Sandbox(limits, require=require, backend=backend, kill=kill).run(cmd)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    got = f"isolation: {res.isolation}, kill: {res.kill}"
    if res.killed_by:
        typer.secho(f"sandbox: killed by the {res.killed_by} limit after {res.duration_s:.2f} s ({got})",
                    fg="red", err=True)
        raise typer.Exit(EXIT_CODES[res.killed_by])
    rc = res.returncode or 0
    if verbose:
        typer.echo(f"sandbox: exited with {rc} after {res.duration_s:.2f} s ({got})", err=True)
    raise typer.Exit(rc if rc >= 0 else 128 - rc)


@app.command()
def info() -> None:
    """Which isolation and kill guarantee a sandboxed run gets on this machine."""
    from emergent.tools.sandbox import isolation, python_executable

    typer.echo(json.dumps({**isolation(), "python": python_executable()}, indent=2))


app.command("isolation", help="Same as `info`.")(info)
