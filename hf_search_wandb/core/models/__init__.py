"""Models: one adapter per model family behind the encoder protocols (`as_encoder` picks it), and save/load."""

from __future__ import annotations

from hf_search_wandb.core.exports import lazy_exports

# public name -> the module that defines it; imported on first use
_EXPORTS = {
    "Encoder": "hf_search_wandb.core.models.base",
    "TokenEncoder": "hf_search_wandb.core.models.base",
    "Tokenized": "hf_search_wandb.core.models.base",
    "HFEncoder": "hf_search_wandb.core.models.dense",
    "SentenceTransformerEncoder": "hf_search_wandb.core.models.dense",
    "SparseEncoderAdapter": "hf_search_wandb.core.models.sparse",
    "SparseRows": "hf_search_wandb.core.models.sparse",
    "PairScorer": "hf_search_wandb.core.models.cross_encoder",
    "as_encoder": "hf_search_wandb.core.models.factory",
    "load_model": "hf_search_wandb.core.models.save_load",
    "model_pooling": "hf_search_wandb.core.models.pooling_config",
    "save_model": "hf_search_wandb.core.models.save_load",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
