"""A SparseEncoder evaluated in 2 processes (DDP over gloo, CPU) equals the 1-process evaluation, on every rank.

Launched like tests/e2e/test_evaluator_distributed.py (`accelerate launch --multi_gpu --num_processes 2`, a script
that builds `Accelerator(cpu=True)`). The corpus is sharded: each rank encodes half of the documents, keeps
them sparse, searches its shard; top-k lists, sparsity counts and document lengths are merged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.launch import accelerate_2cpu, run_ranks
from tests.helpers.paths import SCRIPTS

SCRIPT = SCRIPTS / "family_evaluator_ddp.py"


@pytest.mark.distributed
def test_two_processes_equal_one_process_sparse(tmp_path: Path):
    from tests.helpers.tiny_models import make_tiny_sparse_encoder

    model_dir = tmp_path / "splade"
    make_tiny_sparse_encoder(tmp_path / "build").save(str(model_dir))
    out = tmp_path / "out"
    out.mkdir()
    ranks = run_ranks(accelerate_2cpu(SCRIPT, "sparse", model_dir, out), out)
    assert [r["world_size"] for r in ranks] == [2, 2]
    reference = ranks[0]["local"]
    assert ranks[1]["local"]["metrics"] == reference["metrics"]
    for rank in ranks:
        sharded = rank["sharded"]
        assert sharded["metrics"] == pytest.approx(reference["metrics"], abs=1e-12)
        assert sharded["top_indices"] == reference["top_indices"]
        assert sharded["relevant_ranks"] == reference["relevant_ranks"]
        assert sharded["doc_active_dims"] == reference["doc_active_dims"]
        assert sharded["query_active_dims"] == reference["query_active_dims"]
        np.testing.assert_allclose(sharded["top_scores"], reference["top_scores"], atol=1e-6)
    assert reference["metrics"]["corpus_active_dims"] > 0 and reference["metrics"]["flops"] > 0
