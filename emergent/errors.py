"""One error family for the whole workstation.

Two branches, as in pydantic-ai: :class:`UsageError` for mistakes the caller can fix (bad input,
bad configuration, a missing extra) and :class:`OperationalError` for run-time failures (a store
that went away, a corrupt archive, a killed process). Every message names the input and says what
to do. Constructors never log; the CLI turns these into friendly exits at the edge.
"""

from __future__ import annotations

from typing import Any

#: attribute names of an error that its fields never overwrite
_RESERVED = frozenset({"message", "hint", "fields", "args", "with_traceback", "add_note", "__notes__",
                       "__traceback__", "__cause__", "__context__", "__suppress_context__"})


class EmergentError(Exception):
    """Base of every error raised by emergent."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        self.message = message
        if hint is not None:
            self.hint = hint
        self.fields = fields
        for key, value in fields.items():
            # a field named like the error's own members (message, hint, fields, args...) stays in .fields
            # only: a caller-supplied value must not replace what the error says or what it carries
            if key not in _RESERVED:
                setattr(self, key, value)
        super().__init__(self._render())

    def _render(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


# ---------------------------------------------------------------- usage / configuration mistakes
class UsageError(EmergentError):
    """The caller asked for something that cannot work as asked."""


class ValidationError(UsageError, ValueError):
    """Input failed validation at the boundary; nothing was written."""


class ConfigError(UsageError):
    """Settings are missing or inconsistent."""


class NotFoundError(UsageError, KeyError):
    """A named thing (memory, tool, backup, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self._render()


class UnknownChoiceError(NotFoundError):
    """A string id did not match any registered choice."""


class MissingExtraError(UsageError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the Python package {module!r}, which is not installed",
            hint=f"install it with: pip install 'emergent[{extra}]'",
            feature=feature,
            extra=extra,
            module=module,
        )


class ScopeError(UsageError):
    """A read or delete tried to cross a memory scope."""


class EmbedderMismatchError(ConfigError):
    """The store was built with a different embedding model than the one configured."""


# ---------------------------------------------------------------- run-time failures
class OperationalError(EmergentError):
    """Something failed while running; the input was fine."""


class StoreUnavailableError(OperationalError):
    """A backing store (Redis, LanceDB, SQL) did not answer."""


class BackupError(OperationalError):
    """A backup could not be created, verified or restored."""


class IntegrityError(OperationalError):
    """Stored data failed a checksum or hash-chain check."""


class TimeoutExceeded(OperationalError, TimeoutError):
    """An operation ran past its time limit."""


class StoreResetError(StoreUnavailableError):
    """A store answers but lost what this workspace wrote (e.g. Redis restarted without persistence,
    was flushed, or failed over to an empty replica); the message names what was lost and the
    hint what to do. Reads and writes are refused until the loss is acknowledged."""


class StoreCorruptError(StoreUnavailableError):
    """A store's files are damaged, missing or inconsistent (a truncated or overwritten database, a
    deleted LanceDB data file, a manifest cut short, a database that vanished while the rest of the
    workspace is there). ``path`` names the file or directory; the hint says how to recover
    (restore a backup, ``emergent doctor``). ``committed_ids`` is set on a failed write."""


class DiskFullError(StoreUnavailableError):
    """The filesystem holding a store is full (``path``; ``free_bytes`` when known). Nothing more
    could be written there; ``committed_ids`` (on a write) lists what was stored before it filled."""


class PartialWriteError(OperationalError):
    """A write failed after part of it was committed. ``committed_ids`` lists exactly what is
    stored (retry only the rest), ``failed_ids`` what is not; the cause is chained."""


# ---------------------------------------------------------------- tools and the autonomy gate
class DependencyConflictError(UsageError):
    """Tool dependencies (tool versions or Python requirements) cannot all be satisfied."""


class TransientError(OperationalError):
    """A failure worth retrying (rate limit, 5xx, dropped connection); the runner retries these."""

    retryable = True


class ToolExecutionError(OperationalError):
    """A tool raised, hung or returned something other than its declared result type."""


class CircuitOpenError(OperationalError):
    """A tool failed repeatedly; its circuit breaker refuses calls until the cool-down ends."""


class SandboxLimitError(OperationalError):
    """A sandboxed process was killed by a limit (time, memory, output, processes)."""


class PermissionDenied(OperationalError, PermissionError):
    """The autonomy gate refused an action (policy, pause, suspension or a human's rejection)."""


class PrincipalError(UsageError, PermissionError):
    """An action came without a principal, or with one this workspace did not issue."""


class ApprovalStaleError(PermissionDenied):
    """What an approval was granted for changed (arguments or the content of a file it reads or runs)."""


class AuditWriteError(OperationalError):
    """The audit trail could not be written, so the action it records did not run (or is reported failed)."""


class ApprovalPending(OperationalError):
    """The action waits for a human's approval; resume it once the approval is decided."""


# ---------------------------------------------------------------- external integrations
class CredentialError(ConfigError):
    """An integration's credential is missing or was rejected; ``setting`` names the variable."""


class MissingScopeError(CredentialError):
    """The credential works but lacks a scope or permission (``needed``; ``provided`` when known)."""


class IntegrationError(OperationalError):
    """A vendor API failed or answered with an error it documents (``integration``, ``status``)."""


class IntegrationUnavailableError(IntegrationError, TransientError):
    """The vendor answered 5xx or could not be reached; a later retry may succeed."""


class RateLimitedError(IntegrationError, TransientError):
    """The vendor kept answering 429 (or its rate-limit equivalent) past the retry budget."""


class MalformedResponseError(IntegrationError):
    """The vendor answered with a body that does not have the documented shape."""


# ---------------------------------------------------------------- LLM, proposals and experiments
class LLMError(OperationalError):
    """The language model endpoint failed (timeout, rate limit, server error, unreadable reply)."""


class LLMOutputError(LLMError):
    """The model answered, but not usably: it refused, or its JSON does not match the schema."""


class StateConflictError(OperationalError):
    """A record changed state under us (e.g. a proposal decided twice); nothing was written."""


class ExperimentError(OperationalError):
    """An experiment cannot reach a valid decision (too few units, sample-ratio mismatch, crash)."""


__all__ = [
    "ApprovalPending",
    "ApprovalStaleError",
    "AuditWriteError",
    "PrincipalError",
    "BackupError",
    "CircuitOpenError",
    "ConfigError",
    "CredentialError",
    "IntegrationError",
    "IntegrationUnavailableError",
    "MalformedResponseError",
    "MissingScopeError",
    "RateLimitedError",
    "EmbedderMismatchError",
    "DependencyConflictError",
    "DiskFullError",
    "EmergentError",
    "ExperimentError",
    "IntegrityError",
    "LLMError",
    "LLMOutputError",
    "MissingExtraError",
    "NotFoundError",
    "OperationalError",
    "PartialWriteError",
    "PermissionDenied",
    "SandboxLimitError",
    "StateConflictError",
    "StoreCorruptError",
    "ScopeError",
    "StoreUnavailableError",
    "StoreResetError",
    "TimeoutExceeded",
    "ToolExecutionError",
    "TransientError",
    "UnknownChoiceError",
    "UsageError",
    "ValidationError",
]
