"""Data: the one input check, BEIR folders and Hub layouts, first-stage candidates, BM25, hard negatives."""

from __future__ import annotations

from hf_search_wandb.core.exports import lazy_exports

# public name -> the module that defines it; imported on first use
_EXPORTS = {
    "load_beir": "hf_search_wandb.core.data.beir",
    "load_corpus": "hf_search_wandb.core.data.beir",
    "load_qrels": "hf_search_wandb.core.data.beir",
    "load_queries": "hf_search_wandb.core.data.beir",
    "BeirData": "hf_search_wandb.core.data.records",
    "Qrels": "hf_search_wandb.core.data.inputs",
    "to_plain_data": "hf_search_wandb.core.data.hub_layouts",
    "as_candidates": "hf_search_wandb.core.data.candidates",
    "read_trec_run": "hf_search_wandb.core.data.candidates",
    "write_trec_run": "hf_search_wandb.core.data.candidates",
    "BM25Index": "hf_search_wandb.core.data.bm25",
    "HardNegatives": "hf_search_wandb.core.data.hard_negatives",
    "mine_bm25_negatives": "hf_search_wandb.core.data.hard_negatives",
    "mine_dense_negatives": "hf_search_wandb.core.data.hard_negatives",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
