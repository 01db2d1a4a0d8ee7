"""Saved scripts and extraction templates (versioned) and replay runs, in SQL.

A script or template is saved once per version; a version is never changed afterwards. The newest
*active* version is what ``script(name)`` returns; a *proposed* version (a healed script, a learned
template) waits for a person to accept it (then it is active) or reject it. The store does not
audit: :class:`~emergent.browser.session.BrowserService` audits every save, acceptance and run under
the principal that did it, before it calls the store.
"""

from __future__ import annotations

import builtins
import json
import uuid
from typing import Any, Literal

import sqlalchemy as sa

from emergent.browser.model import ExtractionTemplate, ReplayResult, Script
from emergent.browser.tables import browser_artifacts, browser_runs
from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, StateConflictError, ValidationError

Kind = Literal["script", "template"]
STATUSES = ("active", "proposed", "rejected")
_MODELS: dict[str, Any] = {"script": Script, "template": ExtractionTemplate}


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def next_version(version: str, part: Literal["major", "minor", "patch"] = "minor") -> str:
    major, minor, patch = _vkey(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


class BrowserStore:
    def __init__(self, sql: Any, *, clock: Clock | None = None) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()

    # ------------------------------------------------------------------ scripts and templates
    def save(self, item: Script | ExtractionTemplate, *, by: str, status: str = "active",
             note: str | None = None) -> Script | ExtractionTemplate:
        """Save ``item`` as a new version. When its version exists already: the same content is a no-op
        (returns the stored one); other content gets the next free minor version. Returns what was stored."""
        kind: Kind = "script" if isinstance(item, Script) else "template"
        if status not in STATUSES:
            raise ValidationError(f"status {status!r} is not one of {', '.join(STATUSES)}", field="status")
        digest = item.digest()
        with self.sql.begin() as conn:
            rows = conn.execute(sa.select(browser_artifacts.c.version, browser_artifacts.c.digest)
                                .where(browser_artifacts.c.kind == kind, browser_artifacts.c.name == item.name)
                                ).all()
            versions = {r.version: r.digest for r in rows}
            if versions.get(item.version) == digest:
                return item
            if item.version in versions:
                newest = max(versions, key=_vkey)
                item = item.model_copy(update={"version": next_version(newest)})
            conn.execute(browser_artifacts.insert().values(
                kind=kind, name=item.name, version=item.version, body=item.model_dump_json(), digest=digest,
                status=status, note=note, created_by=by, created_at=self.clock.now()))
        return item

    def get(self, kind: Kind, name: str, version: str | None = None) -> Script | ExtractionTemplate:
        """The given version, or the newest active one."""
        t = browser_artifacts.c
        q = sa.select(t.version, t.body, t.status).where(t.kind == kind, t.name == name)
        if version is not None:
            q = q.where(t.version == version)
        with self.sql.connect() as conn:
            rows = conn.execute(q).all()
        if version is None:
            rows = [r for r in rows if r.status == "active"]
        if not rows:
            known = sorted({i["name"] for i in self.list(kind)})
            what = f"{kind} {name!r}" + (f" version {version}" if version else "")
            raise NotFoundError(f"no {what} is saved", hint=f"saved {kind}s: {', '.join(known) or 'none'}",
                                name=name)
        row = max(rows, key=lambda r: _vkey(r.version))
        return _MODELS[kind].model_validate_json(row.body)

    def script(self, name: str, version: str | None = None) -> Script:
        out = self.get("script", name, version)
        assert isinstance(out, Script)
        return out

    def template(self, name: str, version: str | None = None) -> ExtractionTemplate:
        out = self.get("template", name, version)
        assert isinstance(out, ExtractionTemplate)
        return out

    def list(self, kind: Kind, *, name: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """One dict per stored version (name, version, status, digest, note, created_by, created_at)."""
        t = browser_artifacts.c
        q = sa.select(t.name, t.version, t.status, t.digest, t.note, t.created_by, t.created_at).where(t.kind == kind)
        if name is not None:
            q = q.where(t.name == name)
        if status is not None:
            q = q.where(t.status == status)
        with self.sql.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        return sorted(rows, key=lambda r: (r["name"], _vkey(r["version"])))

    def set_status(self, kind: Kind, name: str, version: str, status: str, *, expect: str | None = None) -> None:
        """Move one version to ``status`` (compare-and-set on ``expect`` when given)."""
        if status not in STATUSES:
            raise ValidationError(f"status {status!r} is not one of {', '.join(STATUSES)}", field="status")
        t = browser_artifacts.c
        q = browser_artifacts.update().where(t.kind == kind, t.name == name, t.version == version)
        if expect is not None:
            q = q.where(t.status == expect)
        with self.sql.begin() as conn:
            n = conn.execute(q.values(status=status)).rowcount
        if n == 0:
            self.get(kind, name, version)  # NotFoundError when it does not exist
            raise StateConflictError(f"{kind} {name!r} version {version} is not {expect}",
                                     hint="list the versions to see their status")

    # ------------------------------------------------------------------ runs
    def start_run(self, script: Script, *, by: str, run_id: str | None = None) -> str:
        rid = run_id or uuid.uuid4().hex[:16]
        with self.sql.begin() as conn:
            conn.execute(browser_runs.insert().values(
                id=rid, script=script.name, version=script.version, principal=by, status="running", healed=0,
                started_at=self.clock.now()))
        return rid

    def finish_run(self, result: ReplayResult) -> None:
        with self.sql.begin() as conn:
            conn.execute(browser_runs.update().where(browser_runs.c.id == result.run_id).values(
                status=result.status, healed=result.healed, proposed_version=result.proposed_version,
                trace=result.trace, error=result.error, result=result.model_dump_json(),
                finished_at=self.clock.now()))

    def runs(self, *, script: str | None = None, limit: int = 50) -> builtins.list[dict[str, Any]]:
        t = browser_runs.c
        q = sa.select(t.id, t.script, t.version, t.principal, t.status, t.healed, t.proposed_version, t.trace,
                      t.error, t.started_at, t.finished_at).order_by(t.started_at.desc()).limit(limit)
        if script is not None:
            q = q.where(t.script == script)
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def run(self, run_id: str) -> ReplayResult | None:
        with self.sql.connect() as conn:
            body = conn.execute(sa.select(browser_runs.c.result).where(browser_runs.c.id == run_id)).scalar()
        return ReplayResult.model_validate(json.loads(body)) if body else None
