"""Best-model choice: which evaluation is the best so far, where its model is saved, and which model artifact
(metadata, description, aliases) a best model or a checkpoint becomes.

The callback decides when (a new best during training, `model_artifact=` best / end / checkpoint) and logs
the artifact through `tracking.run.TrackedRun.log_model`; the comparison, the save and the artifact's
content are here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_search_wandb.core.models.save_load import save_model
from hf_search_wandb.tracking.log_keys import summary_goal

#: Where the best model is saved, under the trainer's `output_dir` (replaced by each new best).
BEST_MODEL_DIR = "wandb-best-model"
SHARDED = "sharded model (FSDP/DeepSpeed): the model artifact is skipped, save it with the trainer"


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

    @classmethod
    def of(cls, metric: str) -> BestEvaluation:
        """No best yet for `metric`; lower is better when its summary goal is `min` (the loss).

        Example:
            >>> BestEvaluation.of("loss").lower_is_better, BestEvaluation.of("ndcg@10").lower_is_better
            (True, False)
        """
        return cls(metric, lower_is_better=summary_goal(metric) == "min")

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


def best_model_dir(output_dir: str | Path) -> Path:
    """`{output_dir}/wandb-best-model`."""
    return Path(output_dir) / BEST_MODEL_DIR


def save_best(
    model: Any, output_dir: str | Path, tokenizer: Any, *, evaluator: Any, trainer: Any,
    say: Callable[[str], Any],
) -> Path | None:  # fmt: skip
    """Save `model` to `{output_dir}/wandb-best-model`, replacing the previous best; None when nothing was saved
    (no model, or a sharded one the trainer must save). A custom module is saved with the pooling `evaluator`
    scored it with, so that it loads back and scores the same."""
    if model is None:
        return None
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False):
        say(SHARDED)
        return None
    target = best_model_dir(output_dir)
    if target.exists():
        shutil.rmtree(target)
    save_model(model, target, tokenizer, pooling=getattr(evaluator, "pooling", None),
               normalize=getattr(evaluator, "normalize", None), max_length=getattr(evaluator, "max_length", None))
    return target


@dataclass(frozen=True)
class ModelArtifact:
    """One version of the run's model artifact: the directory, its metadata, description and aliases."""

    directory: Path
    metadata: dict[str, Any]
    description: str
    aliases: tuple[str, ...] = ("best", "latest")


def _model_facts(run_config: dict[str, Any]) -> dict[str, Any]:
    return {"model_type": run_config.get("model_type"), "base_model": run_config.get("base_model")}


def best_artifact(output_dir: str | Path, best: BestEvaluation, run_config: dict[str, Any]) -> ModelArtifact | None:
    """The saved best model (`model_artifact="best"` or `"end"`) as an artifact with aliases `best` and `latest`;
    None when no model was saved.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> best_model_dir(out).mkdir()
        >>> best = BestEvaluation("mrr@10", value=0.61234, step=3, epoch=1.0)
        >>> best_artifact(out, best, {"model_type": "bi-encoder"}).description
        'Best model (MRR@10: 0.6123)'
    """
    target = best_model_dir(output_dir)
    if not target.is_dir():
        return None
    value = best.value
    description = f"Best model ({best.metric.upper()}: {value:.4f})" if value is not None else "Final model"
    return ModelArtifact(target, {**_model_facts(run_config), **best.as_metadata()}, description)


def checkpoint_artifact(
    checkpoint: Path, best: BestEvaluation, *, step: int, epoch: float | None, run_config: dict[str, Any]
) -> ModelArtifact:
    """`model_artifact="checkpoint"`: a saved checkpoint as a new version of the model artifact, aliases
    `step-{step}` and `latest`, and `best` when its evaluation is the best so far.

    Example:
        >>> from pathlib import Path
        >>> best = BestEvaluation("mrr@10", value=0.5, step=20, epoch=1.0)
        >>> checkpoint_artifact(Path("checkpoint-20"), best, step=20, epoch=1.0, run_config={}).aliases
        ('step-20', 'latest', 'best')
    """
    meta = best.as_metadata() if best else {}
    is_best = bool(best) and meta.get("best_step") == step
    metadata = {**_model_facts(run_config), "global_step": step, "epoch": epoch, "is_best": is_best, **meta}
    description = f"Checkpoint at step {step}" + (" (best so far)" if is_best else "")
    return ModelArtifact(checkpoint, metadata, description, (f"step-{step}", "latest", *(["best"] if is_best else [])))
