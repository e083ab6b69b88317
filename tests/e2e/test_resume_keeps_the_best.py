"""Resume after SIGKILL keeps the best evaluation: it comes back from the resumed run's history, so alias `best`
never moves to a worse model and the summary's best equals the history's.

A child trains 12 steps with a scripted `val/mrr@10` (0.5, 0.9, 0.6 at steps 3, 6, 9; 0.7 at 12) and the
best-model artifact, and is SIGKILLed at step 10; the test resumes from checkpoint 8 in-process (no evaluation
on start) and reads both session folders back with wandb's reader.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.paths import REPO_ROOT, SCRIPTS
from tests.helpers.scripted_evaluator import SCRIPT, ScriptedEvaluator, StepClock
from tests.helpers.training import plain_trainer
from tests.helpers.wandb_records import read_run, run_dirs
from tests.scripts.train_and_die import KILL_ARGS


def test_resume_after_sigkill_keeps_the_best_and_alias_best_never_moves_back(
    wandb_offline: Path, tiny_bert_dir: Path
) -> None:
    out = wandb_offline / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "WANDB_DIR": str(wandb_offline),
        "WANDB_MODE": "offline",
    }
    died = subprocess.run(
        [sys.executable, str(SCRIPTS / "train_best_and_die.py"), str(tiny_bert_dir), str(out)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    (first_dir,) = run_dirs(wandb_offline)

    evaluator = ScriptedEvaluator()
    callback = SearchWandbCallback(evaluator, log_tables="off", model_artifact="best")
    trainer = plain_trainer(tiny_bert_dir, out, callback, **KILL_ARGS)
    trainer.add_callback(StepClock(evaluator))
    trainer.train(resume_from_checkpoint=True)  # checkpoint-8: evaluations at 9 (0.6) and 12 (0.7)
    assert callback.best.value == 0.9 and callback.best.step == 6
    assert callback.best.artifact is not None and callback.best.artifact.endswith(":v1")  # 0.5 was v0
    callback.finish()

    (second_dir,) = [d for d in run_dirs(wandb_offline) if d != first_dir]
    first, second = read_run(first_dir), read_run(second_dir)
    history = [r for run in (first, second) for r in run.history if "val/mrr@10" in r]
    assert {r["train/global_step"]: r["val/mrr@10"] for r in history} == SCRIPT
    best_in_history = max(r["val/mrr@10"] for r in history)
    # before: the resumed session restarted best tracking and ended with best/mrr@10 0.7 at step 12
    assert second.summary["best/mrr@10"] == best_in_history == 0.9
    assert second.summary["best/step"] == 6
    models = [a for run in (first, second) for a in run.artifacts if a.get("type") == "model"]
    with_best = [a for a in models if "best" in a.get("aliases", [])]
    # before: two more versions took alias `best` in the resumed session (0.6 at step 9, then 0.7 at 12)
    assert not [a for a in second.artifacts if "best" in a.get("aliases", [])]
    assert len(with_best) == 2  # 0.5 at step 3, then 0.9 at step 6, both before the kill
    assert json.loads(with_best[-1]["metadata"])["best_step"] == 6
