"""1 process vs 2 processes (DDP over gloo, CPU): identical metrics, rankings and true ranks on every rank.

Each rank evaluates sharded over both processes, then alone (`distributed=False`, the 1-process reference,
without a second launch). The run goes through `accelerate launch --multi_gpu --num_processes 2` with a
script that builds `Accelerator(cpu=True)`: that is accelerate's multi-CPU DDP over gloo. (`accelerate launch --cpu
--num_processes 2` starts ONE process in accelerate 1.x: its CPU launcher leaves multi-process CPU runs to
mpirun, so it would not test sharding at all; the test checks the world size to catch exactly that.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.launch import accelerate_2cpu, run_ranks
from tests.helpers.paths import SCRIPTS

SCRIPT = SCRIPTS / "evaluator_ddp.py"


@pytest.mark.distributed
def test_two_processes_equal_one_process(tiny_bert_dir: Path, tmp_path: Path):
    ranks = run_ranks(accelerate_2cpu(SCRIPT, tiny_bert_dir, tmp_path), tmp_path)
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["wrapped"] == "DistributedDataParallel"  # the plain HF model was DDP-wrapped, then unwrapped
    for model in ("st", "hf", "keyword"):
        reference = ranks[0][f"{model}_local"]  # the same evaluation in one process, no collectives
        assert ranks[1][f"{model}_local"]["metrics"] == reference["metrics"]
        for rank in ranks:
            sharded = rank[model]
            assert sharded["metrics"] == reference["metrics"], model  # exactly, and on every rank
            assert sharded["top_indices"] == reference["top_indices"], model
            assert sharded["relevant_ranks"] == reference["relevant_ranks"], model
            np.testing.assert_allclose(sharded["top_scores"], reference["top_scores"], atol=1e-6)
            np.testing.assert_allclose(sharded["positive_scores"], reference["positive_scores"], atol=1e-6)
    for model in ("st", "hf"):  # real rankings (distinct scores), not one big tie
        assert np.mean([len(np.unique(row)) for row in np.array(ranks[0][model]["top_scores"])]) > 50, model
    assert ranks[0]["st"]["metrics"] == ranks[0]["hf"]["metrics"]  # same weights and pooling: adapters agree

def test_rank_zero_only_runs_on_rank_zero_and_returns_default_elsewhere(monkeypatch):
    import torch

    from hf_search_wandb.core.distributed import all_gather_rows, all_reduce, rank_zero_only

    calls = []

    @rank_zero_only(default="skipped")
    def log(value):
        calls.append(value)
        return "logged"

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert log(1) == "skipped" and calls == []
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert log(2) == "logged" and calls == [2]
    # one process: collectives are identities
    tensor = torch.arange(6).reshape(3, 2)
    assert [t.tolist() for t in all_gather_rows(tensor)] == [tensor.tolist()]
    assert all_reduce(tensor, "max").tolist() == tensor.tolist()
