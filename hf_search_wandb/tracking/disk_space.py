"""Full, read-only or over-quota folders: recognise the error, say where and how much is free, and replace
files atomically (write beside, then one rename), so a kill or a full disk never leaves half a file.

A training writes to three places: wandb's run folder (`WANDB_DIR`), wandb's artifact staging folder
(`WANDB_DATA_DIR/artifacts/staging`) and the trainer's `output_dir`. A write that fails there with `ENOSPC`,
`EROFS` or `EDQUOT` is a *disk fault*: the run drops what it can do without (tables, histograms, artifacts,
the best-model copy) and says so once, naming the folder and its free space; it never ends the training.
Nothing here imports wandb.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

#: The errors a full, read-only or over-quota folder raises.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})
#: A folder with less free space than this counts as full: tables and artifacts are no longer written there,
#: so that what space is left goes to the rows (a few hundred bytes each).
LOW_SPACE_BYTES = 256 * 1024


def disk_error(error: BaseException | None) -> OSError | None:
    """The `OSError` of a full, read-only or over-quota folder in `error` or its causes, else None. A library
    that wraps the error in its own type (safetensors: `SafetensorError: ... No space left on device (os error
    28)`) is recognised by the system's message for it.

    Example:
        >>> import errno
        >>> disk_error(OSError(errno.ENOSPC, "No space left on device")).errno == errno.ENOSPC
        True
        >>> disk_error(ValueError("x")) is None
        True
        >>> disk_error(RuntimeError("I/O error: No space left on device (os error 28)")).errno == errno.ENOSPC
        True
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return error
        for number in DISK_ERRNOS:
            if os.strerror(number) in str(error):
                return OSError(number, os.strerror(number))
        error = error.__cause__ or error.__context__
    return None


def _existing(path: str | os.PathLike[str]) -> Path:
    """`path`, or its nearest folder that exists (what `statvfs` can be asked about)."""
    current = Path(path).absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged user may still write in the file system of `path` (0 when it is mounted
    read-only); None when it cannot be asked.

    Example:
        >>> free_bytes(".") > 0
        True
    """
    try:
        stat = os.statvfs(_existing(path))
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return 0
    return stat.f_bavail * stat.f_frsize


def is_read_only(path: str | os.PathLike[str]) -> bool:
    """True when the file system of `path` is mounted read-only."""
    try:
        return bool(os.statvfs(_existing(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def human_size(size: int | None) -> str:
    """`1536` -> `1.5 KiB`.

    Example:
        >>> human_size(0), human_size(1536), human_size(3 * 2**30)
        ('0 B', '1.5 KiB', '3.0 GiB')
    """
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def describe(path: str | os.PathLike[str]) -> str:
    """`{path} ({free} free)`, or `{path} (read-only)`: how a warning names a folder.

    Example:
        >>> describe(".").endswith("free)")
        True
    """
    if is_read_only(path):
        return f"{path} (read-only)"
    return f"{path} ({human_size(free_bytes(path))} free)"


def low_on_space(path: str | os.PathLike[str], needed: int = 0) -> bool:
    """True when writing `needed` bytes to `path` would leave less than `LOW_SPACE_BYTES` free there (or it is
    read-only). Unknown free space counts as enough."""
    free = free_bytes(path)
    return free is not None and free < needed + LOW_SPACE_BYTES


def folder_size(path: str | os.PathLike[str]) -> int:
    """Bytes of the files under `path`."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in folder `path` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Write `path` through a temporary file beside it (`.{name}.tmp-XXXX`), fsynced, then `os.replace`d:
    the previous file stays whole until the new one is complete, through a kill or a full disk. On an error
    the temporary file is removed and the error raised.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "record.json"
        >>> with atomic_write(target) as handle:
        ...     _ = handle.write("{}")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('{}', ['record.json'])
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def remove_leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files an interrupted `atomic_write` of `path` left beside it; returns them."""
    target = Path(path)
    stale = list(target.parent.glob(f".{target.name}.tmp-*"))
    for leftover in stale:
        with contextlib.suppress(OSError):
            leftover.unlink()
    return stale


class DroppedWrites:
    """What a run stopped writing because a folder is full, read-only or over quota; one warning per folder.

    Example:
        >>> said = []
        >>> dropped = DroppedWrites(said.append)
        >>> dropped.allows("media")
        True
        >>> dropped.drop(("media", "artifacts"), "/tmp", "no space left")
        >>> dropped.drop(("media",), "/tmp", "no space left")  # said once
        >>> dropped.allows("media"), len(said)
        (False, 1)
    """

    def __init__(self, say: Callable[[str], Any]) -> None:
        self._say = say
        self.dropped: dict[str, str] = {}  # what -> the folder that ended it, described
        self._told: set[str] = set()

    def allows(self, what: str) -> bool:
        """True while `what` (`media`, `artifacts`, `best model`) is still written."""
        return what not in self.dropped

    def drop(
        self, what: tuple[str, ...], folder: str | os.PathLike[str], reason: str, then: str = ""
    ) -> None:
        """Stop writing each of `what` for the rest of the run; warn once per folder."""
        where = describe(folder)
        new = [w for w in what if w not in self.dropped]
        for w in new:
            self.dropped[w] = where
        key = str(folder)
        if new and key not in self._told:
            self._told.add(key)
            self._say(f"cannot write to {where}: {reason}. Dropping {' and '.join(new)} for the rest of the run"
                      f"{'; ' + then if then else ''}")  # fmt: skip
