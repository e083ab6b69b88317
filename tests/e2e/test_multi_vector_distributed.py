"""A MultiVectorEncoder evaluated in 2 processes (DDP over gloo, CPU) equals the 1-process evaluation, on every rank.

Launched like tests/e2e/test_evaluator_distributed.py (`accelerate launch --multi_gpu --num_processes 2`, a script
that builds `Accelerator(cpu=True)`). The corpus is sharded: each rank encodes half of the documents and scores
them against every query; top-k lists, true ranks and per-document token counts are merged. The same model
re-scoring BM25's candidates (`RerankingEvaluator`) shards the candidate documents the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.launch import accelerate_2cpu, run_ranks
from tests.helpers.paths import SCRIPTS

SCRIPT = SCRIPTS / "family_evaluator_ddp.py"


@pytest.mark.distributed
def test_two_processes_equal_one_process_multi_vector(tmp_path: Path):
    from tests.helpers.tiny_models import make_tiny_multi_vector

    model_dir = tmp_path / "colbert"
    model = make_tiny_multi_vector(
        tmp_path / "build", query_expansion={"strategy": "fixed", "length": 8}, skiplist_words=["the"]
    )
    model.save(str(model_dir))
    out = tmp_path / "out"
    out.mkdir()
    ranks = run_ranks(accelerate_2cpu(SCRIPT, "multi_vector", model_dir, out), out)
    assert [r["world_size"] for r in ranks] == [2, 2]
    reference = ranks[0]["local"]
    assert ranks[1]["local"]["metrics"] == reference["metrics"]
    for rank in ranks:
        sharded = rank["sharded"]
        assert sharded["metrics"] == pytest.approx(reference["metrics"], abs=1e-12)
        assert sharded["top_indices"] == reference["top_indices"]
        assert sharded["relevant_ranks"] == reference["relevant_ranks"]
        assert sharded["doc_tokens"] == reference["doc_tokens"]
        assert sharded["query_tokens"] == reference["query_tokens"]
        np.testing.assert_allclose(sharded["top_scores"], reference["top_scores"], atol=1e-6)
    assert reference["metrics"]["corpus_tokens"] > 0 and reference["metrics"]["query_tokens"] == 8.0
    for rank in ranks:  # the re-scoring path (RerankingEvaluator): the candidates' documents sharded, scores gathered
        sharded, alone = rank["rescored_sharded"], ranks[0]["rescored_local"]
        assert sharded["metrics"] == pytest.approx(alone["metrics"], abs=1e-12)
        assert sharded["top_indices"] == alone["top_indices"]
        np.testing.assert_allclose(sharded["top_scores"], alone["top_scores"], atol=1e-6)
    assert reference["metrics"]["query_tokens"] == ranks[0]["rescored_local"]["metrics"]["query_tokens"]
