"""`SignalGuard`: on SIGTERM or SIGINT during `train()`, save what the run holds, then die as the process would have.

SLURM, Kubernetes and most schedulers preempt with SIGTERM, then SIGKILL a few seconds later; Ctrl-C sends
SIGINT. The guard is installed by the callback for the duration of one `train()` (main thread only: Python
delivers signals there), and for SIGTERM alone while the run stays open after `train()` (post-training
evaluations; Ctrl-C in a notebook then stays the user's own). It calls `on_signal` first, then restores the previous handler and hands the signal on:
a previous Python handler is called (SIGINT's default raises `KeyboardInterrupt`), the default action is
re-raised with `os.kill` (the process ends "killed by SIGTERM", exit status 143), an ignored signal stays ignored.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def ends_process(handler: Any) -> bool:
    """True when `handler` (a previous signal handler) ends the process or raises out of `train()`:
    the default action, or Python's default SIGINT handler.

    Example:
        >>> import signal
        >>> ends_process(signal.SIG_DFL), ends_process(signal.default_int_handler), ends_process(signal.SIG_IGN)
        (True, True, False)
    """
    return handler is None or handler == signal.SIG_DFL or handler is signal.default_int_handler


class SignalGuard:
    """Handlers for SIGTERM and SIGINT that call `on_signal(signum, fatal)` and chain to the previous ones.

    `fatal` says whether the previous handler ends the process (or raises out of training); with a custom
    previous handler (one that may let training go on) it is False.
    """

    def __init__(self, on_signal: Callable[[int, bool], None]) -> None:
        self.on_signal = on_signal
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        """True while the handlers are in place."""
        return bool(self._previous)

    def install(self, signals: tuple[int, ...] = SIGNALS) -> bool:
        """Install the handlers of `signals`; False (and nothing done) outside the main thread or when
        already installed."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False
        for signum in signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        """Put the previous handlers back (idempotent; only from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.restore()
        try:
            self.on_signal(signum, ends_process(previous))
        finally:
            if callable(previous):
                previous(signum, frame)
            elif previous is None or previous == signal.SIG_DFL:
                os.kill(os.getpid(), signum)  # the default action, now that the default handler is back
