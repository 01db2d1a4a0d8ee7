"""Point-in-time recovery of long-term memory from LanceDB's own table versions.

Every LanceDB write is a new table version; rolling back checks out the last version at or before
a moment and commits it as the newest version (so a rollback can itself be rolled back). No archive
is needed, but history only reaches back to the oldest version LanceDB still keeps (``optimize``
with cleanup, or a re-embed, shortens it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from emergent.clock import iso, to_epoch
from emergent.errors import NotFoundError, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from emergent.memory.service import Memory


def _version_at(table: Any, when: float) -> int | None:
    best = None
    for v in table.list_versions():
        if v["timestamp"].timestamp() <= when:  # LanceDB reports naive local time
            best = v["version"] if best is None else max(best, v["version"])
    return best


def restore_ltm_at(memory: Memory, when: float | str | Any) -> dict[str, int]:
    """Roll long-term memory (and its archive) back to how it was at ``when``.

    ``when`` is an epoch, a datetime (naive = UTC) or an ISO string, in wall-clock time: LanceDB
    stamps versions with the system clock, not the workstation's injected clock. The rollback is
    itself a new table version, so it can be undone with another point-in-time restore.
    """
    try:
        t = to_epoch(when, time.time())
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"invalid point in time {when!r}: {exc}", field="when") from None
    memory.flush()
    ltm = memory.ltm
    version = _version_at(ltm.table, t)
    if version is None:
        first = min(v["timestamp"] for v in ltm.table.list_versions())
        raise NotFoundError(f"long-term memory has no version at or before {iso(t)}",
                            hint=f"the oldest version is from {first.astimezone().isoformat(timespec='seconds')}")
    done = {"memories": version}
    if version != ltm.table.version:
        ltm.restore_version(version)
    archive_version = _version_at(ltm.archive, t)
    if archive_version is not None:
        done["memories_archive"] = archive_version
        if archive_version != ltm.archive.version:
            ltm.archive.checkout(archive_version)
            ltm.archive.restore()
    return done


def ltm_versions(memory: Memory) -> list[dict[str, Any]]:
    """Versions of the live LTM table with ISO timestamps and row counts (for choosing a point)."""
    return [{"version": v["version"], "time": v["timestamp"].astimezone().isoformat(timespec="seconds"),
             "rows": int(v.get("metadata", {}).get("total_rows", 0))} for v in memory.ltm.table.list_versions()]
