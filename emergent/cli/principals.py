"""``emergent principals``: who may act in a workspace (list, whoami, grant, revoke, agent).

The command line is a boundary that knows who it is: every command acts as the OS user running it
(``ws.principal``), never as a name typed on the command line. ``--as agent:NAME`` (on ``tools
call``) only *lowers* trust to an agent or service that a human already created, to try a policy.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)

AS = typer.Option(None, "--as", metavar="agent:NAME|service:NAME",
                  help="act as an existing agent (or a service) instead of yourself: lowers trust, e.g. to try "
                       "a policy; a person is always the OS user running the command")


def acting(ws: Any, as_: str | None = None) -> Any:
    """The principal a command acts as: the process's own (the OS user), or, with ``--as``, an
    existing agent or a service: never another human."""
    from emergent.errors import PrincipalError, UsageError

    me = ws.principal
    if not as_:
        return me
    kind, sep, name = as_.partition(":")
    if not sep or kind not in ("agent", "service") or not name:
        raise UsageError(f"--as {as_!r}: a command can act only as an agent (agent:NAME) or a service "
                         f"(service:NAME) instead of you",
                         hint="a person acting is always the OS user running the command; drop --as to act "
                              "as yourself")
    if not me.is_human:
        raise PrincipalError(f"--as lowers trust from a person, but this process acts as {me.key}",
                             hint="unset EMERGENT_PRINCIPAL to act as yourself, then pass --as")
    if kind == "service":
        return ws.principals.service(name)
    try:
        return ws.principals.agent(name)
    except PrincipalError:
        raise PrincipalError(f"agent {name!r} does not exist in this workspace",
                             hint=f"create it first: `emergent principals agent {name}`") from None


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List the principals of this workspace with their roles and who created them."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        _ = ws.principal  # the OS user is a principal of every workspace it opened
        rows = ws.principals.list()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    table = Table("principal", "kind", "roles", "created by")
    for r in rows:
        table.add_row(r["key"], r["kind"], ", ".join(r["roles"]) or "-", r["created_by"])
    Console().print(table)


@app.command()
def whoami(home: str = HOME) -> None:
    """The principal this command line acts as, and its roles."""
    with workstation(home) as ws:
        me = ws.principal
        typer.echo(json.dumps({"principal": me.key, "kind": me.kind,
                               "roles": sorted(ws.principals.roles(me))}))


@app.command()
def grant(role: str = typer.Argument(..., help="e.g. role:analyst"),
          to: str = typer.Option(..., "--to", help="principal key, e.g. agent:scout"), home: str = HOME) -> None:
    """Grant ROLE to a principal (you, the OS user, grant it; recorded in the audit trail)."""
    with workstation(home) as ws:
        roles = ws.principals.grant(role, to=to, by=ws.principal)
        typer.echo(f"{to}: {', '.join(sorted(roles)) or '-'}")


@app.command()
def revoke(role: str = typer.Argument(..., help="e.g. role:analyst"),
           to: str = typer.Option(..., "--to", help="principal key, e.g. agent:scout"), home: str = HOME) -> None:
    """Revoke ROLE from a principal (roles named in emergent.toml stay)."""
    with workstation(home) as ws:
        roles = ws.principals.revoke(role, to=to, by=ws.principal)
        typer.echo(f"{to}: {', '.join(sorted(roles)) or '-'}")


@app.command()
def agent(name: str = typer.Argument(..., help="the agent's name (letters, digits, _ . -)"),
          home: str = HOME) -> None:
    """Create agent NAME, created by you (the OS user); it gets its own principal and memory scope."""
    with workstation(home) as ws:
        p = ws.principals.agent(name, created_by=ws.principal)
        typer.echo(p.key)
