"""Version references: ``name``, ``name@1.4.2``, ``name@^1.2``, ``name@~1.4``, ``name@>=1,<3``.

Caret and tilde ranges (npm/cargo meaning) translate to ``packaging`` specifier sets.
"""

from __future__ import annotations

import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from emergent.errors import ValidationError

_PARTIAL = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?([-+].*)?$")


def _parts(text: str, what: str) -> tuple[list[int], int, str]:
    m = _PARTIAL.match(text.strip())
    if not m:
        raise ValidationError(f"{what}: {text!r} is not a version", hint="write e.g. ^1.2, ~1.4.0 or 1.4.2")
    given = [int(g) for g in m.groups()[:3] if g is not None]
    return given + [0] * (3 - len(given)), len(given), m.group(4) or ""


def _caret(text: str, what: str) -> SpecifierSet:
    (major, minor, patch), n, pre = _parts(text, what)
    low = f"{major}.{minor}.{patch}{pre}"
    if major > 0 or n == 1:
        high = f"{major + 1}.0.0"
    elif minor > 0 or n == 2:
        high = f"0.{minor + 1}.0"
    else:
        high = f"0.0.{patch + 1}"
    return SpecifierSet(f">={low},<{high}")


def _tilde(text: str, what: str) -> SpecifierSet:
    (major, minor, patch), n, pre = _parts(text, what)
    high = f"{major + 1}.0.0" if n == 1 else f"{major}.{minor + 1}.0"
    return SpecifierSet(f">={major}.{minor}.{patch}{pre},<{high}")


def parse_range(text: str, *, what: str = "version range") -> SpecifierSet:
    """A SpecifierSet for ``^1.2``, ``~1.4``, ``1.4.2`` (exact), ``*`` or PEP 440 specifiers."""
    text = (text or "*").strip()
    if text in ("*", "", "latest"):
        return SpecifierSet()
    if text.startswith("^"):
        return _caret(text[1:], what)
    if text.startswith("~") and not text.startswith("~="):
        return _tilde(text[1:], what)
    if text[0].isdigit():
        _parts(text, what)
        return SpecifierSet(f"=={text}")
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValidationError(f"{what}: {text!r} is not a version range",
                              hint="use 1.4.2, ^1.2, ~1.4 or PEP 440 specifiers like >=1.2,<2") from None


def split_ref(ref: str) -> tuple[str, str]:
    """``"name@range"`` -> ``("name", "range")``; the range is ``"*"`` when absent."""
    name, _, rng = ref.strip().partition("@")
    return name.strip(), (rng.strip() or "*")
