"""Encoder adapters: one small protocol in front of SentenceTransformer and plain transformers models.

The evaluator needs two things from a model: turn texts into token ids ONCE (`tokenize`), then turn
padded token batches into embeddings on every evaluation (`forward`). `TokenEncoder` is that split;
`SentenceTransformerEncoder` and `HFEncoder` implement it. Anything else with an
`encode_texts(texts, kind)` method is an `Encoder` too (e.g. a keyword encoder in tests, an API client),
evaluated through that method alone.

`as_encoder(model, tokenizer)` picks the adapter: a `SentenceTransformer`, a transformers
`PreTrainedModel` (+ tokenizer, with mean/cls/max pooling), a custom `nn.Module` holding one under
`encoder`/`model`/`backbone`, or a DDP/accelerate-wrapped version of those.

Why over 400 lines: the adapters (the `Encoder` protocol, `TokenEncoder`, the SentenceTransformer and plain-
transformers encoders, `as_encoder`) share the tokenise-once cache, the batching and the pooling code; apart
they would export each other's private helpers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

Kind = Literal["query", "document"]
POOLING_MODES = ("mean", "cls", "max")
_TOKENIZE_CHUNK = 2048


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds texts. Optional attributes the evaluator reads: `similarity`
    (`"cosine"` or `"dot"`) and `device`."""

    def encode_texts(self, texts: Sequence[str], kind: Kind) -> torch.Tensor | np.ndarray:
        """Return a `(len(texts), dim)` embedding matrix for queries (`kind="query"`) or documents."""
        ...


@dataclass
class Tokenized:
    """Token ids of many texts, unpadded: each per-token column stored flat, with row offsets.

    Columns that are zero everywhere (e.g. BERT's `token_type_ids` for single texts) are not stored but
    re-created on the device. `extras` holds batch-level features the model needs (e.g. ST's `prompt_length`).
    """

    columns: dict[str, np.ndarray]
    zero_columns: tuple[str, ...]
    offsets: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def lengths(self) -> np.ndarray:
        """Number of tokens of each text."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def collate(
        self, indices: np.ndarray, padding_side: str = "right"
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Pad the texts at `indices` into `(batch, longest)` int32 arrays; returns (mask, columns)."""
        lengths = self.lengths[indices]
        width = int(lengths.max()) if lengths.size else 0
        positions = np.arange(width)
        if padding_side == "left":
            mask = positions[None, :] >= (width - lengths)[:, None]
        else:
            mask = positions[None, :] < lengths[:, None]
        starts, ends = self.offsets[indices], self.offsets[indices + 1]
        out: dict[str, np.ndarray] = {}
        for name, flat in self.columns.items():
            values = np.concatenate([flat[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])
            padded = np.zeros((len(indices), width), dtype=np.int32)
            padded[mask] = values
            out[name] = padded
        return mask, out


def tokenized_from_padded(batches: Sequence[dict[str, Any]]) -> Tokenized:
    """Strip the padding from tokenizer outputs (dicts of `(batch, length)` arrays with `attention_mask`)."""
    flat: dict[str, list[np.ndarray]] = {}
    lengths: list[np.ndarray] = []
    extras: dict[str, Any] = {}
    nonzero: set[str] = set()
    for batch in batches:
        mask = np.asarray(batch["attention_mask"]).astype(bool)
        lengths.append(mask.sum(axis=1))
        for name, value in batch.items():
            if name == "attention_mask":
                continue
            array = value.numpy() if isinstance(value, torch.Tensor) else value
            if isinstance(array, np.ndarray) and array.shape == mask.shape:
                kept = array[mask].astype(np.int32)
                flat.setdefault(name, []).append(kept)
                if kept.any():
                    nonzero.add(name)
            else:
                extras.setdefault(name, value)
    columns = {name: np.concatenate(parts) for name, parts in flat.items() if name in nonzero}
    zero = tuple(name for name in flat if name not in nonzero)
    offsets = np.zeros(sum(len(x) for x in lengths) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return Tokenized(columns=columns, zero_columns=zero, offsets=offsets, extras=extras)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's weights live (its first parameter's device; CPU for a module without any)."""
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """A module's floating weight dtype (float32 when it has no floating parameter)."""
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


class TokenEncoder(ABC):
    """A transformer-based encoder split into `tokenize` (once) and `forward` (every evaluation)."""

    #: the nn.Module whose train/eval mode the evaluator saves and restores
    module: torch.nn.Module
    #: `"cosine"` or `"dot"`
    similarity: str = "cosine"
    padding_side: str = "right"

    @property
    def device(self) -> torch.device:
        """Where the weights live (the first parameter's device)."""
        return module_device(self.module)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' floating dtype."""
        return module_dtype(self.module)

    @abstractmethod
    def cache_key(self, kind: Kind, prompt: str | None) -> Hashable:
        """Identifies the tokenisation (tokenizer, max length, prompt): equal keys mean equal token ids."""

    @abstractmethod
    def tokenize(self, texts: Sequence[str], kind: Kind, prompt: str | None = None) -> Tokenized:
        """Token ids of `texts`, unpadded."""

    @abstractmethod
    def forward(self, features: dict[str, Any], kind: Kind) -> torch.Tensor:
        """Embeddings `(batch, dim)` of a padded batch (`input_ids`, `attention_mask`, ... on the device)."""

    def default_prompt(self, kind: Kind) -> str | None:
        """The prompt the model prepends to queries / documents by itself (None: none)."""
        return None

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], kind: Kind) -> torch.Tensor:
        """Tokenise and embed `texts` in batches of 64 (simple path; the evaluator has a faster one)."""
        tokens = self.tokenize(texts, kind, self.default_prompt(kind))
        out = []
        for start in range(0, len(texts), 64):
            indices = np.arange(start, min(start + 64, len(texts)))
            out.append(
                self.forward(features_to_device(tokens, indices, self.device, self.padding_side), kind)
            )
        return torch.cat(out) if out else torch.empty(0)


