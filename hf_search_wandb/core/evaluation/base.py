"""`SearchEvaluator`: what every evaluator family shares, written once.

A family (dense or sparse retrieval, reranking, ...) is a subclass that says how to adapt a model (`adapt`)
and what one evaluation pass does with the adapted model (`run`); everything else lives here: validation of
the options, the one input check (`core.data.inputs`: one id normalisation, integer grades, real texts),
`from_beir` / `from_datasets`, the query sample, `__call__` (sentence-transformers' evaluator entry point,
the `{name}_{metric}` keys, the CSV, the model card), `evaluate` (eval mode, `inference_mode`, timings,
`last_result`), the precision rule and the distributed rule. The batch loop is `batching.run_batches`.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from hf_search_wandb.core import compat
from hf_search_wandb.core.data import inputs
from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.data.hub_layouts import is_hf_dataset, qrels_from_dataset, to_plain_data
from hf_search_wandb.core.distributed import get_rank, get_world_size, is_distributed
from hf_search_wandb.core.evaluation.precision import (
    LIVE,
    Precision,
    check_precision,
    evaluation_dtype,
    precision_name,
    suspended_autocast,
)
from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.core.metrics.measures import parse_metric, parse_metrics
from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS

if TYPE_CHECKING:
    from sentence_transformers.base.evaluation import BaseEvaluator as SentenceEvaluator
else:  # BaseEvaluator in sentence-transformers 6, SentenceEvaluator before (core/compat.py)
    SentenceEvaluator = compat.sentence_evaluator_base()

logger = logging.getLogger(__name__)


@dataclass
class EvaluationPass:
    """One call of `evaluate`: which shard of the work this process does, where the seconds went, the
    precision the forward pass ran in (set by `SearchEvaluator.precision_dtype`), and the dtype of the caller's
    autocast, switched off for the evaluation (`precision.suspended_autocast`) and followed by `auto`."""

    rank: int = 0
    world: int = 1
    shard: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"
    enclosing: torch.dtype | None = None


def evaluates_distributed(flag: bool | None, model: Any) -> bool:
    """Whether an evaluator shards its work over the process group: not when told not to, not outside one,
    and not under sentence-transformers >= 6.2, which calls evaluators on rank 0 only (other ranks wait in its
    own inference server, so collectives would hang: evaluate locally; the trainer broadcasts)."""
    if flag is False or not is_distributed():
        return False
    return getattr(model, "_distributed_inference", None) is None


def append_metrics_csv(path: Path, epoch: float, steps: int, metrics: dict[str, float]) -> None:
    """Append one evaluation to `path` (sentence-transformers' evaluator CSV: epoch, steps, metrics)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["epoch", "steps", *metrics])
        writer.writerow([epoch, steps, *metrics.values()])


def metrics_csv_path(output_path: str | os.PathLike[str], prefix: str, name: str) -> Path:
    """`{prefix}_{name}.csv` directly inside `output_path`, whatever the evaluator's name holds: path separators
    become `_` and leading dots go, so a name cannot write outside the folder.

    Example:
        >>> metrics_csv_path("out", "retrieval_evaluation", "../../etc/x").as_posix()
        'out/retrieval_evaluation__.._etc_x.csv'
        >>> metrics_csv_path("out", "retrieval_evaluation", "val").as_posix()
        'out/retrieval_evaluation_val.csv'
    """
    stem = re.sub(r"[\\/\x00]+", "_", name or "results").lstrip(".") or "results"
    return Path(output_path) / f"{prefix}_{stem}.csv"


def examples(ids: Sequence[str], n: int = 3) -> str:
    """A short list of ids for an error message: `['a', 'b', 'c', ...]`."""
    shown = ", ".join(repr(i) for i in list(ids)[:n])
    return f"[{shown}{', ...' if len(ids) > n else ''}]"


class SearchEvaluator(SentenceEvaluator):
    """The base of every evaluator family (see the module docstring); not used on its own.

    Args:
        name: key prefix: metrics come back as `{name}_{metric}` (e.g. `val_mrr@10`).
        metrics: metric names (`core.metrics.measures.parse_metric`); the primary one is added if missing.
        depth: documents ranked per query; every metric's k must be <= depth.
        primary_metric: the metric the trainer reports as primary (`{name}_` prepended).
        precision: `"auto"`, `"fp32"`, `"bf16"` or `"fp16"` (`core.evaluation.precision`).
        batch_tokens: padded tokens per forward batch (None: the family's default for the device).
        max_batch_size: texts (or pairs) per batch at most.
        max_queries: evaluate at most this many queries, sampled with `seed`.
        seed: seed of the samples.
        distributed: shard the work over the `torch.distributed` ranks (None: when a process group with
            several processes runs; every rank must then call the evaluator).
        show_progress_bar: a tqdm bar per model pass, on rank 0 only.
    """

    #: the CSV `__call__` appends to: `{csv_prefix}_{name}.csv` in its `output_path`
    csv_prefix: ClassVar[str] = "evaluation"

    def __init__(
        self,
        *,
        name: str,
        metrics: Sequence[str],
        depth: int,
        primary_metric: str,
        precision: Precision,
        batch_tokens: int | None,
        max_batch_size: int,
        max_queries: int | None,
        seed: int,
        distributed: bool | None,
        show_progress_bar: bool,
    ) -> None:
        super().__init__()
        check_precision(precision)
        for label, value in (("batch_tokens", batch_tokens), ("max_queries", max_queries)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{label} must be a positive integer or None, got {value!r}.")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive integer, got {max_batch_size!r}.")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1 (documents ranked per query), got {depth!r}.")
        if not isinstance(name, str):
            raise TypeError(f"name must be a string (the key prefix), got {type(name).__name__}.")
        primary = parse_metric(primary_metric).name
        names = [parse_metric(m).name for m in inputs.string_list(metrics, "metrics")]
        if metrics is DEFAULT_METRICS:  # the defaults fit the depth; metrics the user names must fit as given
            names = self._fit_to_depth(names, depth)
        if primary not in names:
            names.append(primary)
        parse_metrics(names, depth)  # every k <= depth
        self.metrics, self.depth, self.name = names, depth, name
        self.primary_metric = f"{name}_{primary}" if name else primary
        self.greater_is_better = True
        self.precision, self.batch_tokens, self.max_batch_size = precision, batch_tokens, max_batch_size
        self.max_queries, self.seed = max_queries, seed
        self.distributed, self.show_progress_bar = distributed, show_progress_bar
        self.dataset_name: str | None = None  # recorded in the run config (set by `from_beir`)
        self.last_result: RetrievalResult | None = None

    def _fit_to_depth(self, names: list[str], depth: int) -> list[str]:
        """The default metrics with every cut-off above `depth` lowered to it (`recall@100` -> `recall@20` over
        a top-20 first stage), said in one line."""
        fitted: list[str] = []
        for name in names:
            metric = parse_metric(name)
            fitted.append(f"{metric.measure}@{depth}" if metric.k is not None and metric.k > depth else name)
        changed = [f"{old} -> {new}" for old, new in zip(names, fitted, strict=True) if old != new]
        if changed:
            logger.warning(
                "%s: depth is %d, so the default metrics are cut at %d (%s); pass metrics=[...] to choose them.",
                type(self).__name__, depth, depth, ", ".join(changed),
            )  # fmt: skip
        return list(dict.fromkeys(fitted))

    # ------------------------------------------------------------------ data
    @classmethod
    def from_beir(cls, source: str | os.PathLike[str], split: str = "test", **kwargs: Any) -> Any:
        """Build from a BEIR folder (or Hub dataset name) via `core.data.beir.load_beir`; `kwargs` go to
        `__init__`."""
        data = load_beir(Path(source), split)
        family: Callable[..., Any] = cls  # a family's __init__ takes (queries, corpus, qrels, ...)
        evaluator = family(data.queries, data.corpus, data.qrels, **kwargs)
        evaluator.dataset_name = data.name
        return evaluator

    @classmethod
    def from_datasets(cls, corpus: Any, queries: Any, qrels: Any, split: str = "test", **kwargs: Any) -> Any:
        """Build from `datasets` objects as the Hub holds them (BEIR or MTEB layout); `kwargs` go to `__init__`.

        Args:
            corpus: `load_dataset(name, "corpus")` (a `DatasetDict` with one split, or that split).
            queries: `load_dataset(name, "queries")`.
            qrels: the qrels `DatasetDict` (`load_dataset("mteb/...", "default")` or
                `load_dataset("BeIR/...-qrels")`) or one split of it.
            split: the qrels split to evaluate on when `qrels` holds several.
        """
        qrels = qrels_from_dataset(qrels, split) if is_hf_dataset(qrels) else qrels
        family: Callable[..., Any] = cls
        return family(queries, corpus, qrels, **kwargs)

    def checked_inputs(
        self, queries: Any, corpus: Any, qrels: Any
    ) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
        """The one input check of every family: `datasets` objects become dicts; the three must be
        non-empty; one id normalisation (`1` and `"1"` are one id, both at once are refused), real texts and
        integer grades (`core.data.inputs`)."""
        queries, corpus, qrels = to_plain_data(queries, corpus, qrels)
        if not corpus:
            raise ValueError("The corpus is empty: give {doc_id: text} with at least one document.")
        if not queries:
            raise ValueError("There are no queries: give {query_id: text} with at least one query.")
        if not qrels:
            raise ValueError("The qrels are empty: give {query_id: {doc_id: relevance}}.")
        return inputs.texts(queries, "queries"), inputs.texts(corpus, "corpus"), inputs.qrels(qrels)

    def evaluable_queries(
        self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], rng: np.random.Generator
    ) -> list[str]:
        """The qrels' queries that have a text and a relevant document (grade > 0), sampled down to
        `max_queries` with `rng`; an error when there are none."""
        evaluable = [q for q, docs in qrels.items() if q in queries and any(g > 0 for g in docs.values())]
        if not evaluable:
            raise ValueError(
                "No query has a relevant document (grade > 0) in the qrels and its text in `queries`: nothing "
                "to evaluate. Check that the query ids match."
            )
        if self.max_queries is not None and len(evaluable) > self.max_queries:
            chosen = set(rng.choice(len(evaluable), self.max_queries, replace=False).tolist())
            evaluable = [q for i, q in enumerate(evaluable) if i in chosen]
        return evaluable

    # ---------------------------------------------------------- sentence-transformers entry point
    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        """Evaluate `model`; returns `{f"{name}_{metric}": value}` (the trainer adds its `eval_` prefix)."""
        result = self.evaluate(model)
        prefix = f"{self.name}_" if self.name else ""
        metrics = {f"{prefix}{key}": value for key, value in result.metrics.items()}
        if output_path is not None and get_rank() == 0:
            append_metrics_csv(self.csv_path(output_path), epoch, steps, result.metrics)
        if hasattr(model, "model_card_data"):
            with contextlib.suppress(Exception):  # model-card bookkeeping must never fail an evaluation
                shown = {f"{prefix}{k}": v for k, v in self.model_card_metrics(result).items()}
                self.store_metrics_in_model_card_data(model, shown, epoch, steps)  # type: ignore[arg-type]
        return metrics

    def csv_path(self, output_path: str | os.PathLike[str]) -> Path:
        """The CSV `__call__` appends to (`metrics_csv_path`)."""
        return metrics_csv_path(output_path, self.csv_prefix, self.name)

    @property
    def search(self) -> str:
        """How the ranking is made, for the run's config (`eval_search`): every query against the whole
        corpus, exactly (a family that re-scores a first stage says so)."""
        return "exact"

    def model_card_metrics(self, result: RetrievalResult) -> dict[str, float]:
        """The unprefixed metrics a model card records (all of them, unless a family says otherwise)."""
        return dict(result.metrics)

    # ------------------------------------------------------------------ evaluation
    @abstractmethod
    def adapt(self, model: Any) -> Any:
        """The family's adapter of `model` (its protocol in `core.models`)."""

    @abstractmethod
    def run(self, adapter: Any, step: EvaluationPass) -> RetrievalResult:
        """One evaluation of the adapted model, in eval mode under `inference_mode`."""

    def evaluate(self, model: Any) -> RetrievalResult:
        """Adapt `model`, run one evaluation pass and keep the result as `self.last_result`; a collapsed
        model (every query's top-10 scores tied, `results.tie_warning`) is said once in the log and kept as
        `result.tie_warning`."""
        start = time.perf_counter()
        adapter = self.adapt(model)
        shard = evaluates_distributed(self.distributed, model) and evaluates_distributed(
            self.distributed, getattr(adapter, "model", None)
        )
        step = EvaluationPass(*((get_rank(), get_world_size()) if shard else (0, 1)), shard=shard)
        module = getattr(adapter, "module", None)
        was_training = bool(module.training) if isinstance(module, torch.nn.Module) else False
        try:
            if isinstance(module, torch.nn.Module):
                module.eval()
            device = getattr(adapter, "device", None)
            device = device if isinstance(device, torch.device) else torch.device("cpu")
            with torch.inference_mode(), suspended_autocast(device) as step.enclosing:
                result = self.run(adapter, step)
        finally:
            if isinstance(module, torch.nn.Module):
                module.train(was_training)
        step.timings["total_s"] = time.perf_counter() - start
        result.timings, result.precision = step.timings, step.precision
        if result.check_ties(self.name or type(self).__name__) and get_rank() == 0:
            logger.warning("%s", result.tie_warning)  # once per evaluation, from the top-k scores already kept
        self.last_result = result
        return result

    def precision_dtype(
        self,
        weights_dtype: torch.dtype,
        device: torch.device,
        family: str = "dense",
        step: EvaluationPass | None = None,
    ) -> torch.dtype | None:
        """The autocast dtype of this evaluation of a `family` model (`core.evaluation.precision`: the one
        rule, `AUTO_BF16` per family); the precision it means is kept on `step` (then `result.precision`)."""
        enclosing = step.enclosing if step is not None else LIVE
        dtype = evaluation_dtype(self.precision, weights_dtype, device, family, enclosing)
        if step is not None:
            step.precision = precision_name(dtype, weights_dtype)
        return dtype

    def progress_label(self, noun: str) -> str | None:
        """The progress bar's label for a pass over `noun`, or None when bars are off."""
        return f"{self.name}: {noun}" if self.show_progress_bar else None


__all__ = ["EvaluationPass", "SearchEvaluator", "append_metrics_csv", "evaluates_distributed", "metrics_csv_path"]
