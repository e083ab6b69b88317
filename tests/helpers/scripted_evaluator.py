"""An evaluator whose headline metric follows a script by training step: the real retrieval evaluation runs, then
`mrr@10` is replaced by `SCRIPT[step]`, so a test knows which evaluation is the best (a tiny random model's own
scores are too close to tell)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from tests.helpers.training import scifact

#: step -> val/mrr@10 (KILL_ARGS: evaluation every 3 steps of 12): the best, 0.9, comes before the kill at 10
SCRIPT = {3: 0.5, 6: 0.9, 9: 0.6, 12: 0.7}


class ScriptedEvaluator(RetrievalEvaluator):
    """`RetrievalEvaluator` on the SciFact slice; `mrr@10` is `script[step]` at the step `StepClock` set."""

    def __init__(self, script: dict[int, float] | None = None) -> None:
        data = scifact("test")
        super().__init__(data.queries, data.corpus, data.qrels, max_queries=12, corpus_sample=40)
        self.script = dict(script or SCRIPT)
        self.step = 0

    def evaluate(self, model: Any) -> Any:
        result = super().evaluate(model)
        result.metrics["mrr@10"] = self.script.get(self.step, 0.0)
        return result


class StepClock(TrainerCallback):
    """Tell the scripted evaluator the step it evaluates (on_step_end comes before the step's evaluation)."""

    def __init__(self, evaluator: ScriptedEvaluator) -> None:
        self.evaluator = evaluator

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.evaluator.step = state.global_step
