"""`RowWatch`: notice that wandb's service can no longer write the run's rows, and count the rows it lost.

wandb writes the run's `.wandb` file from its service process (`wandb-core`), not from the training
process: when the run folder is full (`ENOSPC`), read-only (`EROFS`) or over quota (`EDQUOT`), `run.log`
still returns, the service logs `writer: failed to save record: ... no space left on device` to the run's
`logs/debug-internal.log` (when it can still write there) and drops the record. wandb 0.31 neither retries
nor tells the training process; the run is left without its later rows and without an exit record.

So the watch looks, at most every `every` seconds while rows are logged and at each flush, for three signs:

1. the run folder's file system is read-only, or has less than `disk_space.LOW_SPACE_BYTES` free;
2. a new `writer:` error in the service's `logs/debug-internal.log`;
3. the `.wandb` file did not grow for `grace` seconds after a row was handed to wandb (an over-quota
   folder, where `statvfs` still shows free space and the service log cannot be written either).

On the first sign it warns at once, naming the folder, its free space and the step from which rows may be
missing. When the run ends it reads the folder back with wandb's own reader and counts the rows that are
not there (`count_lost`); nothing is read back when no sign was seen.

What it cannot do: bring lost rows back (they are not kept anywhere else), or see a failure before the
service's next write (every 0.5 s with the run's settings, `tracking.run.FLUSH_SECONDS`).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from hf_search_wandb.tracking.disk_space import describe, is_read_only, low_on_space
from hf_search_wandb.tracking.leet import leet_inspect


class RowWatch:
    """Watch one session folder of a run (`offline-run-*` / `run-*`) for rows its service cannot write.

    Attributes:
        handed: rows handed to wandb in this session (what the folder should hold).
        fault: why rows may be missing (None while all looks well).
        fault_step: the step of the first row logged after the fault was seen.
    """

    def __init__(
        self, run_dir: Path | None, *, step_key: str, every: float = 0.5, grace: float = 30.0
    ) -> None:
        self.run_dir = run_dir
        self.step_key = step_key
        self.every = every
        self.grace = grace
        self.handed = 0
        self.last_step = -1
        self.fault: str | None = None
        self.fault_step: int | None = None
        self._checked = 0.0
        self._log_offset = 0
        self._size = -1
        self._waiting_since: float | None = None  # first row handed since the .wandb file last grew
        self._file: Path | None = None

    def _wandb_file(self) -> Path | None:
        if self._file is None and self.run_dir is not None:
            self._file = next(iter(self.run_dir.glob("run-*.wandb")), None)
        return self._file

    def note(self, step: int) -> str | None:
        """A row at `step` was handed to wandb; checks now and then. Returns a new fault's message."""
        self.handed += 1
        self.last_step = max(self.last_step, step)
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        if now - self._checked < self.every:
            return None
        return self.check(now)

    def check(self, now: float | None = None) -> str | None:
        """Look for the three signs; the message of a fault seen for the first time now, else None."""
        if self.run_dir is None or self.fault is not None:
            return None
        now = time.monotonic() if now is None else now
        self._checked = now
        return self.suspect(self._disk_reason() or self._service_error() or self._stalled(now))

    def suspect(self, reason: str | None) -> str | None:
        """Take `reason` (a write into the run folder failed: a table, an artifact) as the fault, unless one
        was seen before; the message to say, else None."""
        if reason is None or self.run_dir is None or self.fault is not None:
            return None
        self.fault = reason
        self.fault_step = self.last_step
        return (
            f"wandb cannot write the rows of this run to {describe(self.run_dir)}: {reason}. Rows from step "
            f"{self.last_step} on may be lost; they are counted and the count is reported when the run ends"
        )

    def _disk_reason(self) -> str | None:
        assert self.run_dir is not None
        if is_read_only(self.run_dir):
            return "the file system is read-only"
        if low_on_space(self.run_dir):
            return "the disk is full"
        return None

    def _service_error(self) -> str | None:
        """The first new `writer:` error of wandb's service in `logs/debug-internal.log`."""
        assert self.run_dir is not None
        log = self.run_dir / "logs" / "debug-internal.log"
        try:
            with log.open("rb") as handle:
                handle.seek(self._log_offset)
                chunk = handle.read()
        except OSError:
            return None
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._log_offset += len(complete)
        for line in complete.splitlines():
            if b'"ERROR"' not in line or b"writer:" not in line:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                message = str(json.loads(line).get("msg", ""))
                return f"wandb's service says {message.rsplit(': ', 1)[-1] or message!r}"
        return None

    def _stalled(self, now: float) -> str | None:
        """The `.wandb` file has not grown for `grace` seconds although rows were handed to wandb."""
        wandb_file = self._wandb_file()
        if wandb_file is None:
            return None
        try:
            size = wandb_file.stat().st_size
        except OSError:
            return None
        if size != self._size:
            self._size, self._waiting_since = size, None
            return None
        if self._waiting_since is not None and now - self._waiting_since > self.grace:
            return f"its .wandb file stopped growing {now - self._waiting_since:.0f} s ago"
        return None

    def rows_on_disk(self) -> int | None:
        """How many rows (history records carrying the step key) the folder holds, read with wandb's reader;
        None when it cannot be read."""
        if self.run_dir is None:
            return None
        try:
            done = leet_inspect(self.run_dir, timeout=120)
        except (OSError, RuntimeError, ValueError):
            return None
        count = 0
        for line in done.stdout.splitlines():
            if '"history"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                item = (record.get("history") or {}).get("item") or {}
                count += record.get("type") == "history" and self.step_key in item
        return count if done.stdout or done.returncode == 0 else None

    def count_lost(self) -> int | None:
        """Rows handed to wandb that the folder does not hold (0 without a fault: nothing is read back);
        None when a fault was seen and the folder cannot be read."""
        if self.fault is None:
            self.check()
        if self.fault is None:
            return 0
        on_disk = self.rows_on_disk()
        return None if on_disk is None else max(0, self.handed - on_disk)
