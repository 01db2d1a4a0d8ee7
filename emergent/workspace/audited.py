"""How a service records an action in the audit trail: intent before, outcome after.

Every service that changes something receives an :class:`emergent.audit.Auditor` and a principal
directory (:class:`emergent.principals.Principals`) from the composition root, and wraps each
write-or-stronger action in :func:`recorded`:

* the **intent** (kind, principal, what is about to happen) is written durably *before* the
  action runs; if that write fails, :class:`~emergent.errors.AuditWriteError` propagates and the
  action never starts;
* the **outcome** (``phase`` ``done`` with what the action reports, or ``failed`` with the error)
  is written durably after it; a failed outcome write makes the action report failure too.

Entries of one action share their kind (``memory.forget``); ``data["phase"]`` says which is which
(``intent`` / ``done`` / ``failed``). ``done=`` names a different kind for a successful outcome
where a reader looks for it by name (``workspace.restore`` → ``workspace.restored``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from emergent.errors import AuditWriteError, PrincipalError
from emergent.principals import HOW_TO_GET_ONE, Principal

#: the audit table's ``kind`` column is 32 characters
MAX_KIND = 32


def check_kind(kind: str) -> str:
    if len(kind) > MAX_KIND:  # a programming error, caught by the tests of each service
        raise ValueError(f"audit kind {kind!r} is longer than {MAX_KIND} characters")
    return kind


def verified(principals: Any, principal: Any) -> Principal:
    """``principal`` if ``principals`` (the workspace's directory) issued it, else :class:`PrincipalError`."""
    if principals is None:
        raise PrincipalError("this service has no principal directory, so it cannot tell who acts",
                             hint="build it through Workstation (ws.memory, ws.graph, ...) or pass principals=")
    return principals.verify(principal)  # type: ignore[no-any-return]


def human(principals: Any, principal: Any, what: str) -> Principal:
    """The verified principal if it is a human; a :class:`PrincipalError` naming ``what`` otherwise."""
    who = verified(principals, principal)
    if not who.is_human:
        raise PrincipalError(f"{who.key} may not {what}", hint="a human decides this: pass by=ws.principal "
                                                               "(the OS user at the keyboard)", principal=who.key)
    return who


def require(principal: Any, what: str) -> None:
    """A missing principal keyword, said plainly (services take ``principal=`` or ``by=``)."""
    if principal is None:
        raise PrincipalError(f"{what} needs to know who acts", hint=HOW_TO_GET_ONE)


@contextlib.contextmanager
def recorded(audit: Any, kind: str, principal: Any, data: dict[str, Any], *,
             done: str | None = None) -> Iterator[dict[str, Any]]:
    """Record the intent of an action (durably, before it runs), then its outcome.

    The block receives a dict; what it puts there is added to the outcome entry. Without an
    auditor (``audit=None``) this records nothing: only services built outside a workspace (unit
    tests, benchmarks) have none.
    """
    outcome: dict[str, Any] = {}
    if audit is None:
        yield outcome
        return
    audit.append(check_kind(kind), principal, {**data, "phase": "intent"}, durable=True)
    try:
        yield outcome
    except BaseException as exc:
        with contextlib.suppress(AuditWriteError):  # the action's own error is the one to report
            audit.append(check_kind(kind), principal,
                         {**data, "phase": "failed", "error": f"{type(exc).__name__}: {str(exc)[:500]}"},
                         durable=True)
        raise
    audit.append(check_kind(done or kind), principal, {**data, **outcome, "phase": "done"}, durable=True)


def note(audit: Any, kind: str, principal: Any, data: dict[str, Any], *, durable: bool = True) -> None:
    """One entry (a decision, a state change that is a single write); nothing without an auditor."""
    if audit is not None:
        audit.append(check_kind(kind), principal, data, durable=durable)
