"""Damaged copies of real offline runs, for the report's tests: what a full disk, a kill or a bad copy leaves.

The `.wandb` log is a sequence of LevelDB-style records (wandb's 7-byte header `:W&B` + magic + version,
then 32 KiB blocks of chunks, each a 7-byte header: CRC-32, little-endian length, type). `mid_record` walks
the chunks to cut or overwrite a file inside one record, so the damage is the one wanted, never a clean
cut that happens to fall between two records.
"""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7  # ':W&B', 2 magic bytes, 1 version byte
CHUNK_HEADER = 7  # CRC-32 (4), length (2, little-endian), type (1)


def mid_record(data: bytes, near: int) -> int:
    """An offset inside the data of the first record that ends after `near` (half way into it)."""
    pos = HEADER
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # a block's trailer: zeros too short for a chunk header
            pos += left
            continue
        (length,) = struct.unpack_from("<H", data, pos + 4)
        end = pos + CHUNK_HEADER + length
        if end > near and length > 1:
            return pos + CHUNK_HEADER + length // 2
        pos = end
    raise ValueError(f"no record ends after byte {near} of {len(data)}")


def record_end(data: bytes, near: int) -> int:
    """The end of the first whole record (a FULL or LAST chunk) that ends after `near`: a clean cut between
    two records, as a process killed after wandb flushed leaves its log."""
    pos = HEADER
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:
            pos += left
            continue
        (length,) = struct.unpack_from("<H", data, pos + 4)
        kind = data[pos + 6]
        pos += CHUNK_HEADER + length
        if pos > near and kind in (1, 4):  # FULL, LAST
            return pos
    raise ValueError(f"no record ends after byte {near} of {len(data)}")


def log_of(run_dir: Path) -> Path:
    (log,) = run_dir.glob("run-*.wandb")
    return log


def damaged_copies(runs: list[Path], root: Path) -> dict[str, Path]:
    """Under `root/wandb`, copies of the two real runs `runs`: `good` (untouched), `truncated` (cut inside a
    record half way through the log, as a full disk or a kill leaves it), `corrupt` (64 bytes inside a record
    half way through overwritten, as a bad copy leaves it), `garbage` (random bytes from the first byte),
    `empty` (a 0-byte log: the process died before wandb wrote anything) and `unfinished` (cut cleanly between
    two records half way: no exit record, as a killed run whose rows were flushed leaves it)."""
    wandb_dir = root / "wandb"
    wandb_dir.mkdir(parents=True)
    made: dict[str, Path] = {}
    for i, (label, source) in enumerate(
        (
            ("good", runs[0]),
            ("truncated", runs[1]),
            ("corrupt", runs[0]),
            ("garbage", runs[1]),
            ("empty", runs[0]),
            ("unfinished", runs[1]),
        )
    ):
        target = wandb_dir / f"offline-run-20260101_00000{i}-{label}"
        shutil.copytree(source, target, symlinks=True)
        log = log_of(target)
        data = log.read_bytes()
        if label == "truncated":
            log.write_bytes(data[: mid_record(data, len(data) // 2)])
        elif label == "corrupt":
            at = mid_record(data, len(data) // 2)
            log.write_bytes(data[:at] + b"\xff" * 64 + data[at + 64 :])
        elif label == "garbage":
            log.write_bytes(random.Random(0).randbytes(len(data)))
        elif label == "empty":
            log.write_bytes(b"")
        elif label == "unfinished":
            log.write_bytes(data[: record_end(data, len(data) // 2)])
        made[label] = target
    return made
