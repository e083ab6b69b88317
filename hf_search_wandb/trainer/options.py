"""`SearchWandbConfig`: every option of `SearchWandbCallback`, as a dataclass.

Readable by `transformers.HfArgumentParser`, so a training script can expose the options on its command
line next to `TrainingArguments`. `None` means "not given": the run settings then follow the precedence
rule of `tracking.run_options` (`WANDB_*` environment variables, `TrainingArguments.run_name`, our default),
resolved when training starts; nothing here reads the environment.
"""

from __future__ import annotations

import json
import re
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import Any

from hf_search_wandb.core.data.inputs import string_list
from hf_search_wandb.tracking.run_options import checked_tags

MODEL_TYPES = ("bi-encoder", "cross-encoder", "colbert", "splade")
MODES = ("online", "offline", "disabled")
ARTIFACT_POLICIES = ("best", "end", "checkpoint", "off")
WATCH_VALUES = ("gradients", "parameters", "all", "false")
TABLE_POLICIES = ("every", "end", "off")


@dataclass
class SearchWandbConfig:
    """Options of `SearchWandbCallback`. Every field has a default; `None` means "fill automatically".

    Example:
        >>> from hf_search_wandb.trainer.options import SearchWandbConfig
        >>> cfg = SearchWandbConfig(model_type="bi-encoder", dataset_name="scifact", log_tables="2")
        >>> cfg.tables_every, cfg.wandb_project
        (2, None)
        >>> SearchWandbConfig(model_artifact="sometimes")
        Traceback (most recent call last):
        ...
        ValueError: model_artifact must be one of ('best', 'end', 'checkpoint', 'off') or None, got 'sometimes'
    """

    # --- run set-up (wandb.init) ---
    wandb_project: str | None = field(
        default=None,
        metadata={
            "help": "wandb project. Default: WANDB_PROJECT, else search-model-training "
            "(TrainingArguments already owns --project, trackio's)."
        },
    )
    name: str | None = field(
        default=None,
        metadata={
            "help": "Run name. Default: WANDB_NAME, else TrainingArguments.run_name, "
            "else {model_type}-{base_model_short}-{dataset}-{YYYYMMDD-HHMM}."
        },
    )
    tags: list[str] | None = field(
        default=None,
        metadata={
            "help": "Run tags. Default: WANDB_TAGS (comma-separated), else model type, 'fine-tuning', dataset, "
            "'hard-negatives', amp dtype."
        },
    )
    notes: str | None = field(default=None, metadata={"help": "Run notes (free text). Default: WANDB_NOTES."})
    group: str | None = field(
        default=None, metadata={"help": "wandb run group (e.g. one per sweep or DDP job). Default: WANDB_RUN_GROUP."}
    )
    entity: str | None = field(default=None, metadata={"help": "wandb entity (user or team). Default: WANDB_ENTITY."})
    job_type: str | None = field(default=None, metadata={"help": "wandb job type. Default: WANDB_JOB_TYPE."})
    init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Any other wandb.init keyword (save_code, settings, resume_from, ...): a dict, or a JSON "
            "object on the CLI."
        },
    )
    watch: str | None = field(
        default=None,
        metadata={
            "help": "wandb.watch the model: gradients | parameters | all | false, every logging_steps. "
            "Default: WANDB_WATCH, else false."
        },
    )
    dir: str | None = field(default=None, metadata={"help": "Directory wandb writes its files under."})
    mode: str | None = field(
        default=None,
        metadata={
            "help": "online | offline | disabled. Default: WANDB_MODE, else online when logged in, else offline."
        },
    )
    # --- what the run describes ---
    model_type: str | None = field(
        default=None,
        metadata={"help": "bi-encoder | cross-encoder | colbert | splade. Default: inferred from the model."},
    )
    base_model: str | None = field(
        default=None,
        metadata={"help": "Base model id, e.g. intfloat/multilingual-e5-base. Default: the model's."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Dataset name for the run name, tags and config. Default: inferred."}
    )
    config_overrides: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Values that replace the automatic config (a dict, or a JSON object on the CLI)."},
    )
    eval_metric: str = field(
        default="mrr@10", metadata={"help": "Headline metric: best tracking, model artifact and the config."}
    )
    negative_sampling: str | None = field(
        default=None, metadata={"help": "Config value negative_sampling (e.g. bm25_hard). Default: inferred."}
    )
    num_hard_negatives: int | None = field(
        default=None,
        metadata={"help": "Config value num_hard_negatives. Default: the dataset's negative_* columns."},
    )
    # --- metrics ---
    log_grad_norm: bool = field(
        default=True, metadata={"help": "Log train/grad_norm when the trainer has it."}
    )
    log_peak_memory: bool = field(
        default=True,
        metadata={"help": "Log system/peak_memory_gb (peak allocated CUDA memory) with each log."},
    )
    log_system_every_log: bool = field(
        default=False,
        metadata={"help": "Also log system/throughput with every train log, not only per epoch."},
    )
    log_in_background: bool = field(
        default=True,
        metadata={"help": "Hand rows to wandb from a worker thread, so training never waits on wandb.log."},
    )
    # --- tables and histograms (content: hf_search_wandb.tracking.tables) ---
    log_tables: str = field(
        default="every",
        metadata={"help": "Retrieval tables and histograms: every | end | off | N (every N evaluations)."},
    )
    num_examples: int = field(default=20, metadata={"help": "Queries in the retrieval_examples table."})
    examples_k: int = field(default=5, metadata={"help": "Top-k documents shown per example query."})
    error_k: int = field(
        default=10, metadata={"help": "A query is an error when no relevant doc is in its top k."}
    )
    log_histograms: bool = field(default=True, metadata={"help": "Log the score histograms with the tables."})
    table_seed: int = field(default=0, metadata={"help": "Seed of the fixed sample of example queries."})
    # --- artifacts (content: hf_search_wandb.tracking.artifacts) ---
    model_artifact: str | None = field(
        default=None,
        metadata={
            "help": "Model artifact: best (a version on each new best) | end | checkpoint (each saved checkpoint; "
            "alias best moves to the best) | off. Default: WANDB_LOG_MODEL (false/end/checkpoint), else best."
        },
    )
    dataset_artifact: bool = field(
        default=False, metadata={"help": "Log the train/eval datasets as a dataset artifact at train start."}
    )
    # --- lifecycle ---
    resume: bool = field(
        default=True, metadata={"help": "Continue the checkpoint's wandb run when training resumes from it."}
    )
    finish_on_train_end: bool | None = field(
        default=None,
        metadata={
            "help": "Finish the run at train end. Default: no: the run stays open for trainer.evaluate()/predict() "
            "after train() and is finished by callback.finish(), the next train() or the process exit "
            "(a run you started yourself is never finished by the callback)."
        },
    )

    # `project=` is accepted as an alias of `wandb_project` in Python (not on the command line, where
    # `TrainingArguments.project` already takes `--project`).
    project: InitVar[str | None] = None

    def __post_init__(self, project: str | None) -> None:
        if project is not None:
            self.wandb_project = project
        if self.wandb_project is not None and not self.wandb_project:
            raise ValueError("wandb_project must be a non-empty string (or None: WANDB_PROJECT, else the default)")
        if self.watch is not None:
            self.watch = str(self.watch).lower()
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, got {self.mode!r}")
        if self.model_type is not None and self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.model_artifact is not None and self.model_artifact not in ARTIFACT_POLICIES:
            raise ValueError(
                f"model_artifact must be one of {ARTIFACT_POLICIES} or None, got {self.model_artifact!r}"
            )
        if self.watch is not None and str(self.watch).lower() not in WATCH_VALUES:
            raise ValueError(f"watch must be one of {WATCH_VALUES} or None, got {self.watch!r}")
        self.config_overrides = _json_object("config_overrides", self.config_overrides, '{"seed": 1}')
        self.init_kwargs = _json_object("init_kwargs", self.init_kwargs, '{"save_code": true}')
        self.log_tables = str(self.log_tables).strip().lower()
        if self.log_tables not in TABLE_POLICIES and not (
            self.log_tables.isdigit() and int(self.log_tables) > 0
        ):
            raise ValueError(
                f"log_tables must be one of {TABLE_POLICIES} or a positive integer N (every N evaluations), "
                f"got {self.log_tables!r}"
            )
        for name in ("num_examples", "examples_k", "error_k"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.num_hard_negatives is not None and self.num_hard_negatives < 0:
            raise ValueError(f"num_hard_negatives must be >= 0, got {self.num_hard_negatives}")
        if self.tags is not None:
            self.tags = checked_tags(string_list(self.tags, "tags"), "tags")
        self.eval_metric = _check_eval_metric(self.eval_metric)

    @property
    def tables_every(self) -> int | None:
        """Log tables every this many evaluations; `None` when only at the end or never."""
        if self.log_tables == "every":
            return 1
        return int(self.log_tables) if self.log_tables.isdigit() else None

    @property
    def init_keywords(self) -> dict[str, Any]:
        """`init_kwargs` as a dict (empty when unset)."""
        return dict(self.init_kwargs) if isinstance(self.init_kwargs, dict) else {}

    @property
    def overrides(self) -> dict[str, Any]:
        """`config_overrides` as a dict (empty when unset)."""
        return dict(self.config_overrides) if isinstance(self.config_overrides, dict) else {}

    def updated(self, **changes: Any) -> SearchWandbConfig:
        """A copy with `changes` applied (validated again).

        Example:
            >>> SearchWandbConfig().updated(project="p").wandb_project
            'p'
        """
        known = {f.name for f in fields(self)} | {"project"}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown SearchWandbConfig option(s): {', '.join(unknown)}")
        return replace(self, **changes)


def _json_object(name: str, value: Any, example: str) -> Any:
    """A dict option given as a JSON string (the command line) parsed; dicts and None pass through."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} must be a JSON object: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name} must be a JSON object, e.g. '{example}'")
    return parsed


def _check_eval_metric(name: Any) -> str:
    """`eval_metric` in the evaluator's own spelling (`mrr@10`, `loss`), or a ValueError saying how to write it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"eval_metric must be a metric name such as 'mrr@10', got {name!r}")
    text = name.strip()
    for prefix in ("val/", "eval_val_", "val_", "eval_"):
        if text.startswith(prefix):
            raise ValueError(f"eval_metric={name!r}: give the metric without its {prefix!r} prefix, "
                             f"e.g. eval_metric={text[len(prefix):]!r} (it is logged as val/{text[len(prefix):]})")
    if text == "loss":
        return text
    from hf_search_wandb.core.metrics.measures import parse_metric

    try:
        return parse_metric(text).name
    except ValueError as err:
        theirs = st_metric(text)
        if theirs is not None:
            return theirs
        raise ValueError(f"eval_metric={name!r}: {err}") from None


#: sentence-transformers' key forms: `[{name}_]{score function}_{measure}@{k}` (`accuracy` is our `hit`)
_ST_METRIC = re.compile(r"^(?:.+_)?(?:cosine|dot|euclidean|manhattan)_(?P<metric>[a-z]+(?:@\d+)?)$")


def st_metric(text: str) -> str | None:
    """`text` (lower-cased) when it is a sentence-transformers metric key (`cosine_ndcg@10`,
    `scifact_dot_mrr@10`, `cosine_accuracy@1`), else None.

    Example:
        >>> st_metric("Cosine_NDCG@10"), st_metric("scifact_dot_accuracy@1"), st_metric("cosine_nope@1")
        ('cosine_ndcg@10', 'scifact_dot_accuracy@1', None)
    """
    from hf_search_wandb.core.metrics.measures import parse_metric

    lowered = text.strip().lower()
    match = _ST_METRIC.match(lowered)
    if match is None:
        return None
    metric = match["metric"].replace("accuracy@", "hit@")
    try:
        parse_metric(metric)
    except ValueError:
        return None
    return lowered
