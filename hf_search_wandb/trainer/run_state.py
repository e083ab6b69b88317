"""`EpochStats`: the state the callback keeps between events about the epoch in progress (the best evaluation
is `best_model.BestEvaluation`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class EpochStats:
    """Loss and timing of the epoch in progress, turned into `train/epoch_loss` and `system/throughput`.

    Example:
        >>> epoch = EpochStats(step0=0)
        >>> epoch.add_loss(2, 1.0); epoch.add_loss(3, 4.0)
        >>> epoch.finish(3)
        >>> epoch.mean_loss(), epoch.steps
        (2.0, 3)
    """

    step0: int
    start: float = field(default_factory=time.perf_counter)
    last: int = -1
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float | None = None
    end_step: int | None = None

    def __post_init__(self) -> None:
        if self.last < 0:
            self.last = self.step0

    def add_loss(self, step: int, loss: float) -> None:
        """Record the mean loss logged at `step`, weighted by the optimizer steps it covers."""
        self.losses.append((max(1, step - self.last), loss))
        self.last = step

    def finish(self, step: int) -> None:
        """Close the epoch at `step` (its last optimizer step); stops the clock."""
        self.seconds = time.perf_counter() - self.start
        self.end_step = step

    @property
    def finished(self) -> bool:
        """True once `finish` was called."""
        return self.end_step is not None

    @property
    def steps(self) -> int:
        """Optimizer steps of the finished epoch (0 before `finish`)."""
        return 0 if self.end_step is None else self.end_step - self.step0

    def elapsed(self) -> float:
        """Seconds since the epoch began (its duration once finished)."""
        return self.seconds if self.seconds is not None else time.perf_counter() - self.start

    def mean_loss(self) -> float | None:
        """Step-weighted mean of the losses logged in this epoch, or None without any."""
        total = sum(w for w, _ in self.losses)
        return sum(w * v for w, v in self.losses) / total if total else None
