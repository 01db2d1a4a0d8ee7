"""``emergent doctor [--repair] [--json]``: check every store of a workspace and say what to do.

Exit 0 when the workspace is healthy, 1 when something needs attention. ``--repair`` rolls back or
completes an interrupted restore, removes what killed backups and restores left (only what is
provably a copy), acknowledges a Redis that lost the workspace's short-term memory, and starts a
new database only when the old one vanished or was emptied (the empty file kept beside it).
The checks themselves are :func:`emergent.workspace.doctor.diagnose`; this module only wires the
workspace's stores to it, each opened on its own so that one broken store hides no other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from emergent.cli._common import HOME

if TYPE_CHECKING:  # pragma: no cover
    from emergent.workstation import Workstation

app = typer.Typer(invoke_without_command=True)


def _stm(ws: Workstation) -> Any:
    """The workspace's short-term memory; built directly when the memory service cannot open
    (a damaged long-term memory must not hide whether Redis lost its data)."""
    try:
        return ws.memory.stm
    except Exception:  # noqa: BLE001 - the lance check reports why memory does not open
        return ws.open_stm()


@app.callback()
def doctor(repair: bool = typer.Option(False, "--repair", help="fix what can be fixed safely (see the help)"),
           as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
           home: str = HOME) -> None:
    """Check the workspace's stores (SQL, LanceDB, short-term memory, Redis), an interrupted restore,
    leftovers of killed backups, and the audit chain; say what to do for each finding. Exit 0 when
    healthy, 1 otherwise."""
    from emergent.cli import _common
    from emergent.workspace import journal
    from emergent.workspace.doctor import DoctorStores, diagnose
    from emergent.workstation import Workstation

    with journal.inspect_only():  # look first: opening must not recover or clean behind our back
        ws = Workstation.open(home, create=_common.CREATE)
    try:
        stores = DoctorStores(
            path=Path(ws.path), sql=lambda: ws.sql, lance=lambda: ws.lance, stm=lambda: _stm(ws),
            audit=lambda: ws.audit, recover=lambda: journal.recover(ws.path, ws._stores),
            database_url=ws.settings.database_url, redis_url=ws.settings.redis_url)
        report = diagnose(stores, repair=repair)
    finally:
        try:
            ws.close()
        except Exception as exc:  # noqa: BLE001 - a store that cannot even close is already a finding
            typer.secho(f"note: closing the workspace failed: {exc}", err=True)
    typer.echo(json.dumps(report.as_dict(), indent=2, default=str) if as_json else report.text())
    raise typer.Exit(0 if report.healthy else 1)
