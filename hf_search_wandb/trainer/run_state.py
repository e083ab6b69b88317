"""Small state objects the callback keeps between events: one epoch's statistics and the best evaluation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class BestEvaluation:
    """The best value of the headline metric so far, and the evaluation it came from.

    Example:
        >>> best = BestEvaluation("mrr@10")
        >>> best.update(0.5, step=3, epoch=1.0, metrics={"mrr@10": 0.5})
        True
        >>> best.update(0.4, step=6, epoch=2.0, metrics={"mrr@10": 0.4})
        False
        >>> best.as_metadata()["best_step"]
        3
    """

    metric: str
    lower_is_better: bool = False
    value: float | None = None
    step: int | None = None
    epoch: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.value is not None

    def is_better(self, value: float) -> bool:
        """True when `value` beats the best so far (or there is none yet)."""
        if self.value is None:
            return True
        return value < self.value if self.lower_is_better else value > self.value

    def update(self, value: float, *, step: int, epoch: float | None, metrics: dict[str, Any]) -> bool:
        """Take `value` as the new best when it is better; True when it was."""
        if not self.is_better(value):
            return False
        self.value, self.step, self.epoch, self.metrics = value, step, epoch, dict(metrics)
        return True

    def as_metadata(self) -> dict[str, Any]:
        """`{best_<metric>, best_step, best_epoch, <every metric of that evaluation>}`; `{}` without a best."""
        if self.value is None:
            return {}
        return {
            f"best_{self.metric}": self.value,
            "best_step": self.step,
            "best_epoch": self.epoch,
            **self.metrics,
        }
