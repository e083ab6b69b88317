"""Dying mid-training (SIGKILL, SIGTERM, Ctrl-C, an exception) and resuming from the latest checkpoint.

A subprocess trains the tiny model (12 steps, checkpoints every 4, evaluation every 3) and dies at step 10;
the test resumes with `trainer.train(resume_from_checkpoint=True)` and reads every session directory of
the run back with wandb's reader: same run id and name, each step's rows exactly once, nothing lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.kill_rows import kill_during_burst
from tests.helpers.paths import REPO_ROOT, SCRIPTS
from tests.helpers.training import make_evaluator, plain_trainer
from tests.helpers.wandb_records import read_run, run_dirs
from tests.scripts.train_and_die import KILL_ARGS

SCRIPT = SCRIPTS / "train_and_die.py"
ROOT = REPO_ROOT


def train_and_die(
    model_dir: Path, out: Path, how: str, step: int, wandb_dir: Path
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_DIR": str(wandb_dir), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(model_dir), str(out), how, str(step)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


EXPECTED_RC = {"sigkill": -signal.SIGKILL, "sigterm": -signal.SIGTERM, "sigint": -signal.SIGINT, "raise": 1}


@pytest.mark.parametrize(
    "how",
    [
        "sigkill",
        "sigterm",
        pytest.param("sigint", marks=pytest.mark.slow),  # the same handler as SIGTERM
        pytest.param("raise", marks=pytest.mark.slow),  # in-process: test_callback_training's resume test
    ],
)
def test_resume_after_dying_logs_every_step_exactly_once(
    wandb_offline: Path, tiny_bert_dir: Path, how: str
) -> None:
    out = wandb_offline / "out"
    died = train_and_die(tiny_bert_dir, out, how, 10, wandb_offline)
    assert died.returncode == EXPECTED_RC[how], died.stderr[-3000:]
    (first_dir,) = run_dirs(wandb_offline)
    first = read_run(first_dir)
    if how != "sigkill":  # a handler saw it: the run is finished as failed, not left running
        assert first.state == "failed" and first.exit_code != 0
        assert max(first.series("train/global_step")) == 9  # step 10 dies before its log
    callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, out, callback, **KILL_ARGS)
    trainer.train(resume_from_checkpoint=True)  # checkpoint-8
    dirs = run_dirs(wandb_offline)
    assert len(dirs) == 2
    second = read_run(next(d for d in dirs if d != first_dir))
    assert second.state == "finished"
    runs = [first, second]
    records = [r.of_type("run")[-1] for r in runs]
    assert records[1]["run_id"] == records[0]["run_id"] and records[1].get("resume")
    assert records[1]["display_name"] == records[0]["display_name"]  # the resumed session keeps the name
    for key, steps in (("train/loss", range(1, 13)), ("val/mrr@10", (3, 6, 9, 12))):
        logged = Counter(r["train/global_step"] for run in runs for r in run.history if key in r)
        assert logged == Counter(steps), (key, logged)


def test_sigkill_loses_no_row_older_than_a_second(tmp_path: Path) -> None:
    """The callback's logging (bounded background queue, wandb's log written every 0.5 s) under SIGKILL."""
    after = kill_during_burst(tmp_path / "after", mode="callback", wait_after_done=1.5)
    assert after["on_disk"] == after["logged"] == 1000
    mid = kill_during_burst(tmp_path / "mid", mode="callback", interval=0.002, kill_after_row=600)
    assert mid["older_on_disk"] == mid["older_than_1s"] > 0


def test_a_custom_sigterm_handler_is_chained_and_training_goes_on(
    wandb_offline: Path, tiny_bert_dir: Path
) -> None:
    """A handler of the user's own (e.g. checkpoint-and-continue) is called after the rows and the resume
    record are saved; the run stays open and training finishes; the handlers are restored at train end."""
    from transformers import TrainerCallback

    seen: list[int] = []

    def mine(signum: int, frame: Any) -> None:
        seen.append(signum)

    class Term(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, mine)
    sigint = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    try:
        callback = SearchWandbCallback(log_tables="off", model_artifact="off")
        out = wandb_offline / "out"
        trainer = plain_trainer(tiny_bert_dir, out, callback, max_steps=4, eval_strategy="no")
        trainer.add_callback(Term())
        trainer.train()
        assert seen == [signal.SIGTERM]
        # the run stays open after train(): SIGTERM stays guarded until it is finished; Ctrl-C is the user's
        assert signal.getsignal(signal.SIGINT) == sigint
        assert signal.getsignal(signal.SIGTERM) is not mine
        callback.finish()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
    (run_dir,) = run_dirs(wandb_offline)
    run = read_run(run_dir)
    assert run.state == "finished"
    assert [r["train/global_step"] for r in run.history if "train/loss" in r] == [1, 2, 3, 4]


def test_sigterm_after_train_while_the_run_is_open_finishes_it_as_failed(
    wandb_offline: Path, tiny_bert_dir: Path
) -> None:
    """Preempted during a post-training evaluation: that evaluation's row is kept and the run is closed as
    failed with exit code 143, not left running; the process still dies of SIGTERM."""
    died = train_and_die(tiny_bert_dir, wandb_offline / "out", "sigterm-after-train", 0, wandb_offline)
    assert died.returncode == -signal.SIGTERM, died.stderr[-3000:]
    assert "post-training evaluation logged" in died.stdout
    (run_dir,) = run_dirs(wandb_offline)
    run = read_run(run_dir)
    assert run.state == "failed" and run.exit_code == 128 + signal.SIGTERM
    evaluated = [r["train/global_step"] for r in run.history if "val/mrr@10" in r]
    assert evaluated == [3, 6, 9, 12, 12]  # the four during training, then trainer.evaluate()
