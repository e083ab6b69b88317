"""What a run is called and what its config holds (SPEC §1), and `init_run`.

Everything here reads the trainer's arguments, model, loss and datasets; nothing logs. The config keys
are exactly the seed's names (`learning_rate`, `effective_batch_size`, `amp_dtype`, ...).

Why over 400 lines: collecting the SPEC §1 config means inspecting many trainer, model, loss and dataset
types, each a short function; precedence of names and projects is already in `run_options.py`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import os
import re
from collections.abc import Iterable, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hf_search_wandb.tracking.run_options import RunSettings

from hf_search_wandb.core.models.pooling_config import model_pooling
from hf_search_wandb.tracking.multi_vector_config import multi_vector_config
from hf_search_wandb.tracking.run_options import MAX_TAG_LENGTH
from hf_search_wandb.tracking.sparse_config import splade_config
from hf_search_wandb.tracking.wandb_api import start_run

# Losses whose other in-batch examples act as negatives.
IN_BATCH_LOSSES = frozenset(
    {
        "MultipleNegativesRankingLoss",
        "CachedMultipleNegativesRankingLoss",
        "MultipleNegativesSymmetricRankingLoss",
        "CachedMultipleNegativesSymmetricRankingLoss",
        "GISTEmbedLoss",
        "CachedGISTEmbedLoss",
        "MegaBatchMarginLoss",
    }
)
# The run config keys SPEC §1 prescribes (the seed's names); each can be overridden by the user.
CONFIG_KEYS = (
    "model_name", "model_type", "base_model", "max_seq_length", "pooling_mode", "learning_rate", "batch_size",
    "effective_batch_size", "gradient_accumulation_steps", "num_epochs", "warmup_ratio", "weight_decay",
    "max_grad_norm", "scheduler", "loss_function", "negative_sampling", "num_hard_negatives", "amp_dtype",
    "gradient_checkpointing", "dataset_name", "train_size", "val_size", "eval_metric", "eval_steps", "seed",
    "torch_version", "transformers_version", "sentence_transformers_version", "cuda_version", "gpu_name",
    "gpu_count", "accelerate_version", "wandb_version", "hf_search_wandb_version", "world_size", "mixed_precision",
)  # fmt: skip
_NOISE_TOKENS = frozenset(
    {"multilingual", "all", "sentence", "transformers", "uncased", "cased", "en", "unsupervised"}
)
#: Config key of the full `TrainingArguments` (`args.to_dict()`), nested so the spec's flat keys stay on top.
TRAINING_ARGS_KEY = "training_args"
#: Config key of the model's parameter count (transformers' `WandbCallback` uses the same).
NUM_PARAMETERS_KEY = "model/num_parameters"
_SIZE_TOKENS = ("xsmall", "small", "base", "large", "xlarge", "xxl", "mini", "tiny")



class RunOptions(Protocol):
    """What run set-up reads from the callback's options (`trainer.options.SearchWandbConfig` has these);
    declared here so this layer never imports the trainer layer."""

    model_type: str | None
    base_model: str | None
    dataset_name: str | None
    negative_sampling: str | None
    num_hard_negatives: int | None
    eval_metric: str

    @property
    def overrides(self) -> dict[str, Any]: ...

def base_model_short(base_model: str | None) -> str:
    """A short, readable model family name for run names.

    Rule: take the last path component, lower-case, split on ``-``/``_``/``.``; drop noise tokens
    (``multilingual``, ``all``, ``uncased``, ...) and version tokens (``v2``, ``1``); the first token
    left is the family. Families of three characters or fewer (``e5``, ``bge``, ``gte``) are ambiguous
    without their size, so the size token (``small``/``base``/``large``) is appended.

    Example:
        >>> base_model_short("intfloat/multilingual-e5-base")
        'e5base'
        >>> base_model_short("microsoft/deberta-v3-base")
        'deberta'
        >>> base_model_short("sentence-transformers/all-MiniLM-L6-v2")
        'minilm'
        >>> base_model_short("BAAI/bge-small-en-v1.5")
        'bgesmall'
        >>> base_model_short(None)
        'model'
    """
    if not base_model:
        return "model"
    last = Path(str(base_model).rstrip("/")).name.lower()
    tokens = [t for t in re.split(r"[-_./]", last) if t]
    kept = [t for t in tokens if t not in _NOISE_TOKENS and not re.fullmatch(r"v?\d+", t)]
    if not kept:
        return re.sub(r"[^a-z0-9]", "", last) or "model"
    family = re.sub(r"[^a-z0-9]", "", kept[0]) or "model"
    if len(family) <= 3:
        size = next((t for t in kept[1:] if t in _SIZE_TOKENS), "")
        family += size
    return family


def default_run_name(
    model_type: str, base_model: str | None, dataset: str | None, when: _dt.datetime | None = None
) -> str:
    """`{model_type}-{base_model_short}-{dataset}-{YYYYMMDD-HHMM}` (local time).

    Example:
        >>> import datetime
        >>> default_run_name("bi-encoder", "intfloat/multilingual-e5-base", "msmarco",
        ...                  datetime.datetime(2024, 3, 15, 14, 30))
        'bi-encoder-e5base-msmarco-20240315-1430'
    """
    when = when or _dt.datetime.now()
    dataset_part = re.sub(r"[^A-Za-z0-9]+", "", (dataset or "data").split("/")[-1]).lower() or "data"
    return f"{model_type}-{base_model_short(base_model)}-{dataset_part}-{when:%Y%m%d-%H%M}"


def default_tags(run_config: dict[str, Any]) -> list[str]:
    """`[model_type, "fine-tuning", dataset, "hard-negatives"?, amp dtype?]` from a collected config.

    Example:
        >>> default_tags({"model_type": "bi-encoder", "dataset_name": "msmarco", "num_hard_negatives": 5,
        ...               "amp_dtype": "bf16"})
        ['bi-encoder', 'fine-tuning', 'msmarco', 'hard-negatives', 'bf16']
    """
    tags = [str(run_config.get("model_type") or "bi-encoder"), "fine-tuning"]
    if run_config.get("dataset_name"):  # a long dataset path must not fail wandb.init: cut to wandb's limit
        tags.append(str(run_config["dataset_name"])[:MAX_TAG_LENGTH])
    if run_config.get("num_hard_negatives"):
        tags.append("hard-negatives")
    if run_config.get("amp_dtype") in ("bf16", "fp16"):
        tags.append(str(run_config["amp_dtype"]))
    return tags


# --------------------------------------------------------------------------- model introspection


def find_pretrained(model: Any) -> Any | None:
    """The `transformers.PreTrainedModel` inside `model` (itself, a SentenceTransformer's first module, or an
    `encoder`/`model`/`backbone`/`auto_model` attribute), else None."""
    from transformers import PreTrainedModel

    seen: set[int] = set()
    stack = [model]
    while stack:
        obj = stack.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, PreTrainedModel):
            return obj
        for attr in ("auto_model", "encoder", "model", "backbone", "module"):
            stack.append(getattr(obj, attr, None))
        if hasattr(obj, "_first_module"):
            with contextlib.suppress(AttributeError, IndexError, StopIteration):
                stack.append(obj._first_module())
    return None


def infer_model_type(model: Any) -> str:
    """bi-encoder unless the model is a CrossEncoder (cross-encoder), a SparseEncoder (splade) or a
    MultiVectorEncoder (multi-vector)."""
    names = {cls.__name__ for cls in type(model).__mro__}
    if "CrossEncoder" in names:
        return "cross-encoder"
    if "SparseEncoder" in names:
        return "splade"
    if "MultiVectorEncoder" in names:
        return "multi-vector"
    return "bi-encoder"


def infer_base_model(model: Any) -> str | None:
    card = getattr(model, "model_card_data", None)
    if card is not None and getattr(card, "base_model", None):
        return str(card.base_model)
    inner = find_pretrained(model)
    path = getattr(getattr(inner, "config", None), "_name_or_path", None) or getattr(
        inner, "name_or_path", None
    )
    return str(path) if path else None


def _max_seq_length(model: Any, tokenizer: Any) -> int | None:
    value = getattr(model, "max_seq_length", None)
    if isinstance(value, int):
        return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:
        return limit
    inner = find_pretrained(model)
    value = getattr(getattr(inner, "config", None), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def _pooling_mode(model: Any, evaluator: Any = None) -> str | None:
    """The pooling the model is evaluated with: a SentenceTransformer's Pooling module; for a transformers model
    (or a module holding one) evaluated by an evaluator with a `pooling` option, the pooling that evaluator applies
    (`core.models.pooling_config`: its `pooling=`, else what the model says, else mean); else a `pooling_mode` /
    `pooling` attribute of the model."""
    for module in getattr(model, "_modules", {}).values():
        getter = getattr(module, "get_pooling_mode_str", None)
        if callable(getter):
            return str(getter())
        if type(module).__name__ == "Pooling" and getattr(module, "pooling_mode", None):
            return str(module.pooling_mode)
    if evaluator is not None and hasattr(evaluator, "pooling"):
        choice = model_pooling(
            model, getattr(evaluator, "pooling", None), getattr(evaluator, "normalize", None)
        )
        if choice is not None:
            return choice.pooling
    for attr in ("pooling_mode", "pooling"):
        value = getattr(model, attr, None)
        if isinstance(value, str):
            return value
    return None


def loss_name(loss: Any) -> str | None:
    """Class name of a loss module (or `a+b` for a dict of losses); None when unknown."""
    if loss is None:
        return None
    if isinstance(loss, dict):
        names = sorted({n for n in (loss_name(v) for v in loss.values()) if n})
        return "+".join(names) or None
    if isinstance(loss, type):
        return loss.__name__
    name = type(loss).__name__
    return getattr(loss, "__name__", name) if name == "function" else name


def count_hard_negatives(dataset: Any) -> int:
    """Number of `negative*` columns of a dataset (0 when it has none or no columns)."""
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, dict):  # DatasetDict
        columns = next(iter(columns.values()), [])
    return sum(1 for c in (columns or []) if str(c).lower().startswith("negative"))


def _size(obj: Any) -> int | None:
    if isinstance(obj, dict) and obj and all(isinstance(v, Sized) for v in obj.values()):
        return sum(len(v) for v in obj.values())
    return len(obj) if isinstance(obj, Sized) else None


def _dataset_name(dataset: Any) -> str | None:
    info = getattr(dataset, "info", None)
    name = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
    return str(name) if name and name not in ("generator", "json", "parquet", "csv", "arrow") else None


# --------------------------------------------------------------------------- config


def collect_config(
    args: Any,
    *,
    model: Any = None,
    tokenizer: Any = None,
    loss: Any = None,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    evaluator: Any = None,
    options: RunOptions | None = None,
    callbacks: Iterable[Any] = (),
) -> dict[str, Any]:
    """The run config of SPEC §1 from `TrainingArguments` and what the trainer holds, then the overrides.

    Example:
        >>> from transformers import TrainingArguments
        >>> cfg = collect_config(TrainingArguments("out", per_device_train_batch_size=8,
        ...                      gradient_accumulation_steps=4, report_to="none"))
        >>> cfg["effective_batch_size"], cfg["eval_metric"], cfg["amp_dtype"]
        (32, 'mrr@10', 'fp32')
    """
    if options is None:
        from types import SimpleNamespace

        options = SimpleNamespace(num_hard_negatives=None, negative_sampling=None, base_model=None,
                                  dataset_name=None, model_type=None, eval_metric="mrr@10", overrides={})
    world_size = int(getattr(args, "world_size", 1) or 1)
    batch = int(args.per_device_train_batch_size)
    accum = int(args.gradient_accumulation_steps)
    loss_function = loss_name(loss)
    if loss_function is None and model is not None:
        loss_function = loss_name(getattr(model, "loss_fn", None) or getattr(model, "loss", None))
    hard_negatives: int = (
        options.num_hard_negatives
        if options.num_hard_negatives is not None
        else count_hard_negatives(train_dataset)
    )
    negative_sampling = options.negative_sampling
    if negative_sampling is None:
        in_batch = loss_function is not None and any(n in IN_BATCH_LOSSES for n in loss_function.split("+"))
        parts = (["in-batch"] if in_batch else []) + (["hard_negatives"] if hard_negatives else [])
        negative_sampling = " + ".join(parts) or None
    base_model = options.base_model or (infer_base_model(model) if model is not None else None)
    dataset_name = (
        options.dataset_name or _dataset_name(train_dataset) or getattr(evaluator, "dataset_name", None)
    )
    val_size: int | None = _size(eval_dataset)
    if evaluator is not None and getattr(evaluator, "queries", None) is not None:
        val_size = len(evaluator.queries)
    strategy = str(
        getattr(getattr(args, "eval_strategy", "no"), "value", getattr(args, "eval_strategy", "no"))
    )
    scheduler = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    warmup = float(getattr(args, "warmup_ratio", 0.0) or 0.0)
    warmup_steps = float(getattr(args, "warmup_steps", 0) or 0)
    if not warmup and 0 < warmup_steps < 1:
        warmup = warmup_steps
    model_type = options.model_type or (infer_model_type(model) if model is not None else "bi-encoder")
    config: dict[str, Any] = {
        "model_name": Path(str(args.output_dir)).name if args.output_dir else None,
        "model_type": model_type,
        "base_model": base_model,
        "max_seq_length": _max_seq_length(model, tokenizer) if model is not None else None,
        "pooling_mode": _pooling_mode(model, evaluator) if model is not None else None,
        "learning_rate": float(args.learning_rate),
        "batch_size": batch,
        "effective_batch_size": batch * accum * world_size,
        "gradient_accumulation_steps": accum,
        "num_epochs": float(args.num_train_epochs),
        "max_steps": int(args.max_steps),
        "warmup_ratio": warmup,
        "warmup_steps": int(warmup_steps) if warmup_steps >= 1 else 0,
        "weight_decay": float(args.weight_decay),
        "max_grad_norm": float(args.max_grad_norm),
        "scheduler": str(scheduler),
        "loss_function": loss_function,
        "negative_sampling": negative_sampling,
        "num_hard_negatives": int(hard_negatives),
        "amp_dtype": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "eval_precision": evaluation_precision(evaluator, model, model_type),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "dataset_name": dataset_name,
        "train_size": _size(train_dataset),
        "val_size": val_size,
        "val_corpus_size": len(evaluator.corpus) if getattr(evaluator, "corpus", None) is not None else None,
        "eval_search": getattr(evaluator, "search", None),  # "exact", or "bm25 top 100, re-scored"
        "eval_metric": options.eval_metric,
        "eval_steps": int(args.eval_steps) if strategy == "steps" and args.eval_steps else strategy,
        "seed": int(args.seed),
    }
    config.update(splade_config(model, loss, callbacks))  # SPLADE: pooling, activation, regulariser weights
    config.update(multi_vector_config(model, options.model_type))  # ColBERT: token dim, lengths, expansion
    if config["model_type"] == "cross-encoder" and model is not None:  # a reranker's head: 1 = a relevance score
        num_labels = getattr(model, "num_labels", None)
        config["num_labels"] = int(num_labels) if isinstance(num_labels, int) else None
    config.update(environment_info(world_size=world_size, mixed_precision=config["amp_dtype"]))
    if model is not None:
        config[NUM_PARAMETERS_KEY] = num_parameters(model)
    config.update(options.overrides)
    if hasattr(args, "to_dict"):  # transformers' callback records the full arguments too: nested, below the spec keys
        config[TRAINING_ARGS_KEY] = args.to_dict()
    return config


def evaluation_precision(evaluator: Any, model: Any, model_type: str | None = None) -> str | None:
    """The precision `evaluator`'s forward pass runs in on `model` now, by the one rule of
    `core.evaluation.precision` (`"fp32"`, `"bf16"` or `"fp16"`); None without a model or one of our evaluators.
    Read when the run starts, inside the trainer: its mixed precision counts (`last_result.precision` says what
    each evaluation ran in).

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> evaluation_precision(SimpleNamespace(precision="fp32"), torch.nn.Linear(2, 2))
        'fp32'
        >>> evaluation_precision(None, torch.nn.Linear(2, 2)) is None
        True
    """
    import torch

    from hf_search_wandb.core.evaluation.precision import resolved_precision

    precision = getattr(evaluator, "precision", None)
    parameters = getattr(model, "parameters", None)
    if precision not in ("auto", "fp32", "bf16", "fp16") or not callable(parameters):
        return None
    first = next(iter(parameters()), None)
    dtype, device = (first.dtype, first.device) if first is not None else (torch.float32, torch.device("cpu"))
    # the family the evaluator runs the model as (a multi-vector model is one whichever evaluator scores it)
    family = {"cross-encoder": "reranking", "splade": "sparse", "multi-vector": "multi_vector"}.get(
        str(model_type), "dense"
    )
    return resolved_precision(precision, dtype, device, family)


def num_parameters(model: Any) -> int | None:
    """The model's parameter count (`PreTrainedModel.num_parameters()`, else the sum over `parameters()`).

    Example:
        >>> import torch
        >>> num_parameters(torch.nn.Linear(3, 2))
        8
    """
    counter = getattr(model, "num_parameters", None)
    if callable(counter):
        with contextlib.suppress(Exception):
            return int(counter())
    params = getattr(model, "parameters", None)
    if not callable(params):
        return None
    seen: set[int] = set()
    total = 0
    for p in params():
        if id(p) not in seen:
            seen.add(id(p))
            total += int(p.numel())
    return total


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_info(*, world_size: int = 1, mixed_precision: str | None = None) -> dict[str, Any]:
    """Library versions, CUDA and GPU facts under the seed's keys (plus accelerate/wandb/package versions).

    Example:
        >>> info = environment_info()
        >>> sorted(info)[:3]
        ['accelerate_version', 'cuda_version', 'gpu_count']
    """
    import torch

    from hf_search_wandb._version import __version__

    cuda = torch.cuda.is_available()
    return {
        "torch_version": torch.__version__,
        "transformers_version": _version("transformers"),
        "sentence_transformers_version": _version("sentence-transformers"),
        "cuda_version": torch.version.cuda,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else "cpu",
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "accelerate_version": _version("accelerate"),
        "wandb_version": _version("wandb"),
        "hf_search_wandb_version": __version__,
        "world_size": world_size,
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16"}.get(str(mixed_precision), "no"),
    }


def init_run(
    wandb: Any,
    settings: RunSettings,
    *,
    mode: str,
    run_config: dict[str, Any],
    directory: str | None = None,
    run_id: str | None = None,
    flush_seconds: float | None = None,
    rename: bool = False,
) -> tuple[Any, bool]:
    """Start the run, or reuse `wandb.run` when one exists. Returns `(run, created)`.

    `settings` comes from `run_options.resolve_run_settings` (explicit argument > `WANDB_*` > `run_name` >
    automatic). A reused run keeps its project; it gets our tags and config, and our name unless it has its own
    and ours is only the automatic one (`rename`: ours in any case, for a run another integration started).
    `run_id` continues that run (`resume="allow"`), used when training
    resumes from a checkpoint.
    `flush_seconds` sets how often wandb's service writes the run's `.wandb` file to disk (wandb's
    `x_transaction_log_flush_interval`, 15 s by default): what a SIGKILL can lose at most.
    """
    if wandb.run is not None:
        run = wandb.run
        if rename or settings.sources.get("name") != "automatic" or not run.name or run.name == run.id:
            run.name = settings.name
        run.tags = tuple(dict.fromkeys([*(run.tags or ()), *settings.tags]))
        if settings.notes:
            run.notes = settings.notes
        run.config.update(run_config, allow_val_change=True)
        return run, False
    kwargs: dict[str, Any] = {**settings.init_arguments(), "config": run_config, "mode": mode}
    # WANDB_DIR is read again on each run: wandb itself reads it once per process.
    directory = directory or os.environ.get("WANDB_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        kwargs["dir"] = directory
    if run_id:
        kwargs.update(id=run_id, resume="allow")
    fields = getattr(wandb.Settings, "model_fields", {})
    if flush_seconds is not None and "settings" not in kwargs and "x_transaction_log_flush_interval" in fields:
        kwargs["settings"] = wandb.Settings(x_transaction_log_flush_interval=flush_seconds)
    # Bounded, and offline when the online start fails: training never waits on or dies of the server.
    return start_run(wandb, kwargs), True
