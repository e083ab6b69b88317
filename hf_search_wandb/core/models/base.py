"""What every model adapter shares: the `Encoder` protocol, the tokenise-once `TokenEncoder` base, `Tokenized`.

The evaluator needs two things from a model: turn texts into token ids ONCE (`tokenize`), then turn padded
token batches into embeddings on every evaluation (`forward`). `TokenEncoder` is that split; the adapters of
each model family (`core.models.dense`, `core.models.sparse`) implement it, and `core.models.factory.as_encoder`
picks one. Anything else with an `encode_texts(texts, kind)` method is an `Encoder` too (e.g. a keyword encoder
in tests, an API client), evaluated through that method alone. `unwrap_model` strips the training wrappers
(DDP, accelerate, `torch.compile`) every adapter sees first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

Kind = Literal["query", "document"]
#: texts tokenised per tokenizer call (bounds the padded arrays of one call)
TOKENIZE_CHUNK = 2048


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
