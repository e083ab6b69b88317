"""Skip marks for what an older sentence-transformers lacks (`hf_search_wandb.core.compat.FEATURES`), so the
suite runs on every supported version (`make test-oldest`) and says why a test did not run."""

from __future__ import annotations

import pytest

from hf_search_wandb.core import compat


def requires(feature: str) -> pytest.MarkDecorator:
    """Skip unless the installed sentence-transformers has `feature` (a key of `compat.FEATURES`)."""
    minimum = compat.needs_sentence_transformers(feature)
    return pytest.mark.skipif(
        not compat.has_feature(feature),
        reason=f"{feature} needs sentence-transformers >= {minimum}; {compat.st_version()} is installed",
    )


def resumable() -> pytest.MarkDecorator:
    """Skip where transformers itself cannot resume from a checkpoint: before 4.47 it loads its RNG state with
    `torch.load`'s default `weights_only`, which torch 2.6+ refuses (numpy arrays in the state)."""
    import torch

    old_transformers = compat.transformers_version() < compat.Version("4.47")
    new_torch = compat.Version(torch.__version__.split("+")[0]) >= compat.Version("2.6")
    return pytest.mark.skipif(
        old_transformers and new_torch,
        reason=f"transformers {compat.transformers_version()} cannot load its own checkpoint RNG state under "
        f"torch {torch.__version__} (fixed in transformers 4.47)",
    )
