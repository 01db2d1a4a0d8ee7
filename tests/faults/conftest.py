"""Fixtures of the fault-injection tests: a small real filesystem that can be filled."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A tmpfs of a few megabytes mounted for one test (root only), and a filler file to fill it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler.bin"

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave: int = 0) -> None:
        """Leave about ``leave`` bytes free (0: none)."""
        want = self.free() - leave
        with self.filler.open("ab") as fh:
            chunk = b"\0" * (1 << 20)
            while want > 0:
                try:
                    fh.write(chunk[: min(len(chunk), want)])
                    fh.flush()
                except OSError:
                    break
                want -= min(len(chunk), want)

    def drain(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"these fault tests need a small real filesystem: `mount -t tmpfs` failed ({done.stderr.strip()}); "
                    f"run them as root (uid {os.getuid()})")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
