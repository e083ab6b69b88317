"""Evaluation: the evaluation base, the evaluators and their backends per model family, and results."""

from __future__ import annotations

from hf_search_wandb.core.exports import lazy_exports

# public name -> the module that defines it; imported on first use
_EXPORTS = {
    "EvaluationPass": "hf_search_wandb.core.evaluation.base",
    "SearchEvaluator": "hf_search_wandb.core.evaluation.base",
    "BACKENDS": "hf_search_wandb.core.evaluation.retrieval",
    "RetrievalEvaluator": "hf_search_wandb.core.evaluation.retrieval",
    "RerankingEvaluator": "hf_search_wandb.core.evaluation.reranking",
    "RerankingResult": "hf_search_wandb.core.evaluation.results",
    "RetrievalResult": "hf_search_wandb.core.evaluation.results",
    "SparseRetrievalResult": "hf_search_wandb.core.evaluation.results",
    "plan_batches": "hf_search_wandb.core.evaluation.batching",
    "run_batches": "hf_search_wandb.core.evaluation.batching",
    "Precision": "hf_search_wandb.core.evaluation.precision",
    "evaluation_dtype": "hf_search_wandb.core.evaluation.precision",
    "auto_precision": "hf_search_wandb.core.evaluation.precision",
    "native_bf16": "hf_search_wandb.core.evaluation.precision",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
