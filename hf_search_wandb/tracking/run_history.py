"""What a wandb run already holds on disk, read with wandb's own reader (`wandb leet inspect --json`).

Used when training resumes: the steps to skip are read from the run's transaction logs (`run-*.wandb`,
written by wandb's service as rows arrive), not only from a record written at clean exits, so a SIGKILL
that lost the last rows does not lose them for good and a kill after the checkpoint does not log steps twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_search_wandb.tracking.leet import leet_inspect


@dataclass(frozen=True)
class LoggedRows:
    """The last step a run holds and the keys logged at that step (None: all of them); rows up to it are
    not logged again.

    Example:
        >>> done = LoggedRows(last_step=5, keys_at_last=frozenset({"train/loss"}))
        >>> done.new_part({"train/loss": 1.0}, 4), done.new_part({"train/loss": 1.0, "val/map": 0.5}, 5)
        ({}, {'val/map': 0.5})
        >>> done.new_part({"train/loss": 1.0}, 6)
        {'train/loss': 1.0}
    """

    last_step: int = -1
    keys_at_last: frozenset[str] | None = field(default_factory=frozenset)

    def new_part(self, row: dict[str, Any], step: int) -> dict[str, Any]:
        """The part of `row` (logged at `step`) the run does not hold yet."""
        if step < self.last_step:
            return {}
        if step == self.last_step:
            held = self.keys_at_last
            return {} if held is None else {k: v for k, v in row.items() if k not in held}
        return row

    def merged(self, other: LoggedRows) -> LoggedRows:
        """The later of two; keys are united when both end at the same step."""
        if other.last_step != self.last_step:
            return other if other.last_step > self.last_step else self
        if self.keys_at_last is None or other.keys_at_last is None:
            return LoggedRows(self.last_step, None)
        return LoggedRows(self.last_step, self.keys_at_last | other.keys_at_last)


def started(run_dir: Path) -> tuple[str, str, str]:
    """Sort key of a run folder by start time: the `<time>` of its name (`YYYYMMDD_HHMMSS`), then the
    millisecond its `logs/debug.log` says wandb set up the folder ("" where that line is missing), then the
    name itself, so the order is total.

    The name alone orders runs to the second only; after the time comes a random id, so two runs started in
    the same second (short sweep trials) would otherwise be listed in random order.
    """
    parts = run_dir.name.removeprefix("offline-").split("-")
    stamp = parts[1] if len(parts) >= 3 else ""
    created = ""
    try:
        with (run_dir / "logs" / "debug.log").open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if "Logging user logs to" in line:
                    created = line[:23]  # 2026-12-03 00:55:16,224
                    break
    except OSError:
        pass
    return stamp, created, run_dir.name


def run_dirs_of(run_id: str, wandb_dir: str | Path) -> list[Path]:
    """Every session directory of run `run_id` under `wandb_dir` (`offline-run-*-<id>`, `run-*-<id>`),
    oldest first: a resumed offline run writes one directory per session."""
    root = Path(wandb_dir)
    found = [p for p in root.glob(f"*run-*-{run_id}") if p.is_dir()]
    return sorted(found, key=started)


@dataclass
class ReadBack:
    """What the folders of a run hold, read with wandb's reader: the rows it holds (`held`), its history rows
    in log order and its artifact records (as `wandb leet inspect --json` prints them)."""

    held: LoggedRows = field(default_factory=LoggedRows)
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)


def read_back(run_dirs: Iterable[str | Path], step_key: str, *, timeout: float = 120.0) -> ReadBack:
    """The history rows (those carrying `step_key`) and artifact records of `run_dirs`, oldest folder first.

    Reads each directory with `wandb leet inspect --json` (a truncated log, as a SIGKILL leaves it, is
    read up to its last complete record). Raises `RuntimeError` when wandb's reader is unavailable or fails.
    """
    back = ReadBack()
    for run_dir in run_dirs:
        try:
            result = leet_inspect(run_dir, timeout=timeout)
        except FileNotFoundError as err:
            raise RuntimeError("the `wandb` command is not installed next to this Python") from err
        if result.returncode != 0 and not result.stdout:
            raise RuntimeError(f"wandb leet inspect failed on {run_dir}: {result.stderr.strip()[-300:]}")
        for line in result.stdout.splitlines():
            if '"history"' not in line and '"artifact"' not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type") == "artifact" and isinstance(record.get("artifact"), dict):
                back.artifacts.append(record["artifact"])
                continue
            item = (record.get("history") or {}).get("item") or {}
            step = item.get(step_key)
            if record.get("type") != "history" or not isinstance(step, (int, float)):
                continue
            keys = frozenset(k for k in item if not k.startswith("_") and k != step_key)
            back.held = back.held.merged(LoggedRows(int(step), keys))
            back.history.append(item)
    return back


def read_logged_rows(run_dirs: Iterable[str | Path], step_key: str, *, timeout: float = 120.0) -> LoggedRows:
    """The last `step_key` value in the history of `run_dirs`, and the keys logged at it (`read_back`).

    Raises `RuntimeError` when wandb's reader is unavailable or fails.
    """
    return read_back(run_dirs, step_key, timeout=timeout).held
