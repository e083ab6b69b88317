"""The precision an evaluation runs in: the one rule every evaluator family follows.

`precision="auto"` follows an enclosing autocast, else half-precision weights as they are, else the trainer's
mixed precision (accelerate's state), else fp32; an explicit `"fp32"`, `"bf16"` or `"fp16"` wins. The
forward pass runs under `torch.autocast` in that dtype (`autocast`), on GPU and CPU alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: explicit precisions and their autocast dtype (None: no autocast, fp32)
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: object) -> None:
    """Refuse anything but the four precisions, naming them.

    Example:
        >>> check_precision("bf16")
        >>> check_precision("int8")
        Traceback (most recent call last):
        ...
        ValueError: precision must be 'auto', 'fp32', 'bf16' or 'fp16', got 'int8'.
    """
    if precision not in ("auto", *DTYPES):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}.")


def active_autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype of an enclosing autocast context on `device`, if any (torch >= 2.4 API, older fallback)."""
    try:
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return None
    except (TypeError, AttributeError):  # torch < 2.4: per-device functions without arguments
        if device.type == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        if device.type == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        return None


def evaluation_dtype(precision: str, weights_dtype: torch.dtype, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an evaluation: the explicit `precision`, else an enclosing autocast, else None for
    half-precision weights, else accelerate's `mixed_precision` (the trainer's), else None (fp32)."""
    if precision != "auto":
        return DTYPES[precision]
    active = active_autocast_dtype(device)
    if active is not None:
        return active
    if weights_dtype in (torch.bfloat16, torch.float16):
        return None  # weights already in half precision
    try:
        from accelerate.state import AcceleratorState

        mixed = AcceleratorState._shared_state.get("_mixed_precision")
    except ImportError:  # pragma: no cover
        mixed = None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(mixed))


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """`torch.autocast` in `dtype` on `device`'s type; nothing when `dtype` is None (fp32)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for `device`'s queued work (CUDA), so a timing covers it; a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["DTYPES", "Precision", "autocast", "check_precision", "evaluation_dtype", "synchronize"]
