"""What a multi-vector (ColBERT-style) run adds to the run config.

`multi_vector_config` reads a sentence-transformers `MultiVectorEncoder`: `model_type: multi-vector`, the token
vector dimension, the similarity (`maxsim` / `meanmaxsim`), the query and document lengths, the query expansion
(ColBERT's `[MASK]` padding) and the skiplist of `MultiVectorMask`. The per-evaluation figures (mean scored
tokens, index size) are metrics (`val/query_tokens`, `val/corpus_tokens`, `val/index_mb`), not config;
`token_histograms` turns an exact multi-vector result's per-text scored tokens into `wandb.Histogram`s (logged
with the tables, as the sparse family's active dims).
"""

from __future__ import annotations

from typing import Any

from hf_search_wandb.core.models.multi_vector import is_multi_vector, multi_vector_settings
from hf_search_wandb.tracking.sparse_config import count_histograms

#: histogram keys: scored token vectors per document / per query (the query key differs from the metric's name)
DOC_TOKENS_HISTOGRAM = "document_tokens"
QUERY_TOKENS_HISTOGRAM = "query_tokens_distribution"


def multi_vector_config(model: Any, model_type: str | None = None) -> dict[str, Any]:
    """Run-config keys of a multi-vector model (empty for any other model).

    Args:
        model: the trained model (a `MultiVectorEncoder`).
        model_type: the user's explicit `model_type` (kept); None records `"multi-vector"`.

    Returns:
        `model_type`, `token_dim`, `similarity`, `query_length`, `document_length` (None: the model's
        `max_seq_length`), `query_expansion` (`"fixed:32"`, `"min:32+attend"`, or None), `skiplist_words`,
        `skiplist_tasks`, `normalized_tokens`.

    Example:
        >>> import tempfile
        >>> from tests.helpers.tiny_models import make_tiny_multi_vector
        >>> model = make_tiny_multi_vector(tempfile.mkdtemp(), query_expansion={"strategy": "fixed", "length": 8})
        >>> cfg = multi_vector_config(model)
        >>> cfg["model_type"], cfg["token_dim"], cfg["similarity"], cfg["query_expansion"]
        ('multi-vector', 32, 'maxsim', 'fixed:8')
    """
    if not is_multi_vector(model):
        return {}
    settings = multi_vector_settings(model)
    expansion = settings["query_expansion"]
    described = None
    if expansion:
        described = f"{expansion['strategy']}:{expansion['length']}" + (
            "+attend" if expansion.get("attend") else ""
        )
        if expansion.get("token"):
            described += f" ({expansion['token']})"
    longest = settings["max_seq_length"]
    return {
        "model_type": model_type or "multi-vector",
        "token_dim": settings["token_dim"],
        "similarity": settings["similarity"],
        "query_length": settings["query_length"] or (expansion or {}).get("length") or longest,
        "document_length": settings["document_length"] or longest,
        "query_expansion": described,
        "skiplist_words": settings["skiplist_words"],
        "skiplist_tasks": settings["skiplist_tasks"],
        "normalized_tokens": settings["normalized"],
    }


def token_histograms(result: Any, num_bins: int = 64) -> dict[str, Any]:
    """`document_tokens` and `query_tokens_distribution` as `wandb.Histogram`s: how many token vectors each
    document and query is scored with (what the index size grows with); empty unless `result` comes from an
    exact multi-vector evaluation (it has `doc_tokens`)."""
    if getattr(result, "doc_tokens", None) is None:
        return {}
    return count_histograms({DOC_TOKENS_HISTOGRAM: result.doc_tokens, QUERY_TOKENS_HISTOGRAM: result.query_tokens}, num_bins)


__all__ = ["DOC_TOKENS_HISTOGRAM", "QUERY_TOKENS_HISTOGRAM", "multi_vector_config", "token_histograms"]
