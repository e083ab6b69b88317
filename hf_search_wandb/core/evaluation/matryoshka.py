"""Matryoshka evaluation: several embedding sizes scored from ONE encoding pass.

A Matryoshka model (trained with `MatryoshkaLoss`) keeps most of its quality in the first `dim` coordinates of
its embeddings. `RetrievalEvaluator(truncate_dims=[256, 128, 64])` encodes once, then ranks and scores the
first `dim` columns of the same embeddings for each size: the cost of a size is one search (milliseconds to
seconds), never another encoding (minutes).

Naming: the metric `ndcg@10` at 64 dimensions is `ndcg@10@dim64` (returned by the evaluator as
`val_ndcg@10@dim64`, logged as `val/ndcg@10@dim64`). The un-suffixed metrics stay those of the full embedding.
A suffix keeps every size of one metric next to each other in wandb's `val` section (sorted by name) and lets a
panel's regex (`ndcg@10`) pick all sizes at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["check_sizes", "dim_key", "normalizes", "slice_embeddings", "suffixed", "validate_dims"]


def dim_key(metric: str, dim: int) -> str:
    """`ndcg@10`, 64 -> `ndcg@10@dim64`.

    Example:
        >>> dim_key("ndcg@10", 64)
        'ndcg@10@dim64'
    """
    return f"{metric}@dim{dim}"


def suffixed(metrics: Mapping[str, float], dim: int) -> dict[str, float]:
    """Every metric of one size, with its `@dim{dim}` suffix."""
    return {dim_key(name, dim): value for name, value in metrics.items()}


def validate_dims(dims: Iterable[int] | None) -> list[int]:
    """The sizes as a sorted (largest first), de-duplicated list; a clear error for anything else.

    Example:
        >>> validate_dims([64, 256, 64])
        [256, 64]
    """
    if dims is None:
        return []
    if isinstance(dims, (int, str)):
        raise TypeError(f"truncate_dims takes a list of sizes, e.g. [256, 128, 64]; got {dims!r}.")
    out = set()
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"truncate_dims must hold positive integers, got {dim!r}.")
        out.add(dim)
    return sorted(out, reverse=True)


def normalizes(encoder: Any) -> bool:
    """Whether the model L2-normalises its embeddings itself (an ST `Normalize` module, `HFEncoder(normalize=True)`)."""
    if getattr(encoder, "normalize", False) is True:
        return True
    model = getattr(encoder, "model", None)
    if isinstance(model, torch.nn.Sequential):  # a SentenceTransformer is a Sequential of its modules
        return any(type(module).__name__ == "Normalize" for module in model)
    return False


def slice_embeddings(embeddings: torch.Tensor, dim: int, *, normalize: bool) -> torch.Tensor:
    """The first `dim` columns, L2-normalised again when `normalize` (cosine ranking, or a normalising model)."""
    if dim > embeddings.shape[1]:
        raise ValueError(
            f"truncate_dims asks for {dim} dimensions but the model's embeddings have {embeddings.shape[1]}: "
            "pass sizes up to the embedding size."
        )
    part = embeddings[:, :dim]
    return torch.nn.functional.normalize(part, p=2, dim=1) if normalize else part


def check_sizes(dims: Sequence[int], width: int) -> None:
    """Refuse a size larger than the embeddings before any search runs."""
    too_large = [d for d in dims if d > width]
    if too_large:
        raise ValueError(
            f"truncate_dims {too_large} exceed the embedding size {width}: pass sizes up to {width}."
        )
