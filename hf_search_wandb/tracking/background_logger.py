"""`BackgroundLogger`: `run.log` on a worker thread, so the training loop never waits for wandb.

`wandb.Run.log` hands each row to wandb's service through an asyncio loop on another thread and waits
for the hand-off; on a busy machine that wait is milliseconds per call, paid on every `logging_steps`.
Here the training thread only enqueues the row (microseconds); one daemon thread logs the rows in order.
`flush()` waits until every queued row has been handed to wandb: the callback calls it before anything it
logs directly (tables, artifacts, summary) and before `finish`, so the order of records is unchanged.

The queue is bounded in time, not length: when the oldest queued row is older than `max_lag` seconds
(default 1 s), `log()` waits until the worker has handed every queued row to wandb. So a SIGKILL, which no
handler sees, loses at most the rows of the last `max_lag` seconds plus what wandb's service had not yet
written (`benchmarks/bench_kill_rows.py` measures it).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

_STOP = object()


class BackgroundLogger:
    """Log rows to `run` from one worker thread, in submission order.

    Example:
        >>> class Run:
        ...     def __init__(self):
        ...         self.rows = []
        ...     def log(self, row):
        ...         self.rows.append(row)
        >>> run = Run()
        >>> bg = BackgroundLogger(run)
        >>> for i in range(3):
        ...     bg.log({"train/global_step": i})
        >>> bg.close()
        >>> [r["train/global_step"] for r in run.rows]
        [0, 1, 2]
    """

    def __init__(self, run: Any, *, timeout: float = 120.0, max_lag: float = 1.0) -> None:
        self.run = run
        self.timeout = timeout
        self.max_lag = max_lag
        self._queued_at: collections.deque[float] = collections.deque()  # enqueue times of rows not yet logged
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="hf-search-wandb-log", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.run.log(item)
            except Exception as err:  # keep logging later rows; report the first failure once
                if self.error is None:
                    self.error = err
                    logger.warning("hf_search_wandb: wandb.log failed in the background: %r", err)
            finally:
                if self._queued_at:
                    self._queued_at.popleft()

    def log(self, row: dict[str, Any]) -> None:
        """Queue one row; returns at once unless the oldest queued row waits longer than `max_lag` seconds,
        in which case it first waits for the queue to drain."""
        now = time.monotonic()
        try:
            oldest = self._queued_at[0]
        except IndexError:  # the worker emptied it meanwhile
            oldest = now
        if now - oldest > self.max_lag:
            self.flush()
        self._queued_at.append(now)
        self._queue.put(row)

    @property
    def pending(self) -> int:
        """Rows queued and not yet handed to wandb."""
        return len(self._queued_at)

    def flush(self) -> None:
        """Block until every row queued so far has been passed to `run.log`."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(self.timeout):
            logger.warning("hf_search_wandb: wandb logging did not drain within %.0f s", self.timeout)

    def close(self) -> None:
        """Flush, then stop the worker thread."""
        self.flush()
        self._queue.put(_STOP)
        self._thread.join(self.timeout)
