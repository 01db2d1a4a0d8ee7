"""A registry per extension axis (STM backends, embedders, LLMs, tools, executors...).

Built-ins register themselves exactly like a third-party package would: either by calling
``register`` or through an entry point in ``group``. A failed lookup names the key and suggests
close matches.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from emergent.errors import UnknownChoiceError

T = TypeVar("T")


def suggest(name: str, choices: list[str]) -> str:
    """A 'did you mean' hint for ``name`` among ``choices`` (empty when nothing is close)."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """Name -> factory, with lazy entry-point loading."""

    def __init__(self, axis: str, group: str | None = None) -> None:
        self.axis = axis
        self.group = group
        self._items: dict[str, T] = {}
        self._loaded_entry_points = group is None
        self._entry_points_done = group is None
        self._lock = threading.RLock()
        self.load_errors: dict[str, str] = {}  # entry points that failed to load, by name

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as a decorator when ``item`` is omitted."""
        if item is not None:
            self._items[name] = item
            return item

        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj

        return deco

    def _load_entry_points(self) -> None:
        if self._entry_points_done or self.group is None:
            return
        with self._lock:  # concurrent first lookups wait for the one loading (never see a half-filled registry)
            if self._loaded_entry_points:
                return
            self._loaded_entry_points = True
            try:
                for ep in metadata.entry_points(group=self.group):
                    try:
                        self._items.setdefault(ep.name, ep.load())
                    except Exception as exc:  # noqa: BLE001 - one broken plug-in must not hide the others
                        self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            finally:
                self._entry_points_done = True

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            if name in self.load_errors:
                raise UnknownChoiceError(f"{self.axis} {name!r} is installed but failed to load: "
                                         f"{self.load_errors[name]}", hint="reinstall or fix the package that "
                                         "provides it", name=name, axis=self.axis) from None
            known = sorted(self._items)
            hint = suggest(name, known) or f"known {self.axis}s: {', '.join(known) or 'none'}"
            raise UnknownChoiceError(
                f"unknown {self.axis} {name!r}", hint=hint, name=name, axis=self.axis
            ) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
