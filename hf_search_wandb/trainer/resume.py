"""Which wandb run a checkpoint belongs to: `wandb_run.json` next to the trainer's checkpoint files.

The callback writes the file into each `checkpoint-N/` it sees saved, and into `output_dir/` when training
ends or fails (with the last step it logged). Resuming from a checkpoint reads it back to continue the same
run (`wandb.init(id=..., resume="allow")`) and to skip the steps that run already holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hf_search_wandb.tracking.disk_space import atomic_write, describe, remove_leftovers
from hf_search_wandb.tracking.run_history import LoggedRows, ReadBack, read_back, run_dirs_of

RUN_FILE = "wandb_run.json"


def write_run_file(directory: str | Path, info: dict[str, Any]) -> Path:
    """Write `info` (run id, project, name, last logged step, ...) to `directory/wandb_run.json`, atomically:
    through a temporary file beside it, fsynced and `os.replace`d, so a kill or a full disk leaves the
    previous record whole (never an empty or half-written one). Leftovers of an interrupted write are removed.

    Example:
        >>> import tempfile
        >>> path = write_run_file(tempfile.mkdtemp(), {"run_id": "abc", "last_logged_step": 7})
        >>> path.name
        'wandb_run.json'
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RUN_FILE
    remove_leftovers(path)
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(json.dumps(info, indent=2, default=str))
    return path


def save_run_file(directory: str | Path, info: dict[str, Any], *, say: Callable[[str], Any]) -> Path | None:
    """`write_run_file`, for a training that must go on: a folder that cannot be written (full, read-only,
    over quota, or any other `OSError`) is said through `say` and None returned; the previous record stays.

    Example:
        >>> import tempfile
        >>> save_run_file(tempfile.mkdtemp(), {"run_id": "abc"}, say=print).name
        'wandb_run.json'
    """
    try:
        return write_run_file(directory, info)
    except OSError as err:
        path = Path(directory) / RUN_FILE
        kept = "the previous record is kept" if path.is_file() else "there is no record"
        reason = err.strerror or err
        say(f"could not write the resume record {path} ({describe(directory)}): {reason}; {kept}")
        return None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_resume_info(
    output_dir: str | Path, global_step: int, checkpoint: str | Path | None = None
) -> dict[str, Any]:
    """The run a resumed training continues, or `{}`.

    Looks in `checkpoint` (the `resume_from_checkpoint` path), else in `output_dir/checkpoint-{global_step}`.
    `last_logged_step` is raised to what `output_dir/wandb_run.json` records for the same run (a session
    that crashed after the checkpoint logged further steps).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> out = Path(tempfile.mkdtemp())
        >>> _ = write_run_file(out / "checkpoint-2", {"run_id": "abc", "last_logged_step": 2})
        >>> _ = write_run_file(out, {"run_id": "abc", "last_logged_step": 5})
        >>> read_resume_info(out, 2)["last_logged_step"]
        5
    """
    output_dir = Path(output_dir)
    candidates = [Path(checkpoint)] if checkpoint else []
    candidates.append(output_dir / f"checkpoint-{global_step}")
    info: dict[str, Any] = {}
    for path in candidates:
        info = _read(path / RUN_FILE)
        if info.get("run_id"):
            break
    if not info.get("run_id"):
        return {}
    latest = _read(output_dir / RUN_FILE)
    if latest.get("run_id") == info["run_id"]:
        info["last_logged_step"] = max(
            int(info.get("last_logged_step", -1)), int(latest.get("last_logged_step", -1))
        )
    return info


def read_resumed(
    info: dict[str, Any], step_key: str, *, warn: Callable[[str], Any] | None = None
) -> ReadBack:
    """What the run of resume record `info` already holds, read from its own files when they are here: the
    rows to skip (`held`), its history (where the best evaluation so far comes back from) and its artifacts.

    Every session directory of the run next to `info["run_dir"]` is read with wandb's reader: the last step
    on disk is the truth (a SIGKILL may have lost rows the record counts, or logged rows after the
    checkpoint's record). Without those files (another machine, or no reader), falls back to the record's
    `last_logged_step` (all keys of that step held, no history), and says so through `warn`.
    """
    run_id, run_dir = info.get("run_id"), info.get("run_dir")
    recorded = LoggedRows(int(info.get("last_logged_step", -1)), None)
    if run_id and run_dir:
        dirs = run_dirs_of(str(run_id), Path(run_dir).parent)
        if dirs:
            try:
                return read_back(dirs, step_key)
            except (RuntimeError, OSError) as err:
                reason = str(err)
        else:
            reason = f"no directory of run {run_id} under {Path(run_dir).parent}"
    else:
        reason = "the resume record names no run directory"
    if warn is not None:
        warn(f"{reason}: resuming after the last step the resume record counts ({recorded.last_step})")
    return ReadBack(held=recorded)


def held_rows(info: dict[str, Any], step_key: str, *, warn: Callable[[str], Any] | None = None) -> LoggedRows:
    """The rows the run of resume record `info` already holds (`read_resumed`)."""
    return read_resumed(info, step_key, warn=warn).held
