"""The one batch loop every evaluator family runs its model through.

Texts (or pairs) are tokenised once; `plan_batches` cuts them, longest first, into batches of at most a token
budget of padded tokens; `run_batches` runs each batch under the evaluation's autocast, checks what came back
(the shape, and that every value is finite) and shows one progress bar on rank 0. A family's backend says
what one batch is (`forward`) and what to keep of its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from hf_search_wandb.core.distributed import get_rank
from hf_search_wandb.core.evaluation.precision import autocast


def plan_batches(lengths: np.ndarray, batch_tokens: int, max_batch_size: int) -> list[np.ndarray]:
    """Cut length-sorted texts (longest first) into batches of at most `batch_tokens` padded tokens.

    Example:
        >>> [b.tolist() for b in plan_batches(np.array([2, 8, 4, 4]), batch_tokens=8, max_batch_size=8)]
        [[1], [2, 3], [0]]
    """
    order = np.lexsort((np.arange(lengths.size), -lengths))
    batches: list[np.ndarray] = []
    start = 0
    while start < order.size:
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch_size, batch_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def checked_batch(
    run: Callable[[], torch.Tensor], who: str, n: int, kind: str, width: str | None
) -> torch.Tensor:
    """`run()`'s output for one batch of `n` texts: `(n, width)` (or `(n,)` scores when `width` is None), or a
    clear error naming `who`: its own TypeError/ValueError as is, any other failure wrapped, a wrong shape
    refused.

    Example:
        >>> checked_batch(lambda: torch.zeros(2, 3), "Model", 3, "query", "dim")
        Traceback (most recent call last):
        ...
        ValueError: Model returned embeddings of shape (2, 3) for 3 querys; expected (3, dim).
    """
    try:
        out = run()
    except (TypeError, ValueError):
        raise
    except Exception as err:
        raise RuntimeError(f"{who} failed to encode a batch of {n} {kind}s ({type(err).__name__}: {err}).") from err
    if width is None:
        if tuple(out.shape) != (n,):
            raise ValueError(f"{who} returned scores of shape {tuple(out.shape)} for {n} {kind}s; expected ({n},).")
    elif out.ndim != 2 or out.shape[0] != n:
        raise ValueError(
            f"{who} returned embeddings of shape {tuple(out.shape)} for {n} {kind}s; expected ({n}, {width})."
        )
    return out


def run_batches(
    forward: Callable[[np.ndarray], torch.Tensor],
    batches: list[np.ndarray],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    who: str,
    kind: str,
    width: str | None,
    progress: str | None = None,
    check_finite: bool = True,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Run `forward(batch_rows)` on each batch under autocast in `dtype`; yield `(batch_rows, output)`.

    Args:
        forward: one batch's rows -> the model's output for them.
        who / kind / width: named in errors (`checked_batch`).
        progress: a progress-bar label (rank 0 only), or None for no bar.
        check_finite: refuse NaN or infinite outputs once the loop ends (one device sync, not one per batch).
    """
    bar = None
    if progress is not None and get_rank() == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(b) for b in batches), desc=progress, unit=kind[:3], leave=False)
    finite: torch.Tensor | None = None
    try:
        for batch in batches:

            def run(batch: np.ndarray = batch) -> torch.Tensor:
                with autocast(device, dtype):
                    return forward(batch)

            out = checked_batch(run, who, len(batch), kind, width)
            if check_finite:
                ok = torch.isfinite(out).all()
                finite = ok if finite is None else finite & ok
            yield batch, out
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    if finite is not None and not bool(finite):
        hint = " (fp16 overflow? try precision='bf16' or 'fp32')" if dtype == torch.float16 else ""
        noun = "scores" if width is None else f"{kind} embeddings"
        raise ValueError(f"{who} produced NaN or infinite {noun}{hint}.")


def as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    """An `Encoder.encode_texts` result as a float tensor on `device`, or a TypeError naming the shape wanted."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"encode_texts must return a (n, dim) tensor or array, got {type(value).__name__}."
        ) from err


__all__ = ["as_tensor", "checked_batch", "plan_batches", "run_batches"]
