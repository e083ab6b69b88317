"""A Trainer callback that reports the optimised metric to an Optuna trial and stops a pruned trial.

At each evaluation it finds the sweep metric in the trainer's metrics (`val/mrr@10` arrives as
`eval_val_mrr@10` from a `SentenceTransformerTrainer`, `val/loss` as `eval_loss`), calls
`trial.report(value, step)` with `step` = the number of evaluations so far (wandb's hyperband counts
logged iterations of the metric, not trainer steps), and when `trial.should_prune()` sets
`control.should_training_stop`: the trainer leaves its loop normally, every callback's `on_train_end`
runs (so the wandb run is finished), and the engine then marks the trial PRUNED.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


def metric_keys(metric: str) -> list[str]:
    """Keys under which the trainer's metrics dict may hold the sweep metric `metric`.

    Example:
        >>> metric_keys("val/mrr@10")[:2]
        ['eval_val_mrr@10', 'val_mrr@10']
        >>> metric_keys("val/loss")[0]
        'eval_loss'
    """
    namespace, _, name = metric.partition("/")
    if not name:
        return [metric, f"eval_{metric}"]
    if namespace == "train":
        return [name, metric, f"train_{name}"]
    keys = [f"eval_{namespace}_{name}", f"{namespace}_{name}", f"eval_{metric}", metric, f"eval_{name}"]
    if name == "loss":
        keys.insert(0, "eval_loss")
    return keys


def metric_value(metrics: Mapping[str, Any] | None, metric: str) -> float | None:
    """The sweep metric's value in a trainer metrics dict, or None when it is not there.

    Example:
        >>> metric_value({"eval_loss": 0.3, "eval_val_mrr@10": 0.61}, "val/mrr@10")
        0.61
    """
    if not metrics:
        return None
    for key in metric_keys(metric):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


class OptunaPruningCallback(TrainerCallback):
    """Report the sweep metric to `trial` at each evaluation and stop training when Optuna prunes.

    Add it after your other callbacks (the trainer calls them in order, so it then sees metrics the
    search callback adds to the evaluation dict).

    Args:
        trial: an `optuna.Trial`.
        metric: the sweep metric as logged to wandb, e.g. `val/mrr@10`.
        goal: `maximize` or `minimize` (for `best`).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> callback = OptunaPruningCallback(study.ask(), "val/mrr@10", "maximize")
        >>> callback.values, callback.pruned
        ([], False)
    """

    def __init__(self, trial: Any, metric: str, goal: str = "maximize") -> None:
        if goal not in ("maximize", "minimize"):
            raise ValueError(f"goal must be 'maximize' or 'minimize', got {goal!r}")
        self.trial = trial
        self.metric = metric
        self.goal = goal
        self.values: list[float] = []
        self.pruned = False
        self.pruned_at_step: int | None = None
        self._on_log = metric.startswith("train/")

    @property
    def best(self) -> float | None:
        """The best finite value reported so far (what the run's summary shows with summary=max/min)."""
        finite = [v for v in self.values if math.isfinite(v)]
        if not finite:
            return None
        return max(finite) if self.goal == "maximize" else min(finite)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl | None:
        if self._on_log:
            return None
        return self._report(metric_value(metrics, self.metric), state, control)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl | None:
        if not self._on_log or not logs or any(k.startswith("eval_") for k in logs):
            return None
        return self._report(metric_value(logs, self.metric), state, control)

    def _report(self, value: float | None, state: TrainerState, control: TrainerControl) -> TrainerControl | None:
        if value is None or self.pruned:
            return None
        self.values.append(value)
        self.trial.report(value, len(self.values))
        if self.trial.should_prune():
            self.pruned = True
            self.pruned_at_step = state.global_step
            control.should_training_stop = True
            control.should_save = False
        return control
