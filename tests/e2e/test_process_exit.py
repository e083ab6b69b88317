"""A run the callback still holds open is finished by the process exit hook, with everything in it (issue 11.2).

(Split from tests/trainer/test_post_train_and_several_evaluators.py: this one runs its training in a child process.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO_ROOT
from tests.helpers.wandb_records import read_run, run_dirs


def test_the_run_is_finished_when_the_process_exits(tmp_path: Path) -> None:
    """train() and a post-training evaluation in a child process that never calls finish(): the exit hook
    finishes the run with everything in it."""
    script = tmp_path / "job.py"
    script.write_text(
        "from tests.helpers.training import make_evaluator, named_evaluator, plain_trainer\n"
        "from tests.helpers.tiny_models import make_tiny_bert\n"
        "from hf_search_wandb import SearchWandbCallback\n"
        f"model = make_tiny_bert({str(tmp_path / 'bert')!r})\n"
        "cb = SearchWandbCallback(make_evaluator(), log_tables='off', model_artifact='off')\n"
        f"trainer = plain_trainer(model, {str(tmp_path / 'out')!r}, cb, max_steps=2, eval_steps=2)\n"
        "trainer.train()\n"
        "cb.evaluate(named_evaluator('test', 10))\n"
    )
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT),
           "WANDB_SILENT": "true"}  # fmt: skip
    subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, env=env, check=True, timeout=600,
                   capture_output=True)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path)
    run = read_run(run_dir)
    assert run.state == "finished" and run.exit_code == 0
    assert "test/ndcg@10" in run.summary
