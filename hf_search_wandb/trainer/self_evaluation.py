"""Evaluations the callback runs itself, for trainers that never call their own evaluation.

Retrieval toolkits subclass `transformers.Trainer` with their own contrastive loss and no eval loop (no
`eval_dataset`, `eval_strategy="no"`). The callback then runs its evaluators itself (SPEC §10): every
`eval_steps` steps when the arguments set them, else at each epoch's end, and in both cases at the end of
training when the last step was not evaluated; it says so once. A trainer that was expected to evaluate but
never did by the end of `train()` gets one evaluation then, with a warning (never silence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hf_search_wandb.trainer.evaluator_set import flatten_evaluators, missing_metrics

__all__ = ["SelfEvaluation", "evaluation_metrics", "self_evaluation", "trainer_evaluates"]


def trainer_evaluates(args: Any) -> bool:
    """Whether the trainer's arguments make it evaluate during training (`eval_strategy` other than "no";
    `evaluation_strategy` on old transformers)."""
    strategy = getattr(args, "eval_strategy", None)
    if strategy is None:
        strategy = getattr(args, "evaluation_strategy", "no")
    return str(getattr(strategy, "value", strategy)).lower() != "no"


@dataclass
class SelfEvaluation:
    """When the callback evaluates: every `every` steps (None: at each epoch's end), and at the end."""

    every: int | None
    last_step: int = -1

    @property
    def schedule(self) -> str:
        return f"every {self.every} steps" if self.every else "at the end of each epoch"

    def due_at_step(self, step: int) -> bool:
        return self.every is not None and self.every > 0 and step > 0 and step % self.every == 0 and step != self.last_step

    def due_at_epoch_end(self, step: int) -> bool:
        return not self.every and step != self.last_step

    def due_at_end(self, step: int) -> bool:
        return step != self.last_step


def self_evaluation(args: Any, state: Any) -> SelfEvaluation:
    """The schedule for these arguments: `eval_steps` (a fraction < 1 of `max_steps`, as transformers reads
    it), else epoch ends."""
    steps = getattr(args, "eval_steps", None)
    if steps is not None and 0 < steps < 1:
        steps = math.ceil(max(1, int(getattr(state, "max_steps", 0) or 0)) * steps)
    return SelfEvaluation(int(steps) if steps else None)


def evaluation_metrics(trainer: Any, own_evaluators: Any, model: Any, tokenizer: Any) -> dict[str, float]:
    """One evaluation as the trainer would have reported it (`eval_{name}_{metric}`): the trainer's own
    evaluator (a `SentenceTransformerTrainer`'s, adopted), then the callback's evaluators not covered yet."""
    metrics: dict[str, float] = {}
    trainer_evaluator = getattr(trainer, "evaluator", None)
    if trainer_evaluator is not None:
        metrics.update({f"eval_{k}": float(v) for k, v in trainer_evaluator(model).items()})
    metrics.update(missing_metrics(flatten_evaluators(own_evaluators), metrics, model, tokenizer))
    return metrics
