"""SIGKILL a process in the middle of logging rows to an offline run, and count the rows wandb's reader finds.

Shared by tests/e2e/test_callback_preemption.py and benchmarks/bench_kill_rows.py; the child is
tests/scripts/log_burst.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.paths import REPO_ROOT as REPO
from tests.helpers.paths import SCRIPTS
from tests.helpers.wandb_records import _wandb_cli

SCRIPT = SCRIPTS / "log_burst.py"


def rows_on_disk(run_dir: Path) -> set[int]:
    """The `i` of every history row wandb's reader finds in `run_dir`."""
    out = subprocess.run(
        [_wandb_cli(), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    found = set()
    for line in out.splitlines():
        record = json.loads(line)
        if record.get("type") == "history" and "i" in record["history"]["item"]:
            found.add(int(record["history"]["item"]["i"]))
    return found


def kill_during_burst(
    wandb_dir: Path,
    *,
    mode: str,
    n: int = 1000,
    interval: float = 0.0,
    kill_after_row: int | None = None,
    wait_after_done: float = 0.0,
) -> dict[str, float]:
    """Run the child, SIGKILL it, and return logged / older-than-1-s / on-disk row counts."""
    env = {**os.environ, "WANDB_DIR": str(wandb_dir), "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(n), str(interval), mode],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    run_dir, times = None, []
    for line in child.stdout:
        kind, *rest = line.split()
        if kind == "dir":
            run_dir = Path(rest[0]).parent
        elif kind == "logged":
            times.append(float(rest[1]))
            if kill_after_row is not None and int(rest[0]) + 1 >= kill_after_row:
                break
        elif kind == "done":
            time.sleep(wait_after_done)
            break
    killed_at = time.monotonic()
    child.send_signal(signal.SIGKILL)
    child.wait()
    time.sleep(1.0)  # let wandb's service (its own process) notice and close the file
    assert run_dir is not None
    on_disk = rows_on_disk(run_dir)
    older = sum(t < killed_at - 1.0 for t in times)
    return {
        "logged": len(times),
        "older_than_1s": older,
        "on_disk": len(on_disk),
        "older_on_disk": len(on_disk & set(range(older))),
    }
