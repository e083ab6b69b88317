"""Rows on disk after a SIGKILL during a burst of `wandb.log` calls: the callback's bounded background logger
(with wandb's transaction log flushed every 0.5 s) against an unbounded queue and plain `run.log`.

    .venv/bin/python benchmarks/bench_kill_rows.py

A child process (`tests/scripts/log_burst.py`) logs 1,000 rows to an offline run; the parent SIGKILLs it
(no handler can run) at a chosen moment and counts the rows wandb's reader finds in the run's file:
- `after burst +0 s`: right after the last of 1,000 back-to-back logs;
- `after burst +1.5 s`: 1.5 s after it (the queue waits at most 0.5 s, wandb writes its log every 0.5 s);
- `mid-burst`: 1,000 logs 2 ms apart, killed after 600; "older than 1 s" counts the rows logged more than
  1 s before the kill (those must all be on disk).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.kill_rows import kill_during_burst  # noqa: E402


def main() -> None:
    scenarios = [
        ("after burst +0 s", {"wait_after_done": 0.0}),
        ("after burst +1.5 s", {"wait_after_done": 1.5}),
        ("mid-burst (2 ms apart, kill after 600)", {"interval": 0.002, "kill_after_row": 600}),
    ]
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"each cell: the {repeats} repeats, as rows on disk / rows logged (rows older than 1 s lost)")
    print("| scenario | logger | on disk / logged | older-than-1-s rows lost |")
    print("|---|---|---|---|")
    for name, kwargs in scenarios:
        for mode in ("callback", "unbounded", "foreground"):
            cells, lost = [], []
            for _ in range(repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    r = kill_during_burst(Path(tmp), mode=mode, **kwargs)  # type: ignore[arg-type]
                cells.append(f"{r['on_disk']}/{r['logged']}")
                lost.append(f"{r['older_than_1s'] - r['older_on_disk']} of {r['older_than_1s']}")
            print(f"| {name} | {mode} | {', '.join(cells)} | {', '.join(lost)} |", flush=True)


if __name__ == "__main__":
    main()
