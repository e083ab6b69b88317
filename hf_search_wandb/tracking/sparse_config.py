"""What a SPLADE run adds to the run config, and the document-length histogram of a sparse evaluation.

`splade_config` reads a sentence-transformers `SparseEncoder` and its `SpladeLoss`: the pooling strategy and
activation of `SpladePooling`, the vocabulary size, `max_active_dims`, the base loss and the regulariser
weights (the MAXIMUM weights: sentence-transformers' `SpladeRegularizerWeightSchedulerCallback` sets the
loss's weights to 0 when training begins and ramps them up; its schedule is recorded too).
`sparsity_histograms` turns a sparse result's per-text active dims into `wandb.Histogram`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from hf_search_wandb.tracking.wandb_api import require_wandb

#: history key of the document-length histogram (active dims per document)
DOC_LENGTH_HISTOGRAM = "document_active_dims"
#: history key of the query-length histogram (active dims per query)
QUERY_LENGTH_HISTOGRAM = "query_active_dims_distribution"


def _type_names(obj: Any) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


def _splade_pooling(model: Any) -> Any | None:
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return None
    return next((m for m in modules() if "SpladePooling" in _type_names(m)), None)


def splade_config(model: Any, loss: Any = None, callbacks: Iterable[Any] = ()) -> dict[str, Any]:
    """Run-config keys of a sparse model (empty for any other model).

    Args:
        model: the trained model (a `SparseEncoder`).
        loss: the trainer's loss (a `SpladeLoss` / `CachedSpladeLoss`, or a dict of them).
        callbacks: the trainer's callbacks (to find the regulariser-weight scheduler).

    Returns:
        `pooling_mode` (`max` / `sum`), `activation_function` (`relu` / `log1p_relu`), `vocab_size`,
        `max_active_dims`, and with a SpladeLoss: `splade_base_loss`, `document_regularizer_weight`,
        `query_regularizer_weight`, the regularisers and thresholds, `regularizer_weight_schedule` and
        `regularizer_warmup_ratio`.

    Example:
        >>> from sentence_transformers.sparse_encoder import SparseEncoder
        >>> from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
        >>> mlm = Transformer("sentence-transformers/all-MiniLM-L6-v2", transformer_task="fill-mask")
        >>> cfg = splade_config(SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu"))
        >>> cfg["pooling_mode"], cfg["activation_function"], cfg["vocab_size"]
        ('max', 'relu', 30522)
    """
    if "SparseEncoder" not in _type_names(model):
        return {}
    config: dict[str, Any] = {}
    pooling = _splade_pooling(model)
    if pooling is not None:
        config["pooling_mode"] = str(pooling.pooling_strategy)
        config["activation_function"] = str(pooling.activation_function)
    if pooling is not None:  # SPLADE: one dimension per vocabulary id (the pooling learns its size late)
        inner = getattr(getattr(model, "transformers_model", None), "config", None)
        own = getattr(pooling, "embedding_dimension", None) or getattr(pooling, "word_embedding_dimension", None)
        dimension = own or getattr(inner, "vocab_size", None)  # word_embedding_dimension: sentence-transformers 5
    else:
        getter = getattr(model, "get_embedding_dimension", None)
        dimension = getter() if callable(getter) else None
    config["vocab_size"] = int(dimension) if dimension else None
    config["max_active_dims"] = getattr(model, "max_active_dims", None)
    losses = list(loss.values()) if isinstance(loss, dict) else [loss]
    splade = next(
        (item for item in losses if item is not None and hasattr(item, "document_regularizer_weight")), None
    )
    if splade is None:
        return config
    schedule = next((cb for cb in callbacks if getattr(cb, "loss", None) is splade and
                     hasattr(cb, "max_document_regularizer_weight")), None)  # fmt: skip
    document_weight = splade.document_regularizer_weight
    query_weight = splade.query_regularizer_weight
    if schedule is not None:
        document_weight = schedule.max_document_regularizer_weight
        query_weight = schedule.max_query_regularizer_weight
        kind = getattr(schedule, "scheduler_type", None)
        config["regularizer_weight_schedule"] = str(getattr(kind, "value", kind))
        config["regularizer_warmup_ratio"] = float(schedule.warmup_ratio)
    config["splade_base_loss"] = type(splade.loss).__name__
    config["document_regularizer_weight"] = float(document_weight) if document_weight is not None else None
    config["query_regularizer_weight"] = float(query_weight) if query_weight is not None else None
    for side in ("document", "query"):
        regularizer = getattr(splade, f"{side}_regularizer", None)
        if regularizer is not None:
            config[f"{side}_regularizer"] = type(regularizer).__name__
            config[f"{side}_regularizer_threshold"] = getattr(regularizer, "threshold", None)
    return config


def sparsity_histograms(result: Any, num_bins: int = 64) -> dict[str, Any]:
    """`document_active_dims` (and the query lengths) as `wandb.Histogram`s; empty unless `result` comes from
    a sparse evaluation (it has `doc_active_dims`)."""
    if getattr(result, "doc_active_dims", None) is None:
        return {}
    return count_histograms(
        {DOC_LENGTH_HISTOGRAM: result.doc_active_dims, QUERY_LENGTH_HISTOGRAM: getattr(result, "query_active_dims", None)},
        num_bins,
    )


def count_histograms(counts: dict[str, Any], num_bins: int = 64) -> dict[str, Any]:
    """Per-text counts (active dims, scored tokens) as `wandb.Histogram`s, one bin per count up to `num_bins`;
    a key whose counts are None or empty is left out."""
    wandb = require_wandb()
    out: dict[str, Any] = {}
    for key, values in counts.items():
        values = np.asarray(values if values is not None else [], dtype=np.float64)
        if values.size:
            bins = max(1, min(num_bins, int(values.max() - values.min()) + 1))
            out[key] = wandb.Histogram(np_histogram=np.histogram(values, bins=bins))
    return out