def features_to_device(
    tokens: Tokenized, indices: np.ndarray, device: torch.device, padding_side: str = "right"
) -> dict[str, Any]:
    """Collate `indices` and move the batch to `device` (pinned, non-blocking on CUDA)."""
    mask, columns = tokens.collate(indices, padding_side)
    cuda = device.type == "cuda"

    def move(array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if cuda:
            tensor = tensor.pin_memory()
        return tensor.to(device, non_blocking=cuda).long()

    features: dict[str, Any] = {name: move(array) for name, array in columns.items()}
    attention = move(mask.astype(np.int32))
    features["attention_mask"] = attention
    for name in tokens.zero_columns:
        features[name] = torch.zeros_like(attention)
    features.update(tokens.extras)
    return features


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
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            chunk = texts[start : start + _TOKENIZE_CHUNK]
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
        pooling: `"mean"` (over non-padding tokens), `"cls"` (first token) or `"max"`.
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
                    texts[start : start + _TOKENIZE_CHUNK],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="np",
                )
            )
            for start in range(0, len(texts), _TOKENIZE_CHUNK)
        ]
        return tokenized_from_padded(batches)

    def forward(self, features: dict[str, Any], kind: Kind) -> torch.Tensor:
        out = self.model(**features)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
        return pooled


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


def unwrap_model(model: Any) -> Any:
    """Strip DDP / DataParallel / accelerate / `torch.compile` wrappers; refuse sharded weights.

    Raises:
        NotImplementedError: FSDP- or DeepSpeed-wrapped models (each rank holds a shard of the weights).
    """
    if isinstance(model, torch.nn.Module):
        names = {type(m).__name__ for m in model.modules()} | {type(model).__name__}
        sharded = sorted(
            n for n in names if n.startswith("FSDP") or n in ("FullyShardedDataParallel", "DeepSpeedEngine")
        )
        if sharded:
            raise NotImplementedError(
                f"RetrievalEvaluator cannot evaluate a model with sharded weights ({', '.join(sharded)}): under "
                "FSDP or DeepSpeed ZeRO-3 each rank holds only part of every layer. Train with DDP "
                "(accelerate's MULTI_GPU), or evaluate a consolidated copy of the model "
                "(e.g. trainer.save_model() then load it) on each rank."
            )
        try:
            from accelerate.utils import extract_model_from_parallel

            model = extract_model_from_parallel(model)
        except ImportError:  # pragma: no cover - accelerate is a dependency
            pass
        while isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
    return model


def _load_tokenizer(model: torch.nn.Module) -> Any:
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
    * a sentence-transformers `SparseEncoder` -> `sparse_encoding.SparseEncoderAdapter` (sparse evaluation);
    * a transformers `PreTrainedModel` (+ `tokenizer`) -> `HFEncoder` with `pooling` / `normalize`;
    * a custom `nn.Module` holding a `PreTrainedModel` as `encoder`, `model` or `backbone` (and optionally
      a `pooling` string attribute, a `normalize` bool and a `tokenizer`) -> `HFEncoder` on that attribute;
    * DDP / DataParallel / accelerate / compiled wrappers are removed first.

    Raises:
        TypeError: nothing above matches (the message says what to pass), or no tokenizer can be found.
        NotImplementedError: FSDP / DeepSpeed-sharded models.

    Example:
        >>> from transformers import AutoModel, AutoTokenizer
        >>> from tests.tiny_models import make_tiny_bert
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
    from hf_search_wandb.core.models.sparse import SparseEncoderAdapter, is_sparse_encoder

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
            tokenizer if tokenizer is not None else _load_tokenizer(model),
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
                    tok if tok is not None else _load_tokenizer(inner),
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
