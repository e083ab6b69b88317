"""Dense adapters: `SentenceTransformerEncoder` and `HFEncoder` (a plain transformers model + pooling).

`SentenceTransformerEncoder` goes through the model's own modules (tokenizer, `max_seq_length`, prompts,
Router task, normalisation), so embeddings equal `model.encode_query` / `encode_document`; `HFEncoder`
tokenises with the model's tokenizer and pools the last hidden state as sentence-transformers' `Pooling` does
(`mean`, `cls`, `max`, `lasttoken`, `mean_sqrt_len_tokens`, `weightedmean`). Both are `TokenEncoder`s
(`core.models.base`); which pooling a plain model gets is `core.models.pooling_config`'s rule.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch

from hf_search_wandb.core.models.base import (
    TOKENIZE_CHUNK,
    Kind,
    TokenEncoder,
    Tokenized,
    tokenized_from_padded,
)
from hf_search_wandb.core.models.pooling_config import POOLING_MODES


class SentenceTransformerEncoder(TokenEncoder):
    """A `SentenceTransformer` through its own modules: its tokenizer, `max_seq_length`, prompts,
    Router task and normalisation, so embeddings equal `model.encode_query` / `encode_document`.

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> st = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
        >>> SentenceTransformerEncoder(st).encode_texts(["cell growth"], "query").shape
        torch.Size([1, 384])
    """

    def __init__(self, model: Any, max_length: int | None = None) -> None:
        self.model = model
        self.module = model
        self.max_length = max_length  # evaluation truncation; None: the model's own max_seq_length
        name = getattr(model, "similarity_fn_name", "cosine") or "cosine"
        name = str(getattr(name, "value", name))
        if name not in ("cosine", "dot"):
            raise ValueError(
                f"The model's similarity is {name!r}; RetrievalEvaluator ranks by 'cosine' or 'dot'. "
                "Pass similarity='cosine' or 'dot' to the evaluator to override it."
            )
        self.similarity = name
        tokenizer = getattr(model, "tokenizer", None)
        self.padding_side = getattr(tokenizer, "padding_side", "right") or "right"

    @property
    def pooling(self) -> str | None:
        """The model's Pooling mode (`"mean"`, `"cls"`, ...; modes joined by `+`), None without a Pooling module."""
        for module in self.model.modules():
            if type(module).__name__ != "Pooling":
                continue
            getter = getattr(module, "get_pooling_mode_str", None)
            mode = getter() if callable(getter) else getattr(module, "pooling_mode", None)
            return "+".join(mode) if isinstance(mode, (tuple, list)) else str(mode)
        return None

    @property
    def normalize(self) -> bool:
        """Whether the model ends with a `Normalize` module."""
        return any(type(module).__name__ == "Normalize" for module in self.model.modules())

    def default_prompt(self, kind: Kind) -> str | None:
        prompts = getattr(self.model, "prompts", None) or {}
        names = ("query",) if kind == "query" else ("document", "passage", "corpus")
        for name in names:
            if name in prompts:
                return prompts[name]
        default = getattr(self.model, "default_prompt_name", None)
        return prompts.get(default) if default is not None else None

    def cache_key(self, kind: Kind, prompt: str | None) -> Hashable:
        tokenizer = getattr(self.model, "tokenizer", None)
        return (
            "st",
            id(self.model),
            id(tokenizer),
            getattr(tokenizer, "name_or_path", None),
            len(tokenizer) if tokenizer is not None else None,
            self.max_length or self.model.max_seq_length,
            kind,
            prompt,
        )

    def tokenize(self, texts: Sequence[str], kind: Kind, prompt: str | None = None) -> Tokenized:
        texts = list(texts)
        trained_length = self.model.max_seq_length
        if self.max_length:
            self.model.max_seq_length = min(self.max_length, _position_limit(self.model) or self.max_length)
        try:
            return self._tokenize(texts, kind, prompt)
        finally:
            self.model.max_seq_length = trained_length

    def _tokenize(self, texts: list[str], kind: Kind, prompt: str | None) -> Tokenized:
        batches = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = texts[start : start + TOKENIZE_CHUNK]
            if hasattr(self.model, "preprocess"):
                try:
                    batches.append(self.model.preprocess(chunk, prompt=prompt, task=kind))
                except TypeError:
                    batches.append(self.model.preprocess(chunk, prompt=prompt))
            else:  # sentence-transformers < 5: tokenize() and the prompt prepended to the text
                chunk = [f"{prompt}{text}" for text in chunk] if prompt else chunk
                batches.append(self.model.tokenize(chunk))
        return tokenized_from_padded(batches)

    def forward(self, features: dict[str, Any], kind: Kind) -> torch.Tensor:
        try:
            out = self.model(features, task=kind)
        except TypeError:
            out = self.model(features)
        embeddings = out["sentence_embedding"]
        truncate_dim = getattr(self.model, "truncate_dim", None)
        return embeddings[:, :truncate_dim] if truncate_dim else embeddings


