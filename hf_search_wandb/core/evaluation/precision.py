"""The precision an evaluation runs in: the one rule every evaluator family (and the examples' training) follows.

`precision="auto"`, in order: an enclosing autocast wins; half-precision weights run as they are; the trainer's
mixed precision (accelerate's state, when it says bf16 or fp16) wins; else bf16 autocast where the hardware
computes bf16 natively (`native_bf16`: a GPU with bf16, a CPU with AMX or AVX512-BF16), fp32 elsewhere
(emulated bf16 is slower than fp32). A family whose metrics moved too much under bf16 in the accuracy guard
(`benchmarks/bench_precision.py accuracy`) keeps fp32 there (`AUTO_BF16`). An explicit `"fp32"`, `"bf16"` or
`"fp16"` wins over all of it; `"fp32"` runs without autocast (an enclosing one is switched off), exactly as the
weights compute. The forward pass runs under `torch.autocast` in that dtype (`autocast`), on GPU and CPU alike;
`precision_name` says which precision ran (`"fp32"`, `"bf16"`, `"fp16"`), recorded on the result
(`result.precision`).

Under a half-precision autocast the retrieval families encode the CORPUS in it and the QUERIES in fp32
(`query_dtype`): queries are a small share of the encoding work (few and short: 0.3 s of a 41 s bf16 evaluation of
SciFact test with MiniLM, 0.6 s in fp32), and encoding them exactly takes their rounding out of every score. Measured
on SciFact test (docs/performance.md, "Accuracy guard"): dense nDCG@10 moved +0.00202 from fp32 with both sides in
bf16, +0.00112 with fp32 queries, for 0.7% more time. The reranking family scores (query, document) pairs: the pair
is one input, all of it in the evaluation's precision.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: explicit precisions and their autocast dtype (None: no autocast, fp32)
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: whether `auto` may pick bf16 for a family on native hardware; a family whose nDCG@10 moves by more than 0.002
#: under bf16 on SciFact test with MiniLM (`benchmarks/bench_precision.py accuracy`) is set False here and
#: keeps fp32 (docs/performance.md, "Accuracy guard", has the figures measured so far)
AUTO_BF16: dict[str, bool] = {"dense": True, "sparse": True, "reranking": True, "multi_vector": True}
#: /proc/cpuinfo flags of a CPU that computes bf16 matrix products natively
CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
#: environment variable that overrides the hardware check: "0" (no device counts as native: `auto` stays fp32
#: unless a trainer or autocast says otherwise) or "1" (every CPU and CUDA device counts as native)
NATIVE_BF16_ENV = "HF_SEARCH_WANDB_NATIVE_BF16"


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


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first `flags` line of `path`); empty where there is none (not Linux)."""
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16), asked once: torch's own checks where they
    exist (`torch.cpu._is_avx512_bf16_supported`, `_is_amx_tile_supported`), else the /proc/cpuinfo flags."""
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: torch 2.x has no public check
    checks: list[Callable[[], object]] = [
        check for check in (getattr(torch.cpu, name, None) for name in names) if callable(check)
    ]
    if checks:
        with contextlib.suppress(Exception):  # a private API: on any surprise, read the flags instead
            return any(bool(check()) for check in checks)
    return bool(CPU_BF16_FLAGS & cpu_flags())


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU with bf16 (Ampere and later), a CPU with AMX or
    AVX512-BF16 (`cpu_computes_bf16`); False elsewhere (MPS, older GPUs, other CPUs), where bf16 is emulated.
    `HF_SEARCH_WANDB_NATIVE_BF16=0` or `=1` overrides the check (`NATIVE_BF16_ENV`; the test suite sets 0).

    Example:
        >>> native_bf16("meta")
        False
    """
    device = torch.device(device)
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("0", "1") and device.type in ("cpu", "cuda"):
        return forced == "1"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.3: no emulation argument
            return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_computes_bf16()
    return False


def auto_precision(device: torch.device | str, family: str = "dense") -> str:
    """What `precision="auto"` picks on `device` with nothing else set: `"bf16"` where `native_bf16` (and the
    family passed the accuracy guard, `AUTO_BF16`), else `"fp32"`. The examples train with it too.

    Example:
        >>> auto_precision("meta")
        'fp32'
    """
    return "bf16" if AUTO_BF16.get(family, False) and native_bf16(device) else "fp32"


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


