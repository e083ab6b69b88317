"""Train the tiny custom bi-encoder with a plain Trainer + SearchWandbCallback under DDP (gloo, CPU).

Usage: accelerate launch --multi_gpu --num_processes 2 tests/scripts/callback_ddp.py TINY_BERT_DIR OUT_DIR
Each rank writes OUT_DIR/rank{N}.json: world size, whether it held a wandb run, its evaluation metrics.
wandb itself writes under WANDB_DIR (set by the test).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from tests.helpers.training import make_evaluator, plain_trainer

    callback = SearchWandbCallback(make_evaluator(), dataset_name="scifact", log_tables="every")
    trainer = plain_trainer(model_dir, out / "train", callback, max_steps=4, eval_steps=2, use_cpu=True)
    held_run: list[bool] = []
    original = callback.on_log

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        held_run.append(callback.run is not None)
        return original(*args, **kwargs)

    callback.on_log = spy  # type: ignore[method-assign]
    trainer.train()
    rank = trainer.args.process_index
    evals = [h for h in trainer.state.log_history if "eval_val_mrr@10" in h]
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "world_size": trainer.args.world_size,
                "held_run": any(held_run),
                "mrr": [h["eval_val_mrr@10"] for h in evals],
            }
        )
    )


if __name__ == "__main__":
    from tests.helpers.launch import end_process_group

    main()
    end_process_group()
