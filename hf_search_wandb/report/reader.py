"""Read offline wandb runs with wandb's own reader, `wandb leet inspect`.

`wandb leet inspect --json RUN_DIR` prints the run's log one record a line (run, history, stats, metric
definitions, artifacts, exit, ...); `--summary --json` prints the run's state, final config and summary.
The `.wandb` file itself is wandb's binary format and is never parsed here (`tracking.leet` runs the
reader). Table media are the JSON files wandb wrote under the run's `files/media/table/`, named by the
history row that logged them.
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

    def media_json(self, relative_path: str) -> dict[str, Any] | None:
        """A media file that wandb wrote under the run's `files/` (a table's JSON), or None if absent."""
        path = self.run_dir / "files" / relative_path
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None


def _inspect(run_dir: Path, *, summary: bool = False, timeout: float) -> str:
    try:
        done = leet_inspect(run_dir, summary=summary, timeout=timeout)
    except FileNotFoundError as err:
        raise ReportInputError("the `wandb` command is missing: pip install wandb (>= 0.26, which has "
                               "`wandb leet inspect`)") from err
    except subprocess.TimeoutExpired as err:
        raise ReportInputError(f"{run_dir}: `wandb leet inspect` took more than {timeout:.0f} s") from err
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise ReportInputError(f"{run_dir}: `{' '.join(done.command[-4:])}` failed: "
                               f"{why[-1] if why else done.returncode}"
                               " (is it a wandb run folder, and does this wandb have `wandb leet inspect`?)")
    return done.stdout


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
        ReportInputError: wandb could not read the folder; the message gives wandb's reason.
    """
    run_dir = Path(run_dir)
    records = [json.loads(line) for line in _inspect(run_dir, timeout=timeout).splitlines() if line.strip()]
    view = json.loads(_inspect(run_dir, summary=True, timeout=timeout) or "{}")
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
    """Read many run folders, `workers` at a time (default: the CPU count, at most 8), in the given order."""
    if not run_dirs:
        return []
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(run_dirs)))) as pool:
        return list(pool.map(lambda d: read_run(d, timeout=timeout), run_dirs))