def trainer_mixed_precision() -> torch.dtype | None:
    """The mixed precision a running trainer set in accelerate's state (bf16 or fp16), else None."""
    try:
        from accelerate.state import AcceleratorState

        mixed = AcceleratorState._shared_state.get("_mixed_precision")
    except ImportError:  # pragma: no cover
        mixed = None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(mixed))


#: `evaluation_dtype(enclosing=LIVE)`: read the enclosing autocast now
LIVE = "live"


def evaluation_dtype(
    precision: str,
    weights_dtype: torch.dtype,
    device: torch.device,
    family: str = "dense",
    enclosing: torch.dtype | str | None = LIVE,
) -> torch.dtype | None:
    """The autocast dtype of an evaluation (None: no autocast): the explicit `precision`, else an enclosing
    autocast, else None for half-precision weights, else the trainer's mixed precision, else bf16 where
    `auto_precision(device, family)` says so, else None (fp32). `enclosing`: the enclosing autocast's dtype as
    read when the evaluation started (`suspended_autocast`), or `LIVE` to read it now."""
    if precision != "auto":
        return DTYPES[precision]
    active = active_autocast_dtype(device) if isinstance(enclosing, str) else enclosing
    if active is not None:
        return active
    if weights_dtype in (torch.bfloat16, torch.float16):
        return None  # weights already in half precision
    mixed = trainer_mixed_precision()
    if mixed is not None:
        return mixed
    return torch.bfloat16 if auto_precision(device, family) == "bf16" else None


def query_dtype(dtype: torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype a retrieval family encodes its queries in when the corpus is encoded under `dtype`:
    fp32 (None: no autocast, an enclosing one switched off) whatever `dtype` is (see the module's docstring).
    Half-precision WEIGHTS still compute in their own dtype: only an autocast can be left.

    Example:
        >>> query_dtype(torch.bfloat16) is None, query_dtype(None) is None
        (True, True)
    """
    del dtype  # the rule is the same for every autocast dtype; the argument names what it is applied to
    return None


def precision_name(dtype: torch.dtype | None, weights_dtype: torch.dtype = torch.float32) -> str:
    """The precision that ran: the autocast dtype's name, else the weights' (`"fp32"` for float32 weights).

    Example:
        >>> precision_name(torch.bfloat16), precision_name(None), precision_name(None, torch.float16)
        ('bf16', 'fp32', 'fp16')
    """
    names = {torch.bfloat16: "bf16", torch.float16: "fp16"}
    return names.get(dtype if dtype is not None else weights_dtype, "fp32")


def resolved_precision(
    precision: str, weights_dtype: torch.dtype, device: torch.device | str, family: str = "dense"
) -> str:
    """The precision an evaluation with `precision` would run in now (`evaluation_dtype`, `precision_name`)."""
    device = torch.device(device)
    return precision_name(evaluation_dtype(precision, weights_dtype, device, family), weights_dtype)


@contextlib.contextmanager
def suspended_autocast(device: torch.device) -> Iterator[torch.dtype | None]:
    """Switch off an enclosing autocast (on `device`'s type and CUDA's) for a whole evaluation; yields its dtype
    on `device` (None when there is none), which `auto` follows for the forward passes. The search, the scoring
    and everything between the batches then run in the precision the evaluator chose, never in a user's
    autocast by accident (bf16 scores, or a sparse kernel that has no bf16 version)."""
    enclosing = active_autocast_dtype(device)
    types = []
    for device_type in sorted({device.type, "cpu", "cuda"}):
        with contextlib.suppress(RuntimeError):  # a device type autocast does not know has none to switch off
            if active_autocast_dtype(torch.device(device_type)) is not None:
                types.append(device_type)
    with contextlib.ExitStack() as stack:
        for device_type in types:
            stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        yield enclosing


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """`torch.autocast` in `dtype` on `device`'s type; nothing when `dtype` is None (fp32): an evaluation runs
    inside `suspended_autocast`, so no caller's autocast is left to apply."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for `device`'s queued work (CUDA), so a timing covers it; a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = [
    "AUTO_BF16", "DTYPES", "NATIVE_BF16_ENV", "Precision", "auto_precision", "autocast", "check_precision", "cpu_computes_bf16",
    "evaluation_dtype", "native_bf16", "precision_name", "query_dtype", "resolved_precision", "suspended_autocast",
    "synchronize",
]  # fmt: skip
