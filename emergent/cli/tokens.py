"""``emergent tokens``: API tokens of the REST API (``emergent serve``).

A person at the keyboard creates them: for themselves (``--role admin|operator|viewer``) or, with
``--as agent:NAME``, for an agent (``--role agent``) or a service (``--role viewer``). The secret is
printed once; only its sha256 is kept. Every token expires (``--ttl``, at most
``EMERGENT_API__TOKEN_MAX_TTL_DAYS``) and can be revoked (effective on the next request).
"""

from __future__ import annotations

import json
import re
from typing import Any

import typer

from emergent.cli._common import HOME, workstation
from emergent.cli.principals import acting

app = typer.Typer(no_args_is_help=True, help="API tokens of the REST API: create (printed once), list, revoke.")

_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_ttl(text: str | None) -> float | None:
    """``30d``, ``12h``, ``90m``, ``3600`` (seconds) → seconds; None for the maximum."""
    from emergent.errors import ValidationError

    if text is None:
        return None
    m = _TTL.match(text.lower())
    if not m:
        raise ValidationError(f"--ttl {text!r} is not a lifetime", hint="e.g. --ttl 30d, 12h, 90m or 3600 (seconds)",
                              field="ttl")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _when(t: float | None) -> str:
    from emergent.clock import iso

    return "" if t is None else iso(t)


@app.command("create")
def create(role: str = typer.Option(..., "--role", metavar="admin|operator|viewer|agent",
                                    help="what the token may do (admin ⊃ operator ⊃ viewer; agent: an agent's own "
                                         "scope)"),
           as_: str = typer.Option(None, "--as", metavar="agent:NAME|service:NAME",
                                   help="the agent (or service) the token acts as; default: you"),
           ttl: str = typer.Option(None, "--ttl", help="lifetime: 30d, 12h, 90m or seconds (default: the maximum, "
                                                       "EMERGENT_API__TOKEN_MAX_TTL_DAYS)"),
           label: str = typer.Option(None, help="a note: which client uses it"),
           home: str = HOME) -> None:
    """Create a token; its secret is printed once (store it in the client's configuration)."""
    with workstation(home) as ws:
        info, secret = ws.tokens.create(acting(ws, as_), role, by=ws.principal, ttl_s=parse_ttl(ttl), label=label)
        typer.secho(f"token {info.id} ({info.role}) acts as {info.principal} until {_when(info.expires_at)}; "
                    "the secret is shown only now:", err=True)
        typer.echo(secret)


@app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="include revoked and expired tokens"),
          as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List tokens (ids, principals, roles, expiry; never the secrets)."""
    with workstation(home) as ws:
        now = ws.clock.now()
        rows: list[dict[str, Any]] = [t.to_dict() | {"active": t.active(now)}
                                      for t in ws.tokens.list(include_inactive=all_)]
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no tokens" + ("" if all_ else " (--all shows revoked and expired ones)"))
    for r in rows:
        state = "active" if r["active"] else (f"revoked by {r['revoked_by']}" if r["revoked_at"] else "expired")
        typer.echo(f"{r['id']}\t{r['principal']}\t{r['role']}\t{state}\texpires {_when(r['expires_at'])}\t"
                   f"{r['label'] or ''}")


@app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="the token id (from `emergent tokens list`)"),
           home: str = HOME) -> None:
    """Revoke a token (effective on the next request of every instance)."""
    with workstation(home) as ws:
        info = ws.tokens.revoke(token_id, by=ws.principal)
        typer.echo(f"revoked {info.id} ({info.principal}, {info.role})")
