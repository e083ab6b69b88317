"""Search: exact top-k over dense and sparse embeddings with one deterministic tie rule."""

from __future__ import annotations

from hf_search_wandb.core.exports import lazy_exports

# public name -> the module that defines it; imported on first use
_EXPORTS = {
    "SearchHits": "hf_search_wandb.core.search.dense",
    "search": "hf_search_wandb.core.search.dense",
    "sparse_search": "hf_search_wandb.core.search.sparse",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
