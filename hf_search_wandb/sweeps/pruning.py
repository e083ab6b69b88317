"""A Trainer callback that reports the optimised metric to an Optuna trial and stops a pruned trial.

At each evaluation it finds the sweep metric in the trainer's metrics (`val/mrr@10` arrives as
`eval_val_mrr@10` from a `SentenceTransformerTrainer`, `val/loss` as `eval_loss`), calls
`trial.report(value, step)` with `step` = the number of evaluations so far (wandb's hyperband counts
logged iterations of the metric, not trainer steps), and when `trial.should_prune()` sets
`control.should_training_stop`: the trainer leaves its loop normally, every callback's `on_train_end`
runs (so the wandb run is finished), and the engine then marks the trial PRUNED.

A metric the program cannot produce (`val/ndcg@20` when the evaluator computes `ndcg@10`) fails the trial
at its first evaluation (`SweepMetricCheck`, which the pruning callback extends), not after training.
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


class SweepMetricMissingError(RuntimeError):
    """The first evaluation of a trial lacked the sweep metric: the program cannot produce it."""


class SweepMetricCheck(TrainerCallback):
    """Stop a trial with `SweepMetricMissingError` when its first evaluation lacks the sweep metric.

    The check runs once the step of the first evaluation is over (at the next step, or at the end of
    training), so that several evaluation datasets evaluated at one step can each contribute metrics.
    Metrics under `train/` come from the training logs and are not checked.

    Args:
        metric: the sweep metric as logged to wandb, e.g. `val/mrr@10`.

    Example:
        >>> check = SweepMetricCheck("val/ndcg@20")
        >>> check.observe({"eval_val_ndcg@10": 0.5}, step=2)
        >>> try:
        ...     check.verify(step=3)
        ... except SweepMetricMissingError as err:
        ...     print(str(err).split(":")[0])
        the sweep metric 'val/ndcg@20' is not among the metrics of the first evaluation (step 2)
    """

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.found = False
        self._missing: tuple[int, list[str]] | None = None

    def observe(self, metrics: Mapping[str, Any] | None, step: int) -> None:
        """Note one evaluation's metrics."""
        if self.found or self.metric.startswith("train/"):
            return
        if metric_value(metrics, self.metric) is not None:
            self.found, self._missing = True, None
        elif self._missing is None:
            self._missing = (step, sorted(metrics or {}))

    def verify(self, step: int | None = None) -> None:
        """Raise when the first evaluation (before `step`; None: any) lacked the metric."""
        if self._missing is None or (step is not None and step <= self._missing[0]):
            return
        at, keys = self._missing
        raise SweepMetricMissingError(
            f"the sweep metric {self.metric!r} is not among the metrics of the first evaluation (step {at}): "
            f"{', '.join(keys) or 'none'}. Fix: set the sweep's metric.name to a metric the program logs "
            f"(its evaluator's metrics, e.g. val/mrr@10 for eval_val_mrr@10), or make the evaluator compute it.")

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl | None:
        self.observe(metrics, state.global_step)
        return None

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        self.verify(state.global_step)
        return None

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        self.verify()
        return None


class OptunaPruningCallback(SweepMetricCheck):
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
        super().__init__(metric)
        self.trial = trial
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
        self.observe(metrics, state.global_step)
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
