"""The `MultiVectorEncoder` (ColBERT-style late interaction) adapter: one vector per scored token.

`MultiVectorEncoderAdapter` tokenises through the model's own `preprocess` with the task (`query` /
`document`), so the prompts, `query_length` / `document_length` and ColBERT query expansion are the model's;
it runs the model's own modules, so `MultiVectorMask` (expansion positions scored, skiplist tokens dropped,
`keep_only_token_ids`) and a token `Normalize` apply exactly as in `MultiVectorEncoder.encode_query` /
`encode_document`. What the evaluator caches per text is the token ids it stores for any model plus, for
expanded queries, which positions are expansion tokens and whether the encoder attends to them: the
expansion positions are padding positions in `preprocess`'s output, so they are kept as tokens here.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from hf_search_wandb.core.models.base import (
    TOKENIZE_CHUNK,
    Kind,
    Tokenized,
    features_to_device,
    tokenized_from_padded,
)
from hf_search_wandb.core.models.dense import SentenceTransformerEncoder

#: the column holding the encoder's own attention mask when it differs from "the token is kept" (expanded
#: queries with `attend=False`: the expansion tokens are scored but not attended to)
ATTEND_COLUMN = "encoder_attention_mask"
EXPANSION_COLUMN = "query_expansion_positions"


def is_multi_vector(model: Any) -> bool:
    """True for sentence-transformers' `MultiVectorEncoder` (and subclasses), without importing it."""
    return any(
        cls.__name__ == "MultiVectorEncoder" and cls.__module__.startswith("sentence_transformers")
        for cls in type(model).__mro__
    )


def _transformer(model: Any) -> Any | None:
    """The model's `Transformer` module (it holds the lengths and the query expansion), if any."""
    for module in getattr(model, "_modules", {}).values():
        if hasattr(module, "query_expansion") or hasattr(module, "document_length"):
            return module
    return None


def _mask_module(model: Any) -> Any | None:
    for module in getattr(model, "_modules", {}).values():
        if type(module).__name__ == "MultiVectorMask":
            return module
    return None


def multi_vector_settings(model: Any) -> dict[str, Any]:
    """What decides a multi-vector model's token vectors: `token_dim`, `similarity` (`maxsim` /
    `meanmaxsim`), `query_length`, `document_length`, `query_expansion` (the config dict or None),
    `skiplist_words`, `skiplist_tasks`, `normalized` (a token `Normalize` module follows)."""
    transformer = _transformer(model)
    mask = _mask_module(model)
    getter = getattr(model, "get_embedding_dimension", None)
    dim = getter() if callable(getter) else None
    expansion = getattr(transformer, "query_expansion", None)
    return {
        "token_dim": int(dim) if dim else None,
        "similarity": str(getattr(model, "similarity_fn_name", "maxsim")),
        "query_length": getattr(transformer, "query_length", None),
        "document_length": getattr(transformer, "document_length", None),
        "max_seq_length": getattr(model, "max_seq_length", None),
        "query_expansion": dict(expansion) if expansion else None,
        "skiplist_words": list(getattr(mask, "skiplist_words", None) or []),
        "skiplist_tasks": list(getattr(mask, "skiplist_tasks", None) or []),
        "normalized": any(type(m).__name__ == "Normalize" for m in getattr(model, "_modules", {}).values()),
    }


def tokenized_with_expansion(batches: Sequence[dict[str, Any]]) -> Tokenized:
    """Strip the padding of `preprocess` outputs, keeping query-expansion positions as tokens.

    A kept token is a real one (`attention_mask`) or an expansion one (`query_expansion_positions`); the
    encoder's own attention mask is stored beside the ids only where it differs from "kept" (expansion
    tokens the encoder does not attend to).
    """
    stripped = []
    for batch in batches:
        batch = dict(batch)
        attention = np.asarray(batch["attention_mask"]).astype(bool)
        expansion = batch.get(EXPANSION_COLUMN)
        if expansion is not None:
            expansion = np.asarray(expansion).astype(bool)
            batch[EXPANSION_COLUMN] = expansion.astype(np.int32)
            batch[ATTEND_COLUMN] = attention.astype(np.int32)
            batch["attention_mask"] = attention | expansion
        stripped.append(batch)
    tokens = tokenized_from_padded(stripped)
    attend = tokens.columns.get(ATTEND_COLUMN)
    if attend is not None and attend.all():  # attended everywhere: the kept-token mask says it
        del tokens.columns[ATTEND_COLUMN]
    return tokens


