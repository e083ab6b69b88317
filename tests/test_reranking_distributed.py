"""RerankingEvaluator over 2 CPU processes (DDP over gloo via `accelerate launch --multi_gpu --num_processes 2`,
see tests/test_evaluator_distributed.py for why not `--cpu`): the pairs are sharded, the scores gathered, and
every rank gets exactly the metrics and rankings of one process."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_evaluator_distributed import _free_port, _run

SCRIPT = Path(__file__).parent / "scripts" / "reranking_ddp.py"


@pytest.mark.distributed
def test_two_processes_rerank_like_one(tiny_bert_dir: Path, tmp_path: Path) -> None:
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               str(SCRIPT), str(tiny_bert_dir), str(tmp_path)]  # fmt: skip
    ranks = _run(command, tmp_path)
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
