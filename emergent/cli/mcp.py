"""``emergent mcp``: serve the workspace's tools over MCP; manage the HTTP bearer tokens.

``emergent mcp serve`` speaks stdio as the OS user running it (``--as agent:NAME`` lowers that to
an existing agent); ``--http HOST:PORT`` serves streamable HTTP at ``http://HOST:PORT/mcp``, where
each request acts as the principal of its bearer token. Tokens are created by a person
(``emergent mcp token create --as agent:NAME``), printed once, stored hashed and revocable.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation
from emergent.cli.principals import acting

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens for `emergent mcp serve --http`.")
app.add_typer(token_app, name="token")

SERVE_AS = typer.Option(None, "--as", metavar="agent:NAME|service:NAME",
                        help="stdio only: act as an existing agent (or a service) instead of you (lowers trust; "
                             "recommended for an LLM client)")


def _host_port(value: str) -> tuple[str, int]:
    from emergent.errors import ValidationError

    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"--http {value!r} is not HOST:PORT", hint="e.g. --http 127.0.0.1:8765")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def _tokens(ws: Any) -> Any:
    from emergent.mcp.tokens import TokenStore

    return TokenStore(ws.sql, principals=ws.principals, audit=ws.audit, clock=ws.clock)


def _server(ws: Any) -> Any:
    try:
        from emergent.mcp.server import MCPServer
    except ModuleNotFoundError as exc:
        from emergent.errors import MissingExtraError

        raise MissingExtraError("emergent mcp", "mcp", exc.name or "mcp") from None
    return MCPServer(ws.tools, audit=ws.audit, principals=ws.principals)


@app.command()
def serve(http: str = typer.Option(None, "--http", metavar="HOST:PORT",
                                   help="serve streamable HTTP at http://HOST:PORT/mcp (bearer tokens) instead of "
                                        "stdio"),
          as_: str = SERVE_AS, home: str = HOME) -> None:
    """Serve the enabled tools over MCP (stdio by default); every call passes the policy gate."""
    from emergent.errors import UsageError

    with workstation(home) as ws:
        server = _server(ws)
        if http:
            if as_:
                raise UsageError("--as applies to stdio; over HTTP each request acts as its token's principal",
                                 hint="create a token for the agent: `emergent mcp token create --as agent:NAME`")
            host, port = _host_port(http)
            typer.secho(f"serving MCP at http://{host}:{port}/mcp (bearer token required)", err=True)
            server.run_http(_tokens(ws), host=host, port=port)
        else:
            server.run_stdio(acting(ws, as_))


@token_app.command("create")
def token_create(as_: str = typer.Option(..., "--as", metavar="agent:NAME|service:NAME",
                                         help="the existing agent (or service) the token acts as"),
                 label: str = typer.Option(None, help="a note: which client uses it"),
                 home: str = HOME) -> None:
    """Create a token (printed once: store it in the client's configuration)."""
    with workstation(home) as ws:
        info, secret = _tokens(ws).create(acting(ws, as_), by=ws.principal, label=label)
        typer.secho(f"token {info.id} acts as {info.principal}; it is shown only now:", err=True)
        typer.echo(secret)


@token_app.command("list")
def token_list(all_: bool = typer.Option(False, "--all", help="include revoked tokens"),
               as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List tokens (their ids and principals; never the secrets)."""
    with workstation(home) as ws:
        rows = [t.to_dict() for t in _tokens(ws).list(include_revoked=all_)]
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    for r in rows:
        state = "active" if r["active"] else f"revoked by {r['revoked_by']}"
        typer.echo(f"{r['id']}\t{r['principal']}\t{state}\t{r['label'] or ''}")


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(None, help="the token id (from `emergent mcp token list`)"),
                 principal: str = typer.Option(None, "--principal", metavar="agent:NAME",
                                               help="revoke every active token of this principal"),
                 home: str = HOME) -> None:
    """Revoke a token, or every token of a principal (effective on the next request)."""
    with workstation(home) as ws:
        ids = _tokens(ws).revoke(token_id, principal=principal, by=ws.principal)
        typer.echo("revoked " + ", ".join(ids))
