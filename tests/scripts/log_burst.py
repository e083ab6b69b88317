"""Log rows to an offline wandb run, printing `logged I T` (T = time.monotonic()) after each (launched by
tests/e2e/test_callback_preemption.py and benchmarks/bench_kill_rows.py, which SIGKILL it).

Usage: python tests/scripts/log_burst.py N INTERVAL_S MODE
MODE: `callback` (what SearchWandbCallback does: background logger with a 0.5 s bound, wandb's transaction
log flushed every 0.5 s), `foreground` (`run.log` with wandb's defaults), `unbounded` (a background queue
without the bound, wandb's defaults: the logger before the bound).
After the N rows it prints `done T` and sleeps (the parent kills it).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import wandb

from hf_search_wandb.tracking.background_logger import BackgroundLogger
from hf_search_wandb.tracking.run import FLUSH_SECONDS


def main() -> None:
    n, interval, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    settings = wandb.Settings(x_transaction_log_flush_interval=FLUSH_SECONDS) if mode == "callback" else None
    run = wandb.init(project="kill-rows", mode="offline", settings=settings)
    print(f"dir {run.dir}", flush=True)
    sink: Any = run
    if mode == "callback":
        sink = BackgroundLogger(run, max_lag=FLUSH_SECONDS)
    elif mode == "unbounded":
        sink = BackgroundLogger(run, max_lag=float("inf"))
    for i in range(n):
        sink.log({"i": i})
        print(f"logged {i} {time.monotonic()}", flush=True)
        if interval:
            time.sleep(interval)
    print(f"done {time.monotonic()}", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
