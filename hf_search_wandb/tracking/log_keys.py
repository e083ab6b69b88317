"""The wandb key schema, in one place: how the trainer's log keys become the SPEC §2 names (`train/loss`,
`val/mrr@10`, `system/...`), the step axis, the namespaces the callback writes, the summary goals and the
`best/` summary keys.

Pure functions over dicts, no wandb: the callback's `on_log` is one call to `split_logs`. The goal of each
measure comes from the table of measures (`core/metrics/measures.py`); every name of a wandb key is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hf_search_wandb.core.metrics.measures import LOGGED_SERIES, logged_goal

#: The one step axis: every row carries it, every metric is plotted against it (`define_metric`).
STEP_KEY = "train/global_step"
#: Namespaces the callback itself writes: an evaluator may not be named after one of them.
RESERVED_NAMES = frozenset({"train", "system", "best", "gradients", "parameters"})
#: Where an evaluation without a name of its own goes (one evaluator, `eval` prefix).
VAL = "val"
VAL_LOSS_KEY = "val/loss"
EPOCH_KEY = "train/epoch"
LOSS_KEY = "train/loss"
EPOCH_LOSS_KEY = "train/epoch_loss"
THROUGHPUT_KEY = "system/throughput"
PEAK_MEMORY_KEY = "system/peak_memory_gb"
SYSTEM_PREFIX = "system/"
BEST_PREFIX = "best/"
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


def eval_prefix(logs: Mapping[str, Any]) -> str | None:
    """The `metric_key_prefix` of an evaluation's metrics (`eval`, `test`, `eval_scifact`), read from its
    `{prefix}_runtime` key (transformers always adds it); `eval` for bare `eval_*` keys; None for a training log.

    Example:
        >>> eval_prefix({"test_loss": 1.0, "test_runtime": 0.5}), eval_prefix({"eval_val_mrr@10": 0.3})
        ('test', 'eval')
        >>> eval_prefix({"loss": 0.5, "train_runtime": 9.0}) is None
        True
    """
    for key in logs:
        if key.endswith("_runtime") and key not in SUMMARY_KEYS:
            return key[: -len("_runtime")]
    return "eval" if any(str(k).startswith("eval_") for k in logs) else None


def prefix_namespace(prefix: str) -> str:
    """Where an evaluation's metrics go: `eval` -> `val` (SPEC §2); `eval_{dataset}` (a dict of eval datasets)
    -> `{dataset}`; any other prefix (`test` from `predict` or `evaluate(metric_key_prefix="test")`) -> itself.

    Example:
        >>> prefix_namespace("eval"), prefix_namespace("eval_nfcorpus"), prefix_namespace("test")
        ('val', 'nfcorpus', 'test')
    """
    if prefix == "eval":
        return "val"
    return prefix[len("eval_") :] if prefix.startswith("eval_") else prefix


def evaluator_names_in(keys: Iterable[str], prefix: str, evaluator_names: Iterable[str]) -> list[str]:
    """The evaluators (by name) whose metrics are among `keys` (`{prefix}_{name}_{metric}`), in their order.

    Example:
        >>> evaluator_names_in(["eval_loss", "eval_a_map", "eval_b_map"], "eval", ["a", "b", "c"])
        ['a', 'b']
    """
    keys = list(keys)
    return [n for n in evaluator_names if n and any(k.startswith(f"{prefix}_{n}_") for k in keys)]


def eval_key(key: str, prefix: str = "eval", evaluator_names: Iterable[str] = ("val",), *, several: bool = False) -> str:
    """The wandb key of one evaluation metric.

    One evaluator: `{namespace}/{metric}` (`eval_val_mrr@10` -> `val/mrr@10`, its `{name}_` removed). Several
    (`several=True`): each evaluator under its own name, `eval_scifact_ndcg@10` -> `scifact/ndcg@10` (under
    another prefix: `test/scifact/ndcg@10`). Timings go to `system/{prefix}_runtime`, ...

    Example:
        >>> eval_key("eval_val_mrr@10"), eval_key("eval_loss"), eval_key("eval_runtime")
        ('val/mrr@10', 'val/loss', 'system/eval_runtime')
        >>> eval_key("eval_nf_ndcg@10", "eval", ["sf", "nf"], several=True), eval_key("test_val_map", "test")
        ('nf/ndcg@10', 'test/map')
    """
    rest = key[len(prefix) + 1 :] if key.startswith(f"{prefix}_") else key
    if rest in EVAL_SYSTEM:
        return f"system/{prefix}_{rest}"
    base = prefix_namespace(prefix)
    for name in sorted((n for n in evaluator_names if n), key=len, reverse=True):
        if rest.startswith(f"{name}_"):
            metric = rest[len(name) + 1 :]
            if several:
                return f"{name}/{metric}" if base == "val" else f"{base}/{name}/{metric}"
            return f"{base}/{metric}"
    if not several and rest.startswith("val_"):
        return f"{base}/{rest[len('val_') :]}"
    return f"{base}/{rest}"


def val_key(key: str, evaluator_names: Iterable[str] = ("val",)) -> str:
    """`eval_val_mrr@10` -> `val/mrr@10`; `eval_loss` -> `val/loss`; `eval_runtime` -> `system/eval_runtime`.

    The evaluator's own prefix (`{name}_`, e.g. `val_` or `scifact_`) is removed (one evaluator; see `eval_key`).

    Example:
        >>> val_key("eval_val_mrr@10"), val_key("eval_loss"), val_key("eval_scifact_map", ["scifact"])
        ('val/mrr@10', 'val/loss', 'val/map')
        >>> val_key("eval_runtime")
        'system/eval_runtime'
    """
    return eval_key(key, "eval", evaluator_names)


def route_evaluation(
    metrics: Mapping[str, Any], evaluator_names: Iterable[str] = ("val",), prefix: str | None = None
) -> dict[str, Any]:
    """Every metric of one evaluation (the keys under its prefix) under its wandb key; several evaluators
    present -> each in its own namespace.

    Example:
        >>> route_evaluation({"eval_loss": 1.0, "eval_a_map": 0.2, "eval_b_map": 0.3, "epoch": 1.0}, ["a", "b"])
        {'val/loss': 1.0, 'a/map': 0.2, 'b/map': 0.3}
    """
    prefix = prefix or eval_prefix(metrics) or "eval"
    names = list(evaluator_names)
    several = len(evaluator_names_in(metrics, prefix, names)) > 1
    return {
        eval_key(k, prefix, names, several=several): v
        for k, v in metrics.items()
        if str(k).startswith(f"{prefix}_") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def summary_goal(key: str) -> str:
    """The summary a validation key's column shows in the runs table, from the table of measures
    (`core/metrics/measures.py`): the measure's goal (`"max"`, `"min"` for losses), `"last"` for a logged figure where
    neither direction is better (the sparsity figures), `"max"` for any other key.

    Args:
        key: `val/mrr@10`, `val/loss`, or the bare name (`mrr@10`, `loss`: `eval_metric`).

    Example:
        >>> summary_goal("val/loss"), summary_goal("val/mrr@10"), summary_goal("loss"), summary_goal("val/bpref")
        ('min', 'max', 'min', 'max')
        >>> summary_goal("val/flops"), summary_goal("val/index_mb")
        ('last', 'last')
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
    """Rename a trainer log: an evaluation's keys (`eval_*`, or `test_*` from `evaluate(metric_key_prefix=
    "test")`) by `route_evaluation`, the end-of-training figures to the summary, everything else numeric to
    `train/`.

    Example:
        >>> s = split_logs({"loss": 0.5, "learning_rate": 1e-5, "grad_norm": 2.0, "epoch": 0.1})
        >>> s.train
        {'train/loss': 0.5, 'train/lr': 1e-05, 'train/grad_norm': 2.0, 'train/epoch': 0.1}
        >>> split_logs({"eval_loss": 1.2, "eval_val_ndcg@10": 0.4, "epoch": 1.0}).val
        {'val/loss': 1.2, 'val/ndcg@10': 0.4}
    """
    names = list(evaluator_names)
    out = SplitLogs()
    prefix = eval_prefix(logs)
    if prefix is not None:
        out.val = route_evaluation(logs, names, prefix)
    for key, value in logs.items():
        if key in SUMMARY_KEYS:
            out.summary[SUMMARY_KEYS[key]] = value
        elif prefix is not None and key.startswith(f"{prefix}_"):
            continue
        elif key in TRAIN_KEYS:
            if key != "grad_norm" or grad_norm:
                out.train[TRAIN_KEYS[key]] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.train[f"train/{key}"] = value
    if out.val:
        out.train.pop("train/epoch", None)
    return out


