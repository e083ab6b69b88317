"""How the trainer's log keys become the SPEC §2 names (`train/loss`, `val/mrr@10`, `system/...`).

Pure functions over dicts: the callback's `on_log` is one call to `split_logs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hf_search_wandb.core.measures import LOGGED_SERIES, logged_goal

STEP_KEY = "train/global_step"
TRAIN_KEYS = {
    "loss": "train/loss",
    "learning_rate": "train/lr",
    "grad_norm": "train/grad_norm",
    "epoch": "train/epoch",
}
# transformers' end-of-training log: summary values, not series
SUMMARY_KEYS = {
    "train_runtime": "train/runtime",
    "train_samples_per_second": "train/samples_per_second",
    "train_steps_per_second": "train/steps_per_second",
    "train_loss": "train/mean_loss",
    "total_flos": "train/total_flos",
}
EVAL_SYSTEM = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


def val_key(key: str, evaluator_names: Iterable[str] = ("val",)) -> str:
    """`eval_val_mrr@10` -> `val/mrr@10`; `eval_loss` -> `val/loss`; `eval_runtime` -> `system/eval_runtime`.

    The evaluator's own prefix (`{name}_`, e.g. `val_` or `scifact_`) is removed.

    Example:
        >>> val_key("eval_val_mrr@10"), val_key("eval_loss"), val_key("eval_scifact_map", ["scifact"])
        ('val/mrr@10', 'val/loss', 'val/map')
        >>> val_key("eval_runtime")
        'system/eval_runtime'
    """
    name = key[len("eval_") :] if key.startswith("eval_") else key
    if name in EVAL_SYSTEM:
        return f"system/eval_{name}"
    for prefix in (*[n for n in evaluator_names if n], "val"):
        if name.startswith(f"{prefix}_"):
            return "val/" + name[len(prefix) + 1 :]
    return "val/" + name


def summary_goal(key: str) -> str:
    """The summary a validation key's column shows in the runs table, from the table of measures
    (`core/measures.py`): the measure's goal (`"max"`, `"min"` for losses), `"last"` for a logged figure where
    neither direction is better (the sparsity figures), `"max"` for any other key.

    Args:
        key: `val/mrr@10`, `val/loss`, or the bare name (`mrr@10`, `loss`: `eval_metric`).

    Example:
        >>> summary_goal("val/loss"), summary_goal("val/mrr@10"), summary_goal("loss"), summary_goal("val/bpref")
        ('min', 'max', 'min', 'max')
        >>> summary_goal("val/flops")
        'last'
    """
    full = "val/" + key.split("/", 1)[-1]
    if full in LOGGED_SERIES:
        return LOGGED_SERIES[full] or "last"
    return logged_goal(full) or "max"


@dataclass
class SplitLogs:
    """One `on_log` payload, sorted by where it goes."""

    train: dict[str, Any] = field(default_factory=dict)
    val: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def split_logs(
    logs: Mapping[str, Any], evaluator_names: Iterable[str] = ("val",), *, grad_norm: bool = True
) -> SplitLogs:
    """Rename a trainer log: `eval_*` keys to `val/` (or `system/`), the end-of-training figures to the
    summary, everything else numeric to `train/`.

    Example:
        >>> s = split_logs({"loss": 0.5, "learning_rate": 1e-5, "grad_norm": 2.0, "epoch": 0.1})
        >>> s.train
        {'train/loss': 0.5, 'train/lr': 1e-05, 'train/grad_norm': 2.0, 'train/epoch': 0.1}
        >>> split_logs({"eval_loss": 1.2, "eval_val_ndcg@10": 0.4, "epoch": 1.0}).val
        {'val/loss': 1.2, 'val/ndcg@10': 0.4}
    """
    names = list(evaluator_names)
    out = SplitLogs()
    for key, value in logs.items():
        if key in SUMMARY_KEYS:
            out.summary[SUMMARY_KEYS[key]] = value
        elif key.startswith("eval_"):
            out.val[val_key(key, names)] = value
        elif key in TRAIN_KEYS:
            if key != "grad_norm" or grad_norm:
                out.train[TRAIN_KEYS[key]] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.train[f"train/{key}"] = value
    if out.val:
        out.train.pop("train/epoch", None)
    return out
