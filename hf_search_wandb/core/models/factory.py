"""`as_encoder`: which adapter a model gets, by family (dense, sparse), with the training wrappers removed.

Imports run one way: this module -> the family adapters (`core.models.dense`, `core.models.sparse`) ->
`core.models.base`.
"""

from __future__ import annotations

from typing import Any

import torch

from hf_search_wandb.core.models.base import Encoder, TokenEncoder, unwrap_model
from hf_search_wandb.core.models.dense import HFEncoder, SentenceTransformerEncoder, load_tokenizer
from hf_search_wandb.core.models.sparse import SparseEncoderAdapter, is_sparse_encoder


def as_encoder(
    model: Any,
    tokenizer: Any = None,
    *,
    pooling: str = "mean",
    normalize: bool = False,
    max_length: int | None = None,
) -> Encoder | TokenEncoder:
    """Adapt a model to the evaluator.

    * an `Encoder` / `TokenEncoder` is returned as is;
    * a `SentenceTransformer` -> `SentenceTransformerEncoder` (its own tokenizer, prompts, pooling);
    * a sentence-transformers `SparseEncoder` -> `core.models.sparse.SparseEncoderAdapter` (sparse evaluation);
    * a transformers `PreTrainedModel` (+ `tokenizer`) -> `HFEncoder` with `pooling` / `normalize`;
    * a custom `nn.Module` holding a `PreTrainedModel` as `encoder`, `model` or `backbone` (and optionally
      a `pooling` string attribute, a `normalize` bool and a `tokenizer`) -> `HFEncoder` on that attribute;
    * DDP / DataParallel / accelerate / compiled wrappers are removed first.

    Raises:
        TypeError: nothing above matches (the message says what to pass), or no tokenizer can be found.
        NotImplementedError: FSDP / DeepSpeed-sharded models.

    Example:
        >>> from transformers import AutoModel, AutoTokenizer
        >>> from tests.helpers.tiny_models import make_tiny_bert
        >>> import tempfile
        >>> path = make_tiny_bert(tempfile.mkdtemp())
        >>> enc = as_encoder(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), pooling="max")
        >>> type(enc).__name__, enc.pooling
        ('HFEncoder', 'max')
    """
    if isinstance(model, TokenEncoder):
        return model
    if not isinstance(model, torch.nn.Module) and isinstance(model, Encoder):
        return model
    model = unwrap_model(model)
    if is_sparse_encoder(model):
        return SparseEncoderAdapter(model, max_length=max_length)
    try:
        from sentence_transformers import SentenceTransformer

        if isinstance(model, SentenceTransformer):
            return SentenceTransformerEncoder(model, max_length=max_length)
    except ImportError:  # pragma: no cover - sentence-transformers is a dependency
        pass
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return HFEncoder(
            model,
            tokenizer if tokenizer is not None else load_tokenizer(model),
            pooling=pooling,
            normalize=normalize,
            max_length=max_length,
        )
    if isinstance(model, torch.nn.Module):
        for attr in ("encoder", "model", "backbone"):
            inner = getattr(model, attr, None)
            if isinstance(inner, PreTrainedModel):
                own_pooling = getattr(model, "pooling", None)
                own_normalize = getattr(model, "normalize", None)
                tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
                return HFEncoder(
                    inner,
                    tok if tok is not None else load_tokenizer(inner),
                    pooling=own_pooling if isinstance(own_pooling, str) else pooling,
                    normalize=own_normalize if isinstance(own_normalize, bool) else normalize,
                    max_length=max_length,
                    owner=model,
                )
    if isinstance(model, Encoder):
        return model
    raise TypeError(
        f"Cannot evaluate a {type(model).__name__}: pass a SentenceTransformer, a transformers PreTrainedModel "
        "with its tokenizer (as_encoder(model, tokenizer, pooling='mean'|'cls'|'max')), a module holding one as "
        "`.encoder`/`.model`/`.backbone`, or an object with encode_texts(texts, kind) -> (n, dim) embeddings."
    )
