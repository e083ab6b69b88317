"""RerankingEvaluator over 2 CPU processes (DDP over gloo via `accelerate launch --multi_gpu --num_processes 2`,
see tests/e2e/test_evaluator_distributed.py for why not `--cpu`): the pairs are sharded, the scores gathered, and
every rank gets exactly the metrics and rankings of one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.launch import accelerate_2cpu, run_ranks
from tests.helpers.paths import SCRIPTS

SCRIPT = SCRIPTS / "reranking_ddp.py"


@pytest.mark.distributed
def test_two_processes_rerank_like_one(tiny_bert_dir: Path, tmp_path: Path) -> None:
    ranks = run_ranks(accelerate_2cpu(SCRIPT, tiny_bert_dir, tmp_path), tmp_path)
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["wrapped"] == "DistributedDataParallel"  # the CrossEncoder was DDP-wrapped, then unwrapped
    reference = ranks[0]["local"]
    for rank in ranks:
        assert rank["local"]["metrics"] == reference["metrics"]
        assert rank["sharded"]["metrics"] == reference["metrics"]  # exactly, on every rank
        assert rank["sharded"]["top_indices"] == reference["top_indices"]
        assert rank["sharded"]["relevant_ranks"] == reference["relevant_ranks"]
        np.testing.assert_allclose(rank["sharded"]["top_scores"], reference["top_scores"], atol=1e-6)
    assert reference["metrics"]["ndcg@10"] != reference["metrics"]["first_stage/ndcg@10"]  # it did rerank