def trainer_key_prefix(evaluator_name: str, prefix: str = "eval") -> str:
    """The prefix of one evaluator's metrics in the trainer's dict (the inverse of `eval_key`): the callback
    adds `eval_{name}_{metric}` so that `metric_for_best_model="eval_val_mrr@10"` works.

    Example:
        >>> trainer_key_prefix("val"), trainer_key_prefix("")
        ('eval_val_', 'eval_')
    """
    return f"{prefix}_{evaluator_name}_" if evaluator_name else f"{prefix}_"


def evaluator_namespace(evaluator_name: str, *, several: bool) -> str:
    """Where an evaluator's metrics go during training: `val` with one evaluator; its name with several.

    Example:
        >>> evaluator_namespace("scifact", several=False), evaluator_namespace("scifact", several=True)
        ('val', 'scifact')
    """
    return (evaluator_name or VAL) if several else VAL


def metric_key(namespace: str, metric: str) -> str:
    """`{namespace}/{metric}`: the wandb key of one metric of an evaluation logged under `namespace`.

    Example:
        >>> metric_key("val", "mrr@10"), metric_key("test", "map")
        ('val/mrr@10', 'test/map')
    """
    return f"{namespace}/{metric}"


def headline_key(metric: str, namespace: str = VAL) -> str:
    """The wandb key best tracking reads: `{namespace}/{metric}` of the primary evaluator (`val/...` with one);
    `val/loss` for the loss, which the trainer computes once for all evaluators.

    Example:
        >>> headline_key("ndcg@10", "nfcorpus"), headline_key("loss", "nfcorpus")
        ('nfcorpus/ndcg@10', 'val/loss')
    """
    return metric_key(VAL if metric == "loss" else namespace, metric)


