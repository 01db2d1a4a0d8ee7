"""``emergent keys``: the data keys of encryption at rest (list), and their rotation (audited)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="one JSON list"), home: str = HOME) -> None:
    """The data keys (id, purpose, created, retired) and the KEK's fingerprint; never key material."""
    with workstation(home) as ws:
        ring = ws.keyring
        ring.check()
        keys = ring.data_keys()
        if as_json:
            typer.echo(json.dumps({"kek_fingerprint": ring.kek_fingerprint,
                                   "keys": [dataclasses.asdict(k) for k in keys]}))
            return
        typer.echo(f"KEK fingerprint {ring.kek_fingerprint}")
        for k in keys:
            state = "retired" if k.retired_at is not None else "active"
            typer.echo(f"{k.id}  {k.purpose:<22} {state:<8} by {k.created_by}")


@app.command("rotate-data-key")
def rotate_data_key(purpose: str = typer.Argument(..., help="memory.ltm, memory.stm or sql.assistant_runs"),
                    home: str = HOME) -> None:
    """New writes of PURPOSE use a new data key; what is sealed under the old ones stays readable."""
    with workstation(home) as ws:
        key = ws.keyring.rotate_data_key(purpose, by=ws.principal)
        typer.echo(f"{purpose}: new data key {key}")


@app.command("rotate-kek")
def rotate_kek(out: Path = typer.Option(None, "--out", help="write the new KEK to this new file (0600); needed "
                                                             "when the KEK comes from EMERGENT_SECURITY__KEK"),
               home: str = HOME) -> None:
    """Re-wrap every data key under a new key-encryption key (no sealed data is rewritten).

    With a KEK file, the new key replaces it (written beside it first, then renamed over it after the
    data keys are re-wrapped); with EMERGENT_SECURITY__KEK, ``--out`` receives the new key and the
    variable must be set to it before the next start."""
    from emergent.errors import UsageError
    from emergent.security.crypto import new_kek, write_kek

    with workstation(home) as ws:
        sec = ws.settings.security
        from_env = sec.kek is not None
        if from_env and out is None:
            raise UsageError("the KEK comes from EMERGENT_SECURITY__KEK: say where the new one goes",
                             hint="emergent keys rotate-kek --out /secure/place/kek.new, then set the variable "
                                  "to its content")
        current = Path(sec.kek_file or ws.settings.audit_anchor_dir() / "kek")
        target = out if out is not None else current.with_name(current.name + ".new")
        kek = new_kek()
        write_kek(target, kek)  # refuses an existing file: never overwrite a key
        n = ws.keyring.rotate_kek(kek, by=ws.principal)
        if not from_env and out is None:
            os.replace(target, current)
            typer.echo(f"re-wrapped {n} data keys; {current} holds the new KEK")
        else:
            typer.echo(f"re-wrapped {n} data keys; the new KEK is in {target}: "
                       + ("set EMERGENT_SECURITY__KEK to it now" if from_env else
                          f"point EMERGENT_SECURITY__KEK_FILE at it (the old {current} opens nothing now)"))


@app.command()
def reseal(drop_history: bool = typer.Option(False, "--drop-history",
                                             help="also remove older LanceDB versions (they hold the plaintext; "
                                                  "no rewind reaches before this afterwards)"),
           home: str = HOME) -> None:
    """Seal the long-term memories stored in the clear before encryption was turned on."""
    from emergent.workspace.audited import human, recorded

    with workstation(home) as ws:
        who = human(ws.principals, ws.principal, "reseal memory")
        with recorded(ws.audit, "crypto.resealed", who, {"drop_history": drop_history}) as outcome:
            done = ws.memory.ltm.reseal(drop_history=drop_history)
            outcome.update(done)
        typer.echo(f"sealed {done['memories']} memories and {done['memories_archive']} archived ones"
                   + ("; older versions removed" if drop_history else
                      "; older versions still hold them until removed (--drop-history)"))
