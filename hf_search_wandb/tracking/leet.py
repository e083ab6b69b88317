"""wandb's own reader of a run's log, `wandb leet inspect`, called from Python.

Everything in the package that reads a run back (resuming a run, finding a staged artifact, the report)
goes through `leet_inspect`. wandb is never imported here: the reader runs in a child process.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Inspected:
    """What `wandb leet inspect` printed: `stdout` (JSON, one record a line, or one object with
    `--summary`), `stderr`, its exit code and the command that ran."""

    stdout: str
    stderr: str
    returncode: int
    command: tuple[str, ...]


def wandb_cli() -> list[str]:
    """The `wandb` command of this Python environment (next to the interpreter, else on PATH, else
    `python -m wandb`)."""
    exe = Path(sys.executable).with_name("wandb")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("wandb")
    return [found] if found else [sys.executable, "-m", "wandb"]


def wandb_core() -> Path | None:
    """The `wandb-core` program that `wandb leet inspect` runs (`wandb/bin/wandb-core`), found without
    importing wandb; None where this wandb has none."""
    spec = importlib.util.find_spec("wandb")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        core = Path(folder) / "bin" / "wandb-core"
        if core.is_file() and os.access(core, os.X_OK):
            return core
    return None


def _run(command: list[str], timeout: float) -> Inspected:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return Inspected(done.stdout, done.stderr, done.returncode, tuple(command))


def leet_inspect(run_dir: str | os.PathLike[str], *, summary: bool = False, timeout: float = 600.0) -> Inspected:
    """`wandb leet inspect --json [--summary] RUN_DIR`.

    Hack: the `wandb` command is a Python program that imports wandb (~0.7 s of CPU) and then runs
    `wandb-core leet inspect` with the arguments built here (wandb/cli/leet.py, `launch_inspect`); this runs
    that program directly, which prints the same bytes (tested) and halves the time of reading a run
    (10,000 steps: 2.6 s -> 1.3 s). The `wandb` command runs instead where the program is not found, the
    folder does not hold exactly one `run-*.wandb`, or the program fails without printing anything (e.g. a
    wandb whose program takes other flags). A log cut short (a killed run) still prints every complete
    record with a non-zero exit code, through either path.

    Raises:
        FileNotFoundError: neither the program nor the `wandb` command can be started.
        subprocess.TimeoutExpired: the reader ran longer than `timeout` seconds.
    """
    run_dir = Path(run_dir)
    extra = ["--summary"] if summary else []
    core = wandb_core()
    logs = list(run_dir.glob("run-*.wandb"))
    if core is not None and len(logs) == 1:
        command = [str(core), "leet", "inspect", "--no-observability", *extra, "--json",
                   "--run-file", str(logs[0].resolve()), str(run_dir.resolve().parent)]  # fmt: skip
        try:
            direct = _run(command, timeout)
        except OSError:
            direct = None
        if direct is not None and (direct.returncode == 0 or direct.stdout):
            return direct
    return _run([*wandb_cli(), "leet", "inspect", *extra, "--json", str(run_dir)], timeout)
