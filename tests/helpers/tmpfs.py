"""A small tmpfs mounted by a test, and filling it up: the real `ENOSPC` of a full disk, no mocks.

Mounting needs root (the tests run as root here and in CI); elsewhere the test is skipped with the reason.
The folder is always unmounted at the end (lazily when a process still holds a file there).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler.bin"


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a tmpfs of `size` at `path` (created) for the block; skip the test where that is not possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill the disk needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a file into `folder` until its file system is full, then give back `leave` bytes."""
    filler = folder / FILLER
    with filler.open("ab", buffering=0) as handle:
        for block in (1 << 16, 1 << 12):  # big writes, then page by page for the last partial block
            with contextlib.suppress(OSError):
                while handle.write(b"\0" * block):
                    pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def free(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize
