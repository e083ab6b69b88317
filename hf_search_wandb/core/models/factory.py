"""`as_encoder`: which adapter a model gets, by family (dense, sparse), with the training wrappers removed.

Imports run one way: this module -> the family adapters (`core.models.dense`, `core.models.sparse`) ->
`core.models.base`. Which pooling a plain transformers model gets is `core.models.pooling_config`'s rule.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from hf_search_wandb.core.models.base import Encoder, TokenEncoder, unwrap_model
from hf_search_wandb.core.models.dense import HFEncoder, SentenceTransformerEncoder, load_tokenizer
from hf_search_wandb.core.models.multi_vector import MultiVectorEncoderAdapter, is_multi_vector
from hf_search_wandb.core.models.pooling_config import (
    choose_pooling,
    declared_pooling,
    model_reference,
    say_once,
)
from hf_search_wandb.core.models.sparse import SparseEncoderAdapter, is_sparse_encoder


def as_encoder(
    model: Any,
    tokenizer: Any = None,
    *,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
) -> Encoder | TokenEncoder:
    """Adapt a model to the evaluator.

    * an `Encoder` / `TokenEncoder` is returned as is;
    * a `SentenceTransformer` -> `SentenceTransformerEncoder` (its own tokenizer, prompts, pooling; a `pooling` /
      `normalize` given that disagrees with its modules is a warning and is not applied);
    * a sentence-transformers `SparseEncoder` -> `core.models.sparse.SparseEncoderAdapter` (sparse evaluation);
    * a sentence-transformers `MultiVectorEncoder` -> `core.models.multi_vector.MultiVectorEncoderAdapter`
      (late interaction: MaxSim over token vectors);
    * a transformers `PreTrainedModel` (+ `tokenizer`) -> `HFEncoder`;
    * a custom `nn.Module` holding a `PreTrainedModel` as `encoder`, `model` or `backbone` (and optionally
      a `pooling` string attribute, a `normalize` bool and a `tokenizer`) -> `HFEncoder` on that attribute;
    * DDP / DataParallel / accelerate / compiled wrappers are removed first.

    For the last two, `pooling` / `normalize` None (the default) take what the model says
    (`core.models.pooling_config.declared_pooling`: the module's attributes, sentence-transformers' Pooling
    config and Normalize module beside the weights, the model's config), else mean and no normalisation. Given
    ones are used, with a warning when the model says otherwise. `HFEncoder.pooling_source` says where each came
    from.

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
    if is_multi_vector(model):
        return MultiVectorEncoderAdapter(model, max_length=max_length)
    try:
        from sentence_transformers import SentenceTransformer

        if isinstance(model, SentenceTransformer):
            st_encoder = SentenceTransformerEncoder(model, max_length=max_length)
            _check_own_pooling(st_encoder, pooling, normalize)
            return st_encoder
    except ImportError:  # pragma: no cover - sentence-transformers is a dependency
        pass
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return _pooled(model, None, tokenizer, pooling, normalize, max_length)
    if isinstance(model, torch.nn.Module):
        for attr in ("encoder", "model", "backbone"):
            inner = getattr(model, attr, None)
            if isinstance(inner, PreTrainedModel):
                tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
                return _pooled(inner, model, tok, pooling, normalize, max_length)
    if isinstance(model, Encoder):
        return model
    raise TypeError(
        f"Cannot evaluate a {type(model).__name__}: pass a SentenceTransformer, a transformers PreTrainedModel "
        "with its tokenizer (as_encoder(model, tokenizer, pooling='mean'|'cls'|'max')), a module holding one as "
        "`.encoder`/`.model`/`.backbone`, or an object with encode_texts(texts, kind) -> (n, dim) embeddings."
    )


def _pooled(
    model: Any,
    owner: Any,
    tokenizer: Any,
    pooling: str | None,
    normalize: bool | None,
    max_length: int | None,
) -> HFEncoder:
    """`HFEncoder` on a transformers model (held by `owner`, a custom module) with the pooling the rule picks."""
    ref, _ = model_reference(model)
    name = type(owner).__name__ if owner is not None else (ref or type(model).__name__)
    choice = choose_pooling(declared_pooling(model, owner=owner), pooling, normalize, name=name)
    encoder = HFEncoder(
        model,
        tokenizer if tokenizer is not None else load_tokenizer(model),
        pooling=choice.pooling,
        normalize=choice.normalize,
        max_length=max_length,
        owner=owner,
    )
    encoder.pooling_source, encoder.normalize_source = choice.source, choice.normalize_source
    say_once(choice.messages)
    return encoder


def _check_own_pooling(
    encoder: SentenceTransformerEncoder, pooling: str | None, normalize: bool | None
) -> None:
    """A SentenceTransformer pools with its own modules: a given pooling / normalize that disagrees is a warning."""
    own_pooling, own_normalize = encoder.pooling, encoder.normalize
    messages = []
    if pooling is not None and own_pooling is not None and pooling != own_pooling:
        messages.append((logging.WARNING, (
            f"pooling={pooling!r} was given but the SentenceTransformer pools with its own Pooling module "
            f"({own_pooling!r}), which is used; build it with Pooling(..., pooling_mode={pooling!r}) to evaluate that."
        )))  # fmt: skip
    if normalize is not None and normalize != own_normalize:
        messages.append((logging.WARNING, (
            f"normalize={normalize} was given but the SentenceTransformer {'has' if own_normalize else 'has no'} "
            "Normalize module, which decides; add or remove that module to change it."
        )))  # fmt: skip
    say_once(messages)