class MultiVectorEncoderAdapter(SentenceTransformerEncoder):
    """A sentence-transformers `MultiVectorEncoder`: per text, the vectors of its scored tokens.

    `forward_tokens` returns a batch's `(batch, tokens, dim)` token vectors and the `(batch, tokens)` scoring
    mask the model's `MultiVectorMask` wrote; `encode_texts` returns one `(scored tokens, dim)` tensor per text,
    equal to `MultiVectorEncoder.encode_query` / `encode_document`.

    Example:
        >>> from sentence_transformers import MultiVectorEncoder
        >>> from sentence_transformers.base.modules import Transformer
        >>> from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
        >>> from tests.helpers.tiny_models import make_tiny_bert
        >>> import tempfile
        >>> word = Transformer(str(make_tiny_bert(tempfile.mkdtemp())))
        >>> adapter = MultiVectorEncoderAdapter(MultiVectorEncoder(modules=[word, MultiVectorMask()], device="cpu"))
        >>> adapter.similarity, [tuple(v.shape) for v in adapter.encode_texts(["cell growth"], "query")]
        ('maxsim', [(4, 32)])
    """

    multi_vector = True

    def __init__(self, model: Any, max_length: int | None = None) -> None:
        self.model = model
        self.module = model
        self.max_length = max_length
        name = str(getattr(model, "similarity_fn_name", None) or "maxsim")
        if name not in ("maxsim", "meanmaxsim"):
            raise ValueError(
                f"The MultiVectorEncoder's similarity is {name!r}; RetrievalEvaluator scores 'maxsim' or "
                "'meanmaxsim' exactly. Set model.similarity_fn_name to one of them."
            )
        self.similarity = name
        tokenizer = getattr(model, "tokenizer", None)
        self.padding_side = getattr(tokenizer, "padding_side", "right") or "right"

    @property
    def token_dim(self) -> int | None:
        """The dimension of each token vector, when the model says."""
        getter = getattr(self.model, "get_embedding_dimension", None)
        value = getter() if callable(getter) else None
        return int(value) if value else None

    def cache_key(self, kind: Kind, prompt: str | None) -> Hashable:
        settings = multi_vector_settings(self.model)
        expansion = settings["query_expansion"] if kind == "query" else None
        length = settings["query_length"] if kind == "query" else settings["document_length"]
        frozen = tuple(sorted(expansion.items())) if expansion else None
        return ("multi-vector", super().cache_key(kind, prompt), length, frozen)

    def _tokenize(self, texts: list[str], kind: Kind, prompt: str | None) -> Tokenized:
        batches = [
            self.model.preprocess(texts[start : start + TOKENIZE_CHUNK], prompt=prompt or None, task=kind)
            for start in range(0, len(texts), TOKENIZE_CHUNK)
        ]
        return tokenized_with_expansion([b for b in batches if b])

    def forward_tokens(self, features: dict[str, Any], kind: Kind) -> tuple[torch.Tensor, torch.Tensor]:
        """`(token vectors (batch, tokens, dim), scoring mask (batch, tokens) bool)` of a padded batch."""
        features = dict(features)
        attend = features.pop(ATTEND_COLUMN, None)
        if attend is not None:
            features["attention_mask"] = attend
        if EXPANSION_COLUMN in features:
            features[EXPANSION_COLUMN] = features[EXPANSION_COLUMN].bool()
        out = self.model(features, task=kind)
        return out["token_embeddings"], out["attention_mask"].bool()

    def forward(self, features: dict[str, Any], kind: Kind) -> torch.Tensor:
        """The batch's `(batch, tokens, dim)` token vectors, unscored positions zeroed (see `forward_tokens`)."""
        vectors, mask = self.forward_tokens(features, kind)
        return vectors * mask.unsqueeze(-1).to(vectors.dtype)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], kind: Kind) -> list[torch.Tensor]:  # type: ignore[override]
        """One `(scored tokens, dim)` tensor per text (the simple path; the evaluator has a faster one)."""
        tokens = self.tokenize(texts, kind, self.default_prompt(kind))
        out: list[torch.Tensor] = []
        for start in range(0, len(texts), 64):
            indices = np.arange(start, min(start + 64, len(texts)))
            features = features_to_device(tokens, indices, self.device, self.padding_side)
            vectors, mask = self.forward_tokens(features, kind)
            out.extend(v[m] for v, m in zip(vectors, mask, strict=True))
        return out


__all__ = ["MultiVectorEncoderAdapter", "is_multi_vector", "multi_vector_settings"]
