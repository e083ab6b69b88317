"""Train the tiny bi-encoder with SearchWandbCallback and die at a given step (launched by tests).

Usage: python tests/scripts/train_and_die.py MODEL_DIR OUTPUT_DIR HOW STEP
HOW: sigkill | sigterm | sigint | raise | none, or sigterm-after-train (train to the end, evaluate once more,
then SIGTERM while the run is still open). Checkpoints every 4 steps, evaluation every 3, 12 steps.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from transformers import TrainerCallback

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import make_evaluator, plain_trainer

KILL_ARGS = dict(max_steps=12, save_strategy="steps", save_steps=4, eval_steps=3)


class Die(TrainerCallback):
    def __init__(self, how: str, step: int) -> None:
        self.how, self.step = how, step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step != self.step:
            return
        print(f"dying at step {state.global_step} by {self.how}", flush=True)
        if self.how == "raise":
            raise RuntimeError("simulated crash")
        if self.how == "sigkill":
            time.sleep(1.5)  # the guarantee under SIGKILL: rows older than ~1 s are on disk
        if self.how != "none":
            os.kill(os.getpid(), getattr(signal, self.how.upper()))


def main() -> None:
    model_dir, out, how, step = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off")
    trainer = plain_trainer(Path(model_dir), out, callback, **KILL_ARGS)  # type: ignore[arg-type]
    after = how == "sigterm-after-train"
    trainer.add_callback(Die("none" if after else how, step))
    trainer.train()
    if after:
        trainer.evaluate()  # logged into the run, which stays open after train()
        print("post-training evaluation logged; SIGTERM", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # never reached: the default action ends the process


if __name__ == "__main__":
    main()