def media_namespace(prefix: str, evaluator_name: str, *, several: bool, several_ran: bool) -> str:
    """Where an evaluation's tables and histograms go: top-level keys for one evaluator in training (`""`),
    `{name}/...` with several; under another prefix `{prefix namespace}/...` (e.g. `test/`), plus the
    evaluator's name when several evaluators ran.

    Example:
        >>> media_namespace("eval", "val", several=False, several_ran=False)
        ''
        >>> media_namespace("eval", "nf", several=True, several_ran=True), media_namespace("test", "nf", several=True, several_ran=True)
        ('nf', 'test/nf')
    """
    base = prefix_namespace(prefix)
    if base == VAL:
        return evaluator_namespace(evaluator_name, several=True) if several else ""
    return f"{base}/{evaluator_name}" if several_ran and evaluator_name else base


def is_system(key: str) -> bool:
    """True for `system/...` keys (timings, throughput, memory): logged, never given a summary goal.

    Example:
        >>> is_system("system/eval_runtime"), is_system("val/map")
        (True, False)
    """
    return key.startswith(SYSTEM_PREFIX)


def best_summary(metric: str, value: float, step: int) -> dict[str, Any]:
    """The summary keys a new best evaluation sets: `best/{metric}` and `best/step`.

    Example:
        >>> best_summary("mrr@10", 0.5, 30)
        {'best/mrr@10': 0.5, 'best/step': 30}
    """
    return {f"{BEST_PREFIX}{metric}": value, f"{BEST_PREFIX}step": step}


def best_summary_of(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The `best/` summary keys of a best evaluation's metadata (`best_step` -> `best/step`, `map` -> `best/map`).

    Example:
        >>> best_summary_of({"best_mrr@10": 0.5, "best_step": 3, "map": 0.4})
        {'best/mrr@10': 0.5, 'best/step': 3, 'best/map': 0.4}
    """
    return {f"{BEST_PREFIX}{key.removeprefix('best_')}": value for key, value in metadata.items()}


def namespace_of(key: str) -> str:
    """The namespace of a wandb key: what comes before its first `/`.

    Example:
        >>> namespace_of("nfcorpus/ndcg@10"), namespace_of("val/loss")
        ('nfcorpus', 'val')
    """
    return key.split("/", 1)[0]


def metrics_under(row: Mapping[str, Any], namespaces: Iterable[str]) -> dict[str, Any]:
    """The metrics of `row` under any of `namespaces`, by their name without the namespace.

    Example:
        >>> metrics_under({"val/loss": 1.0, "nf/map": 0.3, "sf/map": 0.2, STEP_KEY: 3}, ("val", "nf"))
        {'loss': 1.0, 'map': 0.3}
    """
    wanted = set(namespaces)
    return {key.split("/", 1)[1]: value for key, value in row.items() if namespace_of(key) in wanted}
