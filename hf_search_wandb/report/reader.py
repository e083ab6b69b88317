"""Read offline wandb runs with wandb's own reader, `wandb leet inspect`.

`wandb leet inspect --json RUN_DIR` prints the run's log one record a line (run, history, stats, metric
definitions, artifacts, exit, ...); `--summary --json` prints the run's state, final config and summary.
The `.wandb` file itself is wandb's binary format and is never parsed here (`tracking.leet` runs the
reader). Table media are the JSON files wandb wrote under the run's `files/media/table/`, named by the
history row that logged them.

A damaged log is read as far as wandb can read it. A run whose log wandb cannot read at all (garbage bytes
in its header, an empty file) is UNREADABLE (`UnreadableRunError`; `read_available_runs` skips it); a run it
reads only in part (cut off mid-record, a corrupt block skipped, no exit record) keeps what was read and
says what is wrong in `RunLog.problems`, which the page and the command show.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hf_search_wandb.report.sources import ReportInputError
from hf_search_wandb.tracking.leet import leet_inspect

#: wandb prints non-finite floats of a history row as these strings.
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: What `wandb leet inspect` prints on stderr about a log it read only in part, and what that means here.
_TRUNCATED = "reached the end of an incomplete .wandb file"
_CORRUPT = "skipped corrupt data"
_READER_PREFIX = "wandb leet inspect:"


class UnreadableRunError(ReportInputError):
    """wandb cannot read a run folder's log at all (the message names the folder and wandb's reason)."""


@dataclass(frozen=True)
class UnreadableRun:
    """A run folder left out of a report, and why (wandb's reason, in one line)."""

    run_dir: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.run_dir}: {self.reason}"


@dataclass
class RunLog:
    """One run as wandb's reader sees it.

    Attributes:
        run_dir: the run folder.
        run_id / name / project / state / tags / notes: from the run record and `--summary`.
        config: the run's final config (`_wandb` left out).
        environment: wandb's environment record (python, os, host, program, args, ...).
        start_time: ISO time the run started.
        exit_code: the run's exit code (None while it runs or after a crash).
        history: one dict per `run.log` call, keys flattened with `.` as wandb stores them.
        stats: wandb's own system metrics, `(seconds since start, {key: value})`.
        artifacts: one dict per logged artifact version (name, type, aliases, metadata, manifest, ...).
        metric_definitions: the `define_metric` records.
        summary: the run's final summary.
        problems: what is wrong with a log read only in part, one line each (empty for a complete log):
            cut off mid-record, corrupt data skipped, no exit record (still running, or killed).
    """

    run_dir: Path
    run_id: str
    name: str
    project: str = ""
    state: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    start_time: str = ""
    exit_code: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stats: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    metric_definitions: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def media_json(self, relative_path: str) -> dict[str, Any] | None:
        """A media file that wandb wrote under the run's `files/` (a table's JSON), or None if absent."""
        path = self.run_dir / "files" / relative_path
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None


def _inspect(run_dir: Path, *, summary: bool = False, timeout: float) -> tuple[str, list[str]]:
    """`(stdout, problems)` of `wandb leet inspect`: what wandb read, and what it said about a log it read only
    in part (from its stderr, or a non-zero exit after printing records)."""
    try:
        done = leet_inspect(run_dir, summary=summary, timeout=timeout)
    except FileNotFoundError as err:
        raise ReportInputError("the `wandb` command is missing: pip install wandb (>= 0.26, which has "
                               "`wandb leet inspect`)") from err
    except subprocess.TimeoutExpired as err:
        raise UnreadableRunError(f"{run_dir}: `wandb leet inspect` took more than {timeout:.0f} s") from err
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 0 and not done.stdout.strip():
        why = said[-1].removeprefix("Error:").strip() if said else f"exit code {done.returncode}"
        logs = sorted(run_dir.glob("run-*.wandb"))
        hint = (f"{logs[0].name} is damaged or was not written by wandb" if logs else
                "is it a wandb run folder, and does this wandb have `wandb leet inspect`?")
        raise UnreadableRunError(f"{run_dir}: wandb cannot read this run's log ({why}); {hint}")
    problems = [_problem(line) for line in said if line.startswith(_READER_PREFIX)]
    if done.returncode != 0:
        problems.append(f"wandb's reader stopped with exit code {done.returncode}"
                        + (f" ({said[-1]})" if said else "") + ": the records after that point are not shown")
    return done.stdout, problems


def _problem(line: str) -> str:
    """wandb's own line about a damaged log, said as what it means for the run."""
    text = line.removeprefix(_READER_PREFIX).strip()
    if text.startswith(_TRUNCATED):
        return ("truncated: the log ends in the middle of a record (the run was killed, its disk filled up, or "
                "the folder was copied while it ran); what is shown stops there")
    if text.startswith(_CORRUPT):
        return (f"corrupt: wandb skipped unreadable data ({text.removeprefix(_CORRUPT).strip(': ')}); the records "
                "stored after it in the same block are missing")
    return f"wandb's reader: {text}"


