"""`SearchWandbConfig`: every option of `SearchWandbCallback`, as a dataclass.

Readable by `transformers.HfArgumentParser`, so a training script can expose the options on its command
line next to `TrainingArguments`. Nothing here reads environment variables except `mode`, whose
documented fallback is wandb's own `WANDB_MODE`.
"""

from __future__ import annotations

import json
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import Any

MODEL_TYPES = ("bi-encoder", "cross-encoder", "colbert", "splade")
MODES = ("online", "offline", "disabled")
ARTIFACT_POLICIES = ("best", "end", "off")
TABLE_POLICIES = ("every", "end", "off")


@dataclass
class SearchWandbConfig:
    """Options of `SearchWandbCallback`. Every field has a default; `None` means "fill automatically".

    Example:
        >>> from hf_search_wandb.trainer.options import SearchWandbConfig
        >>> cfg = SearchWandbConfig(model_type="bi-encoder", dataset_name="scifact", log_tables="2")
        >>> cfg.tables_every, cfg.wandb_project
        (2, 'search-model-training')
        >>> SearchWandbConfig(model_artifact="sometimes")
        Traceback (most recent call last):
        ...
        ValueError: model_artifact must be one of ('best', 'end', 'off'), got 'sometimes'
    """

    # --- run set-up (wandb.init) ---
    wandb_project: str = field(
        default="search-model-training",
        metadata={"help": "wandb project (TrainingArguments already owns --project, trackio's)."},
    )
    name: str | None = field(
        default=None,
        metadata={"help": "Run name. Default: {model_type}-{base_model_short}-{dataset}-{YYYYMMDD-HHMM}."},
    )
    tags: list[str] | None = field(
        default=None,
        metadata={
            "help": "Run tags. Default: model type, 'fine-tuning', dataset, 'hard-negatives', amp dtype."
        },
    )
    notes: str | None = field(default=None, metadata={"help": "Run notes (free text)."})
    group: str | None = field(
        default=None, metadata={"help": "wandb run group (e.g. one per sweep or DDP job)."}
    )
    entity: str | None = field(default=None, metadata={"help": "wandb entity (user or team)."})
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
    model_artifact: str = field(
        default="best", metadata={"help": "Best-model artifact: best (on each new best) | end | off."}
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
            "help": "Call wandb.finish() at train end. Default: yes, unless the run was created by you."
        },
    )

    # `project=` is accepted as an alias of `wandb_project` in Python (not on the command line, where
    # `TrainingArguments.project` already takes `--project`).
    project: InitVar[str | None] = None

    def __post_init__(self, project: str | None) -> None:
        if project is not None:
            self.wandb_project = project
        if not self.wandb_project:
            raise ValueError("wandb_project must be a non-empty string")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, got {self.mode!r}")
        if self.model_type is not None and self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.model_artifact not in ARTIFACT_POLICIES:
            raise ValueError(
                f"model_artifact must be one of {ARTIFACT_POLICIES}, got {self.model_artifact!r}"
            )
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
        if isinstance(self.config_overrides, str):
            try:
                parsed = json.loads(self.config_overrides)
            except json.JSONDecodeError as err:
                raise ValueError(f"config_overrides must be a JSON object: {err}") from None
            if not isinstance(parsed, dict):
                raise ValueError("config_overrides must be a JSON object, e.g. '{\"seed\": 1}'")
            self.config_overrides = parsed
        if self.tags is not None:
            self.tags = [str(t) for t in self.tags]
        if not self.eval_metric:
            raise ValueError("eval_metric must be a metric name such as 'mrr@10'")

    @property
    def tables_every(self) -> int | None:
        """Log tables every this many evaluations; `None` when only at the end or never."""
        if self.log_tables == "every":
            return 1
        return int(self.log_tables) if self.log_tables.isdigit() else None

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
