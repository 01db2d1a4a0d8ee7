"""The archive format of backups: a zstd-compressed tar whose first member is ``manifest.json``.

Reading is one streaming pass that hashes the whole file (against the catalogue) and every member
(against the manifest), optionally extracting as it goes, so a restore never reads an archive twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import zstandard

from emergent.errors import IntegrityError

FORMAT = 1
SUFFIX = ".tar.zst"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_archive(stage: Path, names: list[str], archive: Path, *, part_dir: Path | None = None,
                  on_part: Callable[[], None] | None = None) -> None:
    """Write ``names`` (relative to ``stage``, in this order) to ``archive``; a failed or killed
    write leaves at most a ``.part`` file (in ``part_dir``, default beside the archive: a backup
    writes it inside its staging folder, so a kill leaves one folder to clean), never a truncated
    archive under the final name. ``on_part`` is called once the first member is written."""
    tmp = (part_dir or archive.parent) / (archive.name + ".part")
    try:
        with tmp.open("wb") as raw, zstandard.ZstdCompressor(level=3, threads=-1).stream_writer(raw) as zw, \
                tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for i, name in enumerate(names):
                tar.add(stage / name, arcname=name, recursive=False)
                if i == 0 and on_part is not None:
                    zw.flush()
                    on_part()
        with open(tmp, "rb") as fh:  # durable before it gets its final name
            os.fsync(fh.fileno())
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts


class _Hashing:
    """A read-only file wrapper that hashes everything read through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.h.update(data)
        return data


def scan(path: Path, extract_to: Path | None = None) -> tuple[dict[str, Any], list[str], str]:
    """Read the archive once: manifest, problems found, and the archive's own sha256."""
    problems: list[str] = []
    manifest: dict[str, Any] = {}
    seen: set[str] = set()
    with path.open("rb") as raw:
        hashing = _Hashing(raw)
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(hashing, read_across_frames=True,  # type: ignore[arg-type]
                                                                closefd=False)
            with reader as zr, tarfile.open(fileobj=zr, mode="r|") as tar:
                for member in tar:
                    _check_member(tar, member, manifest, seen, problems, extract_to)
            while hashing.read(_CHUNK):  # trailing bytes count towards the archive checksum
                pass
        except (tarfile.TarError, zstandard.ZstdError, OSError, EOFError, json.JSONDecodeError) as exc:
            problems.append(f"the archive is not a readable zstd-compressed tar ({type(exc).__name__}: {exc})")
    if manifest:
        missing = sorted(set(manifest.get("files", {})) - seen)
        problems += [f"{name}: listed in the manifest but missing from the archive" for name in missing]
    elif not problems:
        problems.append("the archive has no manifest.json")
    return manifest, problems, hashing.h.hexdigest()


def _check_member(tar: tarfile.TarFile, member: tarfile.TarInfo, manifest: dict[str, Any], seen: set[str],
                  problems: list[str], extract_to: Path | None) -> None:
    name = member.name
    if not member.isfile() or not _safe_name(name):
        problems.append(f"{name}: not a regular file with a relative path")
        return
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file always has a body
    if name == "manifest.json" and not manifest:
        try:
            body = json.loads(fh.read().decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError: a damaged manifest
            problems.append(f"manifest.json is damaged ({type(exc).__name__}: {str(exc)[:120]})")
            return
        if not isinstance(body, dict):
            problems.append("manifest.json is damaged (not a JSON object)")
            return
        manifest.update(body)
        if manifest.get("format") != FORMAT:
            problems.append(f"manifest format {manifest.get('format')!r} is not {FORMAT}")
        return
    expected = manifest.get("files", {}).get(name)
    if expected is None:
        problems.append(f"{name}: not listed in the manifest (manifest.json must come first)")
        return
    out = None
    if extract_to is not None:
        dest = extract_to / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = dest.open("wb")
    h = hashlib.sha256()
    with out or contextlib.nullcontext():
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            if out is not None:
                out.write(chunk)
    seen.add(name)
    if h.hexdigest() != expected:
        problems.append(f"{name}: sha256 {h.hexdigest()[:12]}... does not match the manifest's {expected[:12]}...")


def read_manifest(path: Path) -> dict[str, Any]:
    """Only the manifest (the first member), without reading the rest."""
    try:
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zr, \
                tarfile.open(fileobj=zr, mode="r|") as tar:
            first = next(iter(tar), None)
            body = tar.extractfile(first) if first is not None and first.name == "manifest.json" else None
            manifest = json.loads(body.read()) if body is not None else None
    except (tarfile.TarError, zstandard.ZstdError, OSError, EOFError, ValueError) as exc:
        raise IntegrityError(f"{path} is not a readable backup archive ({type(exc).__name__}: {exc})",
                             hint="use another backup (`emergent backup list`)") from None
    if not isinstance(manifest, dict) or "id" not in manifest:
        raise IntegrityError(f"{path} has no manifest.json", hint="use another backup (`emergent backup list`)")
    return manifest


