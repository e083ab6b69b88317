"""Rank / world-size helpers, collectives that tolerate uneven shards, and a rank-zero decorator.

Everything here is a no-op in a single process (no `torch.distributed` process group), so callers
never branch on "am I distributed?". The rank used by `rank_zero_only` can be set in tests
(`rank_zero_only.rank = 1`), as lightning_utilities does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch

F = TypeVar("F", bound=Callable[..., Any])


def is_distributed() -> bool:
    """True when a `torch.distributed` process group with more than one process is running.

    Example:
        >>> is_distributed()
        False
    """
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def get_rank() -> int:
    """This process's rank (0 without a process group).

    Example:
        >>> get_rank()
        0
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    return 0


def get_world_size() -> int:
    """The number of processes (1 without a process group).

    Example:
        >>> get_world_size()
        1
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_world_size())
    return 1


def collective_device(preferred: torch.device) -> torch.device:
    """The device collectives must use: CUDA for NCCL, CPU for gloo (or no process group)."""
    if is_distributed():
        backend = str(torch.distributed.get_backend()).lower()
        if "nccl" in backend:
            return (
                preferred if preferred.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
            )
        return torch.device("cpu")
    return preferred


def all_gather_rows(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Gather a tensor from every rank; shards may differ in their first dimension.

    Returns the list of every rank's tensor (index = rank), each on `tensor`'s device. In one process,
    `[tensor]`.

    Example:
        >>> [t.shape for t in all_gather_rows(torch.zeros(3, 2))]
        [torch.Size([3, 2])]
    """
    if not is_distributed():
        return [tensor]
    device = collective_device(tensor.device)
    local = tensor.to(device).contiguous()
    world = get_world_size()
    size = torch.tensor([local.shape[0]], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    torch.distributed.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    if local.shape[0] < longest:
        pad = torch.zeros((longest - local.shape[0], *local.shape[1:]), dtype=local.dtype, device=device)
        local = torch.cat([local, pad])
    gathered = [torch.empty_like(local) for _ in range(world)]
    torch.distributed.all_gather(gathered, local)
    return [g[:n].to(tensor.device) for g, n in zip(gathered, counts, strict=True)]


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce `tensor` over all ranks (`"sum"` or `"max"`) and return the result on its device.

    Example:
        >>> all_reduce(torch.tensor([1, 2])).tolist()
        [1, 2]
    """
    if not is_distributed():
        return tensor
    ops = {"sum": torch.distributed.ReduceOp.SUM, "max": torch.distributed.ReduceOp.MAX}
    if op not in ops:
        raise ValueError(f"op must be one of {sorted(ops)}, got {op!r}.")
    device = collective_device(tensor.device)
    work = tensor.to(device).contiguous()
    torch.distributed.all_reduce(work, op=ops[op])
    return work.to(tensor.device)


def rank_zero_only(fn: F | None = None, *, default: Any = None) -> Any:
    """Decorator: run `fn` on rank 0 only; other ranks get `default`.

    The rank is read from `rank_zero_only.rank` when set (tests), else from the process group.

    Example:
        >>> @rank_zero_only(default="skipped")
        ... def greet():
        ...     return "hello"
        >>> greet()
        'hello'
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            rank = rank_zero_only.rank if rank_zero_only.rank is not None else get_rank()  # type: ignore[attr-defined]
            if rank == 0:
                return func(*args, **kwargs)
            return default

        return cast(F, wrapper)

    return decorate(fn) if fn is not None else decorate


rank_zero_only.rank = None  # type: ignore[attr-defined]
