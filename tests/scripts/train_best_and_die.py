"""Train the tiny bi-encoder with a scripted evaluator (best mrr@10 0.9 at step 6) and the best-model artifact,
and SIGKILL the process at step 10 (launched by tests/e2e/test_resume_keeps_the_best.py).

Usage: python tests/scripts/train_best_and_die.py MODEL_DIR OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.scripted_evaluator import ScriptedEvaluator, StepClock
from tests.helpers.training import plain_trainer
from tests.scripts.train_and_die import KILL_ARGS, Die


def main() -> None:
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    evaluator = ScriptedEvaluator()
    callback = SearchWandbCallback(evaluator, log_tables="off", model_artifact="best")
    trainer = plain_trainer(model_dir, out, callback, **KILL_ARGS)  # type: ignore[arg-type]
    trainer.add_callback(StepClock(evaluator))
    trainer.add_callback(Die("sigkill", 10))
    trainer.train()


if __name__ == "__main__":
    main()