def finite(value: Any) -> Any:
    """wandb's `"NaN"` / `"Infinity"` / `"-Infinity"` strings as floats; anything else unchanged."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    return value


def _seconds(stamp: str) -> float | None:
    """An RFC 3339 time (`2026-12-02T12:57:02.204165762Z`, nanoseconds allowed) as a POSIX timestamp."""
    if not stamp:
        return None
    text = stamp.rstrip("Z")
    head, dot, frac = text.partition(".")
    try:
        base = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
    return base + (float("0." + frac) if dot and frac.isdigit() else 0.0)


def read_run(run_dir: str | Path, *, timeout: float = 600.0) -> RunLog:
    """Read one run folder with `wandb leet inspect --json` and `--summary --json`.

    Args:
        run_dir: the run folder (it holds `run-<id>.wandb`).
        timeout: seconds allowed to each of the two `wandb leet inspect` calls.

    Returns:
        The run's records as a `RunLog`.

    Raises:
        UnreadableRunError: wandb could not read the folder's log at all, or it holds no run record (an
            empty file, wandb's header only); the message gives the folder and the reason.
        ReportInputError: the `wandb` command is missing.
    """
    run_dir = Path(run_dir)
    text, problems = _inspect(run_dir, timeout=timeout)
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:  # a record cut short in the reader's output: keep the others, say so once
            if not any(p.startswith("unreadable record") for p in problems):
                problems.append("unreadable record in wandb's output: skipped")
    if not any(r.get("type") == "run" for r in records if isinstance(r, dict)):
        size = sum(p.stat().st_size for p in run_dir.glob("run-*.wandb"))
        raise UnreadableRunError(f"{run_dir}: the log holds no run record ({size:,} bytes: empty, or cut off "
                                 "before wandb wrote the run); nothing to show")
    summary_text, _ = _inspect(run_dir, summary=True, timeout=timeout)
    try:
        view = json.loads(summary_text or "{}")
    except ValueError:
        view = {}
        problems.append("wandb's summary of the run is unreadable: state, config and summary are missing")
    if not any(r.get("type") == "exit" for r in records if isinstance(r, dict)) and not any(
            p.startswith("truncated") for p in problems):
        problems.append(f"no exit record: the run is still running, or its process was killed before wandb "
                        f"finished it (state {view.get('state') or 'unknown'!r})")
    config = {k: v for k, v in (view.get("config") or {}).items() if k != "_wandb"}
    log = RunLog(
        run_dir=run_dir,
        run_id=str(view.get("run_id") or run_dir.name.rsplit("-", 1)[-1]),
        name=str(view.get("name") or run_dir.name),
        project=str(view.get("project") or ""),
        state=str(view.get("state") or ""),
        tags=list(view.get("tags") or []),
        notes=str(view.get("notes") or ""),
        config=config,
        start_time=str(view.get("start_time") or ""),
        exit_code=view.get("exit_code"),
        summary=dict(view.get("summary") or {}),
        problems=problems,
    )
    start = _seconds(log.start_time)
    for record in records:
        kind = record.get("type")
        body = record.get(kind, {}) if isinstance(kind, str) else {}
        if kind == "history":
            log.history.append({k: finite(v) for k, v in (body.get("item") or {}).items()})
        elif kind == "stats":
            when = _seconds(str(body.get("timestamp", "")))
            if start is None and when is not None:
                start = when
            elapsed = when - start if when is not None and start is not None else math.nan
            log.stats.append((elapsed, {k: finite(v) for k, v in (body.get("item") or {}).items()}))
        elif kind == "artifact":
            log.artifacts.append(body)
        elif kind == "metric":
            log.metric_definitions.append(body)
        elif kind == "environment":
            log.environment.update(body)
        elif kind == "run" and not log.start_time:
            log.start_time = str(body.get("start_time", ""))
    return log


def read_runs(run_dirs: Sequence[Path], *, workers: int | None = None, timeout: float = 600.0) -> list[RunLog]:
    """Read many run folders, `workers` at a time (default: the CPU count, at most 8), in the given order.

    Raises:
        UnreadableRunError: a folder wandb cannot read (the first in order); `read_available_runs` skips it.
    """
    runs, unreadable = read_available_runs(run_dirs, workers=workers, timeout=timeout)
    if unreadable:
        raise UnreadableRunError(str(unreadable[0]))
    return runs


def read_available_runs(
    run_dirs: Sequence[Path], *, workers: int | None = None, timeout: float = 600.0
) -> tuple[list[RunLog], list[UnreadableRun]]:
    """Read many run folders as `read_runs` does, but skip the ones wandb cannot read.

    Returns:
        `(runs, unreadable)`: the runs read (in the given order; a run read only in part says so in its
        `problems`), and each folder left out with wandb's reason.
    """
    if not run_dirs:
        return [], []
    workers = workers or min(8, os.cpu_count() or 1)

    def attempt(run_dir: Path) -> RunLog | UnreadableRun:
        try:
            return read_run(run_dir, timeout=timeout)
        except UnreadableRunError as err:
            return UnreadableRun(Path(run_dir), str(err).removeprefix(f"{run_dir}: "))

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(run_dirs)))) as pool:
        outcomes = list(pool.map(attempt, run_dirs))
    return ([o for o in outcomes if isinstance(o, RunLog)], [o for o in outcomes if isinstance(o, UnreadableRun)])
