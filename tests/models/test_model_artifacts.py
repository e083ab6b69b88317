"""The best-model artifact loads back, for every model the callback accepts, into a model that scores the same.

Each scenario trains with the callback (wandb offline), rebuilds the `best` artifact from the files the offline
run staged (`restore_staged_artifact`, what a user without a server does), loads it with
`load_model_from_artifact` and evaluates it: the metrics equal those logged at the best step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hf_search_wandb.core import compat
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.models.save_load import ENCODER_FILE, PooledEncoder, load_model, save_model
from hf_search_wandb.tracking.artifacts import load_model_from_artifact, restore_staged_artifact
from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import make_evaluator, only_run, pairs, plain_trainer

METRICS = ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10")


def _best_row(run) -> dict[str, float]:
    """The logged val metrics of the evaluation that set `best/mrr@10`."""
    best = run.summary["best/mrr@10"]
    rows = [r for r in run.history if r.get("val/mrr@10") == pytest.approx(best, abs=1e-12)]
    assert rows, "no evaluation logged the best value"
    return {m: rows[0][f"val/{m}"] for m in METRICS}


def _loaded_scores(run, wandb_root: Path, tmp: Path, evaluator: RetrievalEvaluator) -> tuple[Any, dict]:
    name = f"search-model-{run.summary_view['run_id']}:best"
    directory = restore_staged_artifact(name, tmp / "restored", wandb_dir=wandb_root)
    model = load_model_from_artifact(str(directory))
    return model, evaluator.evaluate(model).metrics


def _assert_same(got: dict[str, float], logged: dict[str, float]) -> None:
    for metric in METRICS:
        assert got[metric] == pytest.approx(logged[metric], abs=1e-6), metric


def test_custom_module_around_a_pretrained_model(wandb_offline: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    evaluator = make_evaluator()
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", log_tables="off", log_histograms=False)
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, learning_rate=2e-3)
    trainer.train()
    run = only_run(wandb_offline)
    model, scores = _loaded_scores(run, wandb_offline, tmp_path, evaluator)
    assert isinstance(model, PooledEncoder) and model.pooling == "mean"
    _assert_same(scores, _best_row(run))


def test_pretrained_model_with_a_plain_trainer(wandb_offline: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer, BertModel, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))

    def collate(rows: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        batch = tokenizer([r["query"] for r in rows], padding=True, truncation=True, max_length=32,
                          return_tensors="pt")
        return {**batch, "labels": torch.zeros(len(rows))}

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        return outputs.last_hidden_state.pow(2).mean()

    evaluator = make_evaluator()
    rows = pairs(24)
    trainer = Trainer(
        model=AutoModel.from_pretrained(str(tiny_bert_dir)),
        args=TrainingArguments(str(wandb_offline / "out"), per_device_train_batch_size=8, max_steps=4,
                               eval_strategy="steps", eval_steps=2, save_strategy="no", learning_rate=5e-3,
                               report_to="none", remove_unused_columns=False, disable_tqdm=True, use_cpu=True,
                               label_names=["labels"]),  # transformers 4.46 finds none: BertModel takes no labels
        train_dataset=Dataset.from_list(rows[:16]), eval_dataset=Dataset.from_list(rows[16:]),
        data_collator=collate, processing_class=tokenizer, compute_loss_func=loss,
        callbacks=[SearchWandbCallback(evaluator, log_tables="off", log_histograms=False)],
    )  # fmt: skip
    trainer.train()
    run = only_run(wandb_offline)
    model, scores = _loaded_scores(run, wandb_offline, tmp_path, evaluator)
    assert isinstance(model, BertModel)
    _assert_same(scores, _best_row(run))


def test_sentence_transformer(wandb_offline: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path / "model")
    evaluator = make_evaluator()
    rows = pairs(24)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=SentenceTransformerTrainingArguments(
            str(wandb_offline / "out"), per_device_train_batch_size=8, max_steps=4, eval_strategy="steps",
            eval_steps=2, save_strategy="no", learning_rate=1e-3, report_to="none", disable_tqdm=True),
        train_dataset=Dataset.from_dict({"anchor": [r["query"] for r in rows],
                                         "positive": [r["document"] for r in rows]}),
        loss=compat.st_losses().MultipleNegativesRankingLoss(model), evaluator=evaluator,
        callbacks=[SearchWandbCallback(evaluator, log_tables="off", log_histograms=False)],
    )  # fmt: skip
    trainer.train()
    run = only_run(wandb_offline)
    loaded, scores = _loaded_scores(run, wandb_offline, tmp_path, evaluator)
    assert isinstance(loaded, SentenceTransformer)
    _assert_same(scores, _best_row(run))


def test_modules_that_cannot_be_rebuilt_say_how_to_load_them(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    class WithHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(tiny_bert_dir))
            self.head = torch.nn.Linear(32, 8)

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    save_model(WithHead(), tmp_path / "head", tokenizer)
    assert "head.weight" in (tmp_path / "head" / ENCODER_FILE).read_text()
    with pytest.raises(ValueError, match=r"parameters outside its transformers model \(head.weight.*load_state_dict"):
        load_model(tmp_path / "head")
    save_model(torch.nn.Linear(4, 2), tmp_path / "bare")
    with pytest.raises(ValueError, match=r"no transformers model inside.*load_state_dict"):
        load_model(tmp_path / "bare")
