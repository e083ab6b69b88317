"""Two DDP processes (gloo, CPU) train with the callback: one wandb run, written by rank 0 only.

Launched with `accelerate launch --multi_gpu --num_processes 2` (accelerate's multi-CPU DDP; its `--cpu`
launcher starts a single process in accelerate 1.x, which would not test anything here).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.launch import accelerate_2cpu
from tests.helpers.paths import REPO_ROOT, SCRIPTS
from tests.helpers.wandb_records import read_run, run_dirs

SCRIPT = SCRIPTS / "callback_ddp.py"


@pytest.mark.distributed
def test_two_processes_write_exactly_one_run(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out, wandb_dir = tmp_path / "out", tmp_path / "wandb-root"
    out.mkdir()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(wandb_dir),
        "WANDB_SILENT": "true",
    }
    command = accelerate_2cpu(SCRIPT, tiny_bert_dir, out)
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["held_run"] for r in ranks] == [True, False]  # only rank 0 ever touched wandb
    assert (
        ranks[0]["mrr"] == ranks[1]["mrr"] and len(ranks[0]["mrr"]) == 2
    )  # every rank evaluated, same values

    (run_dir,) = run_dirs(wandb_dir)
    run = read_run(run_dir)
    assert run.series("val/mrr@10") == pytest.approx(ranks[0]["mrr"])
    assert run.series("train/global_step")[-1] == 4
    assert run.config["world_size"] == 2 and run.config["effective_batch_size"] == 16
    assert any("retrieval_examples._type" in row for row in run.history)
    assert run.state == "finished"
