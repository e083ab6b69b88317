"""Pair scorers: one small adapter in front of cross-encoders, split like `TokenEncoder`.

The reranking evaluator needs two things from a cross-encoder: turn (query, document) pairs into token
ids ONCE (`tokenize`), then turn padded token batches into one relevance score per pair on every
evaluation (`forward`). `PairScorer` implements it for a sentence-transformers `CrossEncoder` (its own
`preprocess`, prompts, truncation and activation, so scores equal `CrossEncoder.predict`) and for a
transformers sequence-classification model with its tokenizer (e.g. under a plain `Trainer`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch

from hf_search_wandb.core import compat
from hf_search_wandb.core.models.base import (
    TOKENIZE_CHUNK,
    Tokenized,
    features_to_device,
    module_device,
    module_dtype,
    tokenized_from_padded,
    unwrap_model,
)


def is_cross_encoder(model: Any) -> bool:
    """True for a sentence-transformers `CrossEncoder` (any version), by class name."""
    return any(cls.__name__ == "CrossEncoder" for cls in type(model).__mro__)


class PairScorer:
    """Scores (query, document) pairs with a cross-encoder.

    Args:
        model: a sentence-transformers `CrossEncoder`, or a transformers model whose output has `logits`
            (`AutoModelForSequenceClassification`), wrapped by DDP/accelerate or not.
        tokenizer: the tokenizer of a transformers model (a `CrossEncoder` brings its own).
        max_length: truncation of the pair in tokens (None: the model's own limit).
        label: which logit is the relevance score when the model has several labels (default: the last,
            the "relevant" class of a binary classifier). A single-label model's logit is used as is.
        activation: applied to the logits (default: a `CrossEncoder`'s own `activation_fn`, e.g. sigmoid,
            so scores equal `CrossEncoder.predict`; none for a transformers model). Monotonic activations
            never change a ranking; they change the score histograms.

    Example:
        >>> from sentence_transformers.cross_encoder import CrossEncoder
        >>> scorer = PairScorer(CrossEncoder("sentence-transformers/all-MiniLM-L6-v2", num_labels=1))
        >>> scorer.score([("cell growth", "cell growth in mice"), ("sleep", "blood")]).shape
        torch.Size([2])
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        max_length: int | None = None,
        label: int | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        model = unwrap_model(model)
        self.model = model
        self.module: torch.nn.Module = model
        self.label = label
        self.max_length = max_length
        self.tokenizer: Any
        self.activation: Callable[[torch.Tensor], torch.Tensor] | None
        if is_cross_encoder(model) and hasattr(model, "preprocess"):
            self.kind = "cross-encoder"
            self.tokenizer = getattr(model, "tokenizer", None)
            self.activation = activation if activation is not None else getattr(model, "activation_fn", None)
        else:
            inner = getattr(model, "model", None) if is_cross_encoder(model) else None
            if inner is not None:  # sentence-transformers < 6: CrossEncoder.model is the HF model
                tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
                activation = activation if activation is not None else compat.cross_encoder_activation(model)
                self.max_length = max_length or getattr(model, "max_length", None)  # what its predict truncates to
                self.model = self.module = inner  # a CrossEncoder before sentence-transformers 4 is no Module
            if not isinstance(self.model, torch.nn.Module) or tokenizer is None or not callable(tokenizer):
                raise TypeError(
                    f"Cannot rerank with a {type(model).__name__}: pass a sentence-transformers CrossEncoder, or a "
                    "transformers sequence-classification model with its tokenizer "
                    "(AutoModelForSequenceClassification + tokenizer=AutoTokenizer.from_pretrained(...))."
                )
            self.kind = "transformers"
            self.tokenizer = tokenizer
            self.activation = activation
        self.padding_side = getattr(self.tokenizer, "padding_side", "right") or "right"

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return module_device(self.module)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' floating dtype."""
        return module_dtype(self.module)

    def _limit(self) -> int | None:
        if self.max_length:
            return self.max_length
        if self.kind == "cross-encoder":
            return None  # the CrossEncoder's own max_seq_length, applied by its preprocess
        limit = getattr(self.tokenizer, "model_max_length", None)
        positions = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        limits = [v for v in (limit, positions) if isinstance(v, int) and 0 < v < 100_000]
        return min(limits) if limits else 512

    def cache_key(self, prompt: str | None = None) -> Hashable:
        """Equal keys mean equal token ids: tokenizer, truncation and prompt."""
        tok = self.tokenizer
        own = getattr(self.model, "max_seq_length", None) if self.kind == "cross-encoder" else None
        return (self.kind, id(tok), getattr(tok, "name_or_path", None), self._limit(), own, prompt)

    def tokenize(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> Tokenized:
        """Token ids of every pair, unpadded."""
        pairs = [(str(q), str(d)) for q, d in pairs]
        batches = []
        for start in range(0, len(pairs), TOKENIZE_CHUNK):
            chunk = pairs[start : start + TOKENIZE_CHUNK]
            if self.kind == "cross-encoder":
                kwargs: dict[str, Any] = {"prompt": prompt}
                if self.max_length:
                    kwargs["processing_kwargs"] = {
                        "text": {"max_length": self.max_length, "truncation": True}
                    }
                batches.append(self.model.preprocess([list(p) for p in chunk], **kwargs))
            else:
                queries = [f"{prompt}{q}" if prompt else q for q, _ in chunk]
                batches.append(
                    dict(
                        self.tokenizer(
                            queries, [d for _, d in chunk], padding=True, truncation="longest_first",
                            max_length=self._limit(), return_tensors="np",
                        )
                    )
                )  # fmt: skip
        return tokenized_from_padded(batches)

    def forward(self, features: dict[str, Any]) -> torch.Tensor:
        """One float32 score per pair of a padded batch (on the device)."""
        if self.kind == "cross-encoder":
            logits = self.model(features)["scores"]
        else:
            out = self.model(**{k: v for k, v in features.items() if isinstance(v, torch.Tensor)})
            logits = out.logits if hasattr(out, "logits") else out[0]
        logits = logits.float()
        if logits.ndim == 2 and logits.shape[1] > 1:
            logits = logits[:, -1 if self.label is None else self.label]
        elif logits.ndim == 2:
            logits = logits[:, 0]
        return self.activation(logits) if self.activation is not None else logits

    @torch.inference_mode()
    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> torch.Tensor:
        """Scores of `pairs` in order (simple path; the evaluator batches by tokens and caches the ids)."""
        tokens = self.tokenize(pairs)
        out = [
            self.forward(
                features_to_device(
                    tokens, np.arange(s, min(s + batch_size, len(pairs))), self.device, self.padding_side
                )
            )
            for s in range(0, len(pairs), batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0)
