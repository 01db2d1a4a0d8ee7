"""Code generation for proposals: unified diffs for tool or config changes, validated before use.

A diff is validated in a scratch directory: it must apply cleanly with ``patch`` (GNU patch; a
pure-Python applier is used where the binary is missing), and, for a tool, the tool's tests must
pass in the sandbox against the patched files. Only a validated diff is attached to a proposal.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergent.errors import ValidationError


@dataclass
class PatchCheck:
    applies: bool
    output: str
    files: dict[str, str] = field(default_factory=dict)  # path -> patched text
    tests_passed: bool | None = None
    test_output: str = ""
    isolation: str | None = None

    @property
    def ok(self) -> bool:
        return self.applies and self.tests_passed is not False


def unified_diff(path: str, old: str, new: str) -> str:
    """A ``git``-style unified diff (``a/<path>`` → ``b/<path>``) of one file."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    out = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
    return out


def config_diff(namespace: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The change of a config version as a diff of ``config/<namespace>.json``."""
    dump = lambda d: json.dumps(d, indent=2, sort_keys=True, default=str) + "\n"  # noqa: E731
    return unified_diff(f"config/{namespace}.json", dump(old), dump(new))


def apply_patch(diff: str, files: Mapping[str, str]) -> PatchCheck:
    """Apply ``diff`` to a scratch copy of ``files`` (path -> text); never touches the real files."""
    if not diff.strip():
        return PatchCheck(False, "the diff is empty")
    tmp = Path(tempfile.mkdtemp(prefix="emergent-patch-"))
    try:
        for rel, text in files.items():
            p = (tmp / rel).resolve()
            if not p.is_relative_to(tmp.resolve()):
                raise ValidationError(f"file {rel!r} would land outside the scratch directory")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, "utf-8")
        binary = shutil.which("patch")
        if binary is None:
            return _apply_python(diff, files)
        proc = subprocess.run([binary, "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-r", "-",
                               "-d", str(tmp)], input=diff, capture_output=True, text=True, timeout=30)
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            return PatchCheck(False, output or f"patch exited with {proc.returncode}")
        patched = {str(p.relative_to(tmp)): p.read_text("utf-8") for p in tmp.rglob("*") if p.is_file()}
        return PatchCheck(True, output, patched)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _apply_python(diff: str, files: Mapping[str, str]) -> PatchCheck:
    """Minimal applier for single-file diffs whose context must match exactly."""
    lines = diff.splitlines(keepends=True)
    target = next((ln[6:].strip() for ln in lines if ln.startswith("+++ b/")), None)
    if target is None or target not in files:
        return PatchCheck(False, f"the diff names no known file ({target!r})")
    old = files[target].splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("@@"):
            start = int(ln.split()[1].split(",")[0][1:]) - 1
            out += old[pos:start]
            pos = start
        elif ln.startswith((" ", "-")) and not ln.startswith("--- "):
            if pos >= len(old) or old[pos].rstrip("\n") != ln[1:].rstrip("\n"):
                return PatchCheck(False, f"hunk does not match {target} at line {pos + 1}")
            if ln.startswith(" "):
                out.append(old[pos])
            pos += 1
        elif ln.startswith("+") and not ln.startswith("+++ "):
            out.append(ln[1:])
        i += 1
    out += old[pos:]
    return PatchCheck(True, "applied (python)", {**files, target: "".join(out)})


_HARNESS = """
import importlib, sys, traceback
sys.path.insert(0, ".")
failed = 0
for mod_name in {modules!r}:
    mod = importlib.import_module(mod_name)
    for name in sorted(dir(mod)):
        if name.startswith("test_") and callable(getattr(mod, name)):
            try:
                getattr(mod, name)()
                print("PASS", mod_name, name)
            except Exception:
                failed += 1
                print("FAIL", mod_name, name)
                traceback.print_exc()
sys.exit(1 if failed else 0)
"""


def validate_tool_patch(diff: str, files: Mapping[str, str], tests: Mapping[str, str], *,
                        sandbox: Any = None, timeout: float = 30.0) -> PatchCheck:
    """Apply ``diff`` to ``files`` and run ``tests`` (``test_*.py`` name -> source) against the result.

    Tests run in the tool sandbox (``emergent.tools.sandbox``) when it is available, else in a plain
    subprocess; the check records which isolation they actually got.
    """
    check = apply_patch(diff, files)
    if not check.applies or not tests:
        return check
    modules = [Path(n).stem for n in tests]
    harness = _HARNESS.format(modules=modules)
    seeded = {**check.files, **tests, "_run_tests.py": harness}
    try:
        from emergent.tools.sandbox import Limits, Sandbox, python_executable

        sb = sandbox or Sandbox(Limits(timeout=timeout))
        res = sb.run([python_executable(), "-I", "_run_tests.py"], files=seeded)
        check.tests_passed, check.isolation = res.ok, res.isolation
        check.test_output = (res.stdout + res.stderr)[-4000:]
    except ImportError:
        tmp = Path(tempfile.mkdtemp(prefix="emergent-tests-"))
        try:
            for rel, text in seeded.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_text(text, "utf-8")
            import sys

            proc = subprocess.run([sys.executable, "-I", "_run_tests.py"], cwd=tmp, capture_output=True,
                                  text=True, timeout=timeout)
            check.tests_passed, check.isolation = proc.returncode == 0, "none"
            check.test_output = (proc.stdout + proc.stderr)[-4000:]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return check
