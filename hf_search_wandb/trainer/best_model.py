"""Best-model choice: which evaluation is the best so far, where its model is saved, and which model artifact
(metadata, description, aliases) a best model or a checkpoint becomes.

The callback decides when (a new best during training, `model_artifact=` best / end / checkpoint) and logs
the artifact through `tracking.run.TrackedRun.log_model`; the comparison, the save and the artifact's
content are here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_search_wandb.core.models.save_load import save_model
from hf_search_wandb.tracking.artifacts import model_artifact_name
from hf_search_wandb.tracking.disk_space import describe, disk_error, fsync_dir
from hf_search_wandb.tracking.log_keys import (
    EPOCH_KEY,
    STEP_KEY,
    VAL,
    metrics_under,
    namespace_of,
    summary_goal,
)

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
    #: the model of this best could not be saved (the best-model folder holds an earlier one, or none)
    unsaved: bool = False
    #: the model artifact version holding alias `best` (`search-model-<id>:v<N>`), when known (a resumed run)
    artifact: str | None = None

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


def resumed_best(
    metric: str, key: str, history: Iterable[Mapping[str, Any]], artifacts: Iterable[Mapping[str, Any]] = (),
    *, run_id: str | None = None, output_dir: str | Path | None = None,
) -> BestEvaluation:  # fmt: skip
    """The best evaluation a resumed run already holds: the best value of `key` (`val/mrr@10`) over its
    history rows, at the first step it was reached (as it was tracked live), with that evaluation's metrics,
    its epoch, and the model artifact version that holds alias `best` (versions numbered as the server
    numbers them: one per distinct content, in log order).

    Example:
        >>> rows = [{"train/global_step": 3, "val/mrr@10": 0.5}, {"train/global_step": 6, "val/mrr@10": 0.9,
        ...         "val/map": 0.4}, {"train/global_step": 9, "val/mrr@10": 0.6}]
        >>> best = resumed_best("mrr@10", "val/mrr@10", rows)
        >>> best.value, best.step, best.metrics
        (0.9, 6, {'mrr@10': 0.9, 'map': 0.4})
    """
    best = BestEvaluation.of(metric)
    epochs: dict[int, float] = {}
    for row in history:
        step, epoch, value = row.get(STEP_KEY), row.get(EPOCH_KEY), row.get(key)
        if not isinstance(step, (int, float)):
            continue
        if isinstance(epoch, (int, float)):
            epochs[int(step)] = float(epoch)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            best.update(float(value), step=int(step), epoch=None,
                        metrics=metrics_under(row, (VAL, namespace_of(key))))  # fmt: skip
    if best.step is not None:
        best.epoch = epochs.get(best.step)
    if run_id is not None:
        name, digests = model_artifact_name(run_id), []
        for record in artifacts:
            if record.get("name") != name:
                continue
            digest = record.get("digest")
            if digest not in digests:
                digests.append(digest)
            if "best" in (record.get("aliases") or []):
                best.artifact = f"{name}:v{digests.index(digest)}"
    if output_dir is not None:
        best.unsaved = bool(best) and not best_model_dir(output_dir).is_dir()
    return best


def best_model_dir(output_dir: str | Path) -> Path:
    """`{output_dir}/wandb-best-model`."""
    return Path(output_dir) / BEST_MODEL_DIR


def _fsync_tree(folder: Path) -> None:
    """Flush every file under `folder` to disk (a rename is only as durable as the files it moves)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        with contextlib.suppress(OSError):
            if path.is_file():
                with path.open("rb+") as handle:
                    os.fsync(handle.fileno())
            else:
                fsync_dir(path)
    fsync_dir(folder)


def _siblings(target: Path, kind: str) -> list[Path]:
    """`{target}.{kind}-*` folders beside `target`, newest first."""
    found = [p for p in target.parent.glob(f"{target.name}.{kind}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _swap_in(new: Path, target: Path) -> None:
    """Put the complete folder `new` at `target`: the previous one is renamed away, `new` renamed in, then
    the previous one deleted. At every moment one complete copy exists under a name `recover_best` knows."""
    old = target.with_name(f"{target.name}.old-{new.name.rsplit('-', 1)[-1]}")
    if target.exists():
        os.rename(target, old)
    os.rename(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_best(output_dir: str | Path) -> Path | None:
    """Finish or undo a best-model swap a kill interrupted; returns the best-model folder when there is one.

    Beside `wandb-best-model` a save leaves `.tmp-*` (being written: incomplete, deleted), `.new-*` (complete,
    not yet renamed in) and `.old-*` (the previous best, renamed away). The newest complete copy wins: a
    `.new-*` folder is renamed in, else, with no `wandb-best-model`, the `.old-*` one is renamed back.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> out = Path(tempfile.mkdtemp())
        >>> (out / "wandb-best-model.old-1").mkdir(); (out / "wandb-best-model.tmp-2").mkdir()
        >>> recover_best(out).name, sorted(p.name for p in out.iterdir())
        ('wandb-best-model', ['wandb-best-model'])
    """
    target = best_model_dir(output_dir)
    if not target.parent.is_dir():
        return None
    for partial in _siblings(target, "tmp"):
        shutil.rmtree(partial, ignore_errors=True)
    newest = _siblings(target, "new")
    if newest:
        _swap_in(newest[0], target)
    elif not target.exists():
        previous = _siblings(target, "old")
        if previous:
            os.rename(previous[0], target)
            fsync_dir(target.parent)
    for stale in _siblings(target, "new") + _siblings(target, "old"):
        shutil.rmtree(stale, ignore_errors=True)
    return target if target.is_dir() else None


def save_best(
    model: Any, output_dir: str | Path, tokenizer: Any, *, evaluator: Any, trainer: Any,
    say: Callable[[str], Any],
) -> Path | None:  # fmt: skip
    """Save `model` to `{output_dir}/wandb-best-model`, replacing the previous best; None when nothing was saved
    (no model, a sharded one the trainer must save, or a folder that cannot be written). A custom module is
    saved with the pooling `evaluator` scored it with, so that it loads back and scores the same.

    The model is written beside the folder (`wandb-best-model.tmp-XXXX`), fsynced, renamed `.new-XXXX` once
    complete and swapped in (`_swap_in`): the previous best survives a kill or a full disk at any moment
    (`recover_best` finishes an interrupted swap). A full, read-only or over-quota `output_dir` is said once
    through `say`; the partial copy is removed and the previous best kept."""
    if model is None:
        return None
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False):
        say(SHARDED)
        return None
    target = best_model_dir(output_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_best(output_dir)
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    try:
        save_model(model, partial, tokenizer, pooling=getattr(evaluator, "pooling", None),
                   normalize=getattr(evaluator, "normalize", None),
                   max_length=getattr(evaluator, "max_length", None))  # fmt: skip
        _fsync_tree(partial)
        complete = partial.with_name(partial.name.replace(".tmp-", ".new-"))
        os.rename(partial, complete)
        _swap_in(complete, target)
    except BaseException as err:
        shutil.rmtree(partial, ignore_errors=True)
        fault = disk_error(err)
        if fault is None:
            raise
        kept = f"the previous best in {target} is kept" if target.is_dir() else "no best model is saved"
        say(f"could not save the best model to {describe(target.parent)}: {fault.strerror or fault}; {kept}")
        return None
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
    if not target.is_dir() or best.unsaved:  # the folder would hold another model than `best` describes
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
