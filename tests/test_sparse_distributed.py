"""A SparseEncoder evaluated in 2 processes (DDP over gloo, CPU) equals the 1-process evaluation, on every rank.

Launched like tests/test_evaluator_distributed.py (`accelerate launch --multi_gpu --num_processes 2`, a script
that builds `Accelerator(cpu=True)`). The corpus is sharded: each rank encodes half of the documents, keeps
them sparse, searches its shard; top-k lists, sparsity counts and document lengths are merged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_evaluator_distributed import _free_port, _run

SCRIPT = Path(__file__).parent / "scripts" / "sparse_evaluator_ddp.py"


@pytest.mark.distributed
def test_two_processes_equal_one_process_sparse(tmp_path: Path):
    from tests.tiny_models import make_tiny_sparse_encoder

    model_dir = tmp_path / "splade"
    make_tiny_sparse_encoder(tmp_path / "build").save(str(model_dir))
    out = tmp_path / "out"
    out.mkdir()
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               str(SCRIPT), str(model_dir), str(out)]  # fmt: skip
    ranks = _run(command, out)
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
