"""One error family for the whole workstation.

Two branches, as in pydantic-ai: :class:`UsageError` for mistakes the caller can fix (bad input,
bad configuration, a missing extra) and :class:`OperationalError` for run-time failures (a store
that went away, a corrupt archive, a killed process). Every message names the input and says what
to do. Constructors never log; the CLI turns these into friendly exits at the edge.
"""

from __future__ import annotations

from typing import Any


class EmergentError(Exception):
    """Base of every error raised by emergent."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        self.message = message
        if hint is not None:
            self.hint = hint
        self.fields = fields
        for key, value in fields.items():
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


__all__ = [
    "BackupError",
    "ConfigError",
    "EmbedderMismatchError",
    "EmergentError",
    "IntegrityError",
    "MissingExtraError",
    "NotFoundError",
    "OperationalError",
    "ScopeError",
    "StoreUnavailableError",
    "TimeoutExceeded",
    "UnknownChoiceError",
    "UsageError",
    "ValidationError",
]
