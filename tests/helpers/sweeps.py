"""Sweep programs the tests give the engine (`--program tests.helpers.sweeps:NAME`, also from agent processes)
and the seed sweep config."""

from __future__ import annotations

import json
import os
import time

from transformers import TrainerCallback

SEED_YAML = """
program: train.py
method: bayes  # bayes, grid, random
metric:
  name: val/mrr@10
  goal: maximize
parameters:
  learning_rate:
    distribution: log_uniform_values
    min: 1e-6
    max: 5e-5
  batch_size:
    values: [32, 64, 128]
  num_epochs:
    values: [3, 5, 10]
  warmup_ratio:
    values: [0.05, 0.1, 0.2]
  weight_decay:
    values: [0.0, 0.01, 0.1]
  max_seq_length:
    values: [128, 256, 512]
  loss_function:
    values:
      - MultipleNegativesRankingLoss
      - TripletLoss
      - CosineSimilarityLoss
  pooling_mode:
    values: [mean, cls, max]
early_terminate:
  type: hyperband
  min_iter: 3
  eta: 3
"""


def scripted_program(config: dict, callbacks: list) -> dict:
    """A trial without a model, for tests about the engine's bookkeeping (count, restart, failures).

    It sleeps `sleep` seconds, raises when `fail` is set, and returns `quality` as the metric.
    """
    time.sleep(float(config.get("sleep", 0.0)))
    if config.get("fail"):
        raise RuntimeError("scripted failure")
    return {"eval_val_mrr@10": float(config["quality"])}


class ScriptedMetric(TrainerCallback):
    """Adds `eval_val_mrr@10 = quality` to each evaluation's metrics, the way SearchWandbCallback adds
    its evaluator's results for a plain Trainer (so the pruning callback after it sees them)."""

    def __init__(self, quality: float) -> None:
        self.quality = quality

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics["eval_val_mrr@10"] = self.quality


def trainer_program(config: dict, callbacks: list) -> dict:
    """A real `transformers.Trainer` run (one-weight model, 6 steps, evaluation every 2) with the real
    SearchWandbCallback, whose val/mrr@10 is the trial's `quality`: hyperband's decisions are then known
    in advance while the report -> prune -> stop path is the production one."""
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import Trainer

    from hf_search_wandb.sweeps.training import training_arguments
    from hf_search_wandb.trainer.callback import SearchWandbCallback

    class OneWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, labels=None):
            return {"loss": ((self.w - x) ** 2).mean()}

    data = Dataset.from_dict({"x": [0.5] * 32, "labels": [0.0] * 32})
    scripted = ScriptedMetric(float(config["quality"]))
    args = training_arguments(config, tempfile.mkdtemp(), max_steps=6, eval_steps=2, logging_steps=2,
                              use_cpu=True, per_device_train_batch_size=4)
    trainer = Trainer(model=OneWeight(), args=args, train_dataset=data, eval_dataset=data,
                      callbacks=[SearchWandbCallback(log_tables="off", model_artifact="off"), scripted, *callbacks])
    trainer.train()
    return {}


MARKERS_ENV = "HFSW_TEST_COMPLETIONS"


def completing_program(config: dict, callbacks: list) -> dict:
    """Sleep `sleep` seconds, then append the trial's `quality` to the file named by $HFSW_TEST_COMPLETIONS:
    one line per program run that reached its end."""
    time.sleep(float(config["sleep"]))
    with open(os.environ[MARKERS_ENV], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(config["quality"]) + "\n")
    return {"eval_val_mrr@10": float(config["quality"])}


def stamped_program(config: dict, callbacks: list) -> dict:
    """As `completing_program`, but each line is `{"quality", "pid", "at"}`: which process finished the trial
    and when (epoch seconds), so a test can tell the results that finished while the database was down."""
    time.sleep(float(config["sleep"]))
    record = {"quality": config["quality"], "pid": os.getpid(), "at": time.time()}
    with open(os.environ[MARKERS_ENV], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return {"eval_val_mrr@10": float(config["quality"])}


FAIL_ENV = "HFSW_TEST_FAIL"


def broken_until_fixed_program(config: dict, callbacks: list) -> dict:
    """A program with a bug while $HFSW_TEST_FAIL is 1 (the "fix" is unsetting it), for the sweep whose
    `count` is used up by failures and then re-run with the fixed program (same config, same study)."""
    if os.environ.get(FAIL_ENV) == "1":
        raise RuntimeError("scripted bug: fixed by unsetting HFSW_TEST_FAIL")
    return {"eval_val_mrr@10": float(config["quality"])}