class HFEncoder(TokenEncoder):
    """A transformers model (`AutoModel`-like, returns `last_hidden_state`) + tokenizer + pooling.

    Args:
        model: a `PreTrainedModel` (or any module returning hidden states first).
        tokenizer: its tokenizer (fast or slow).
        pooling: `"mean"` (over non-padding tokens), `"cls"` (the first non-padding token), `"max"`,
            `"lasttoken"` (the last non-padding token), `"mean_sqrt_len_tokens"` (the sum over sqrt(length)) or
            `"weightedmean"` (position-weighted mean): as sentence-transformers' `Pooling` computes them.
        normalize: L2-normalise embeddings (similarity stays `"cosine"` either way unless `similarity` says).
        max_length: truncation length (default: the tokenizer's `model_max_length`, capped by the model's
            `max_position_embeddings`, else 512).
        similarity: `"cosine"` (default) or `"dot"`.
        owner: the module whose train/eval mode is saved and restored (default `model`).

    Example:
        >>> from transformers import AutoModel, AutoTokenizer
        >>> name = "sentence-transformers/all-MiniLM-L6-v2"
        >>> enc = HFEncoder(AutoModel.from_pretrained(name), AutoTokenizer.from_pretrained(name), pooling="cls")
        >>> enc.encode_texts(["cell growth", "tumor"], "document").shape
        torch.Size([2, 384])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int | None = None,
        similarity: str = "cosine",
        owner: torch.nn.Module | None = None,
    ) -> None:
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}.")
        if tokenizer is None or not callable(tokenizer):
            raise TypeError(
                "HFEncoder needs the model's tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...)."
            )
        self.model = model
        self.module = owner if owner is not None else model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        #: where `pooling` / `normalize` came from (`"given"`; `as_encoder` sets what the model said)
        self.pooling_source = self.normalize_source = "given"
        self.similarity = similarity
        self.padding_side = getattr(tokenizer, "padding_side", "right") or "right"
        self.max_length = max_length or _default_max_length(model, tokenizer)

    def cache_key(self, kind: Kind, prompt: str | None) -> Hashable:
        tok = self.tokenizer
        return ("hf", id(tok), getattr(tok, "name_or_path", None), len(tok), self.max_length, kind, prompt)

    def tokenize(self, texts: Sequence[str], kind: Kind, prompt: str | None = None) -> Tokenized:
        texts = [f"{prompt}{t}" for t in texts] if prompt else list(texts)
        batches = [
            dict(
                self.tokenizer(
                    texts[start : start + TOKENIZE_CHUNK],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="np",
                )
            )
            for start in range(0, len(texts), TOKENIZE_CHUNK)
        ]
        return tokenized_from_padded(batches)

    def forward(self, features: dict[str, Any], kind: Kind) -> torch.Tensor:
        out = self.model(**features)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        pooled = pool(hidden, features["attention_mask"], self.pooling)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
        return pooled


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One embedding per row of `hidden` (batch, tokens, dim) over its attended tokens, as sentence-transformers'
    `Pooling` computes `pooling` (left or right padding)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "cls":  # the first attended token (0 unless the batch is left-padded)
        first = attention_mask.to(torch.int32).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    if pooling == "lasttoken":
        width = attention_mask.shape[1]
        found, from_end = attention_mask.flip(1).max(dim=1)
        last = torch.where(found == 0, width - 1, width - 1 - from_end)
        return (hidden * mask)[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    if pooling == "weightedmean":  # weights 1, 2, ... from the first attended token
        start = attention_mask.to(torch.int32).argmax(dim=1, keepdim=True).unsqueeze(-1)
        positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device).view(1, -1, 1)
        weights = mask * (positions - start).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    total = (hidden * mask).sum(dim=1)
    count = mask.sum(dim=1).clamp(min=1)
    return total / (count.sqrt() if pooling == "mean_sqrt_len_tokens" else count)


def _default_max_length(model: torch.nn.Module, tokenizer: Any) -> int:
    limits = []
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 100_000:
        limits.append(model_max)
    positions = _position_limit(model)
    if positions is not None:
        limits.append(positions)
    return min(limits) if limits else 512


def _position_limit(model: torch.nn.Module) -> int | None:
    """The longest input the model can embed: the first `config.max_position_embeddings` among its modules
    (the model itself first), special tokens included; None when no module says."""
    for module in model.modules():
        limit = getattr(getattr(module, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0:
            return limit
    return None


def load_tokenizer(model: torch.nn.Module) -> Any:
    """The tokenizer saved beside a transformers model's weights (`config._name_or_path`).

    Raises:
        TypeError: the model names no path, or no tokenizer loads from it (the message says to pass one).
    """
    path = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(
        model, "name_or_path", None
    )
    if path:
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(path)
        except Exception as err:  # offline hub, no tokenizer files next to the weights
            raise TypeError(
                f"Could not load a tokenizer for {type(model).__name__} from {path!r} ({err}). "
                "Pass tokenizer=... (the one you train with)."
            ) from err
    raise TypeError(
        f"{type(model).__name__} has no tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...)."
    )
