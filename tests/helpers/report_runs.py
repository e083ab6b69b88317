"""Real offline runs for the report's tests: a tiny SentenceTransformer trained with `SearchWandbCallback`.

Each run holds what a real training run holds: train/, val/ and system/ curves on `train/global_step`,
score histograms and retrieval / error tables at each evaluation, the best-model and dataset artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.core import compat


def train_tiny_run(root: Path, *, learning_rate: float, seed: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Train 6 steps (evaluating at 0, 3 and 6) with wandb offline under `root`; returns the run folder."""
    import wandb
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from tests.helpers.tiny_models import make_tiny_sentence_transformer
    from tests.helpers.training import make_evaluator, pairs

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root))
    wandb.teardown()
    model = make_tiny_sentence_transformer(root / f"model-{seed}", seed=seed)
    rows = pairs(24)
    train = Dataset.from_dict({"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]})
    args = SentenceTransformerTrainingArguments(
        str(root / f"out-{seed}"), per_device_train_batch_size=4, max_steps=6, logging_steps=1,
        eval_strategy="steps", eval_steps=3, eval_on_start=True, save_strategy="no", learning_rate=learning_rate,
        seed=seed, report_to="none", disable_tqdm=True,
    )  # fmt: skip
    evaluator = make_evaluator()
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", model_artifact="best", dataset_artifact=True)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=compat.st_losses().MultipleNegativesRankingLoss(model),
        evaluator=evaluator, callbacks=[callback],
    )  # fmt: skip
    trainer.train()
    callback.finish()  # the callback keeps its run open after train() for later evaluations
    run_dir = callback.run_dir
    wandb.teardown()
    assert run_dir is not None
    return Path(run_dir)


def make_runs(root: Path) -> list[Any]:
    """Two runs (learning rates 1e-3 and 1e-4) under `root/wandb`, oldest first."""
    with pytest.MonkeyPatch.context() as mp:
        return [train_tiny_run(root, learning_rate=lr, seed=i, monkeypatch=mp) for i, lr in enumerate((1e-3, 1e-4))]
