"""Training set-ups shared by the callback tests and the scripts they launch: SciFact slices, the
evaluator they log, a plain `transformers.Trainer` on a custom bi-encoder, and one-run readers."""


from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.paths import SCIFACT
from tests.helpers.wandb_records import RunRecords, read_run, run_dirs

SPEC_CONFIG_KEYS = (
    "model_name",
    "model_type",
    "base_model",
    "max_seq_length",
    "pooling_mode",
    "learning_rate",
    "batch_size",
    "effective_batch_size",
    "gradient_accumulation_steps",
    "num_epochs",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "scheduler",
    "loss_function",
    "negative_sampling",
    "num_hard_negatives",
    "amp_dtype",
    "gradient_checkpointing",
    "dataset_name",
    "train_size",
    "val_size",
    "eval_metric",
    "eval_steps",
    "seed",
    "torch_version",
    "transformers_version",
    "sentence_transformers_version",
    "cuda_version",
    "gpu_name",
    "gpu_count",
    "accelerate_version",
    "wandb_version",
    "hf_search_wandb_version",
    "world_size",
    "mixed_precision",
)
VAL_METRICS = ("val/mrr@10", "val/ndcg@10", "val/recall@100", "val/map", "val/hit@10")
TRAIN_METRICS = ("train/loss", "train/lr", "train/global_step", "train/grad_norm", "train/epoch_loss")


@functools.lru_cache(maxsize=2)
def scifact(split: str) -> Any:
    """SciFact parsed once per test session (each scenario builds a fresh evaluator from it)."""
    from hf_search_wandb.core.data.beir import load_beir

    return load_beir(SCIFACT, split)


def make_evaluator() -> Any:
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

    data = scifact("test")
    return RetrievalEvaluator(data.queries, data.corpus, data.qrels, max_queries=12, corpus_sample=40)


def pairs(n: int = 32) -> list[dict[str, str]]:
    data = scifact("train")
    rows = []
    for qid, docs in data.qrels.items():
        doc = next(iter(docs))
        if qid in data.queries and doc in data.corpus:
            rows.append({"query": data.queries[qid], "document": data.corpus[doc][:200]})
        if len(rows) == n:
            break
    return rows


class BiEncoder(nn.Module):
    """AutoModel + mean pooling, trained with an in-batch contrastive loss (what a plain Trainer user writes)."""

    def __init__(self, path: str | Path, *, fail_at_call: int | None = None) -> None:
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(str(path))
        self.pooling = "mean"
        self.fail_at_call = fail_at_call
        self.calls = 0

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(self, q_input_ids, q_attention_mask, d_input_ids, d_attention_mask, labels=None):  # type: ignore[no-untyped-def]
        if self.training:
            self.calls += 1
            if self.fail_at_call is not None and self.calls >= self.fail_at_call:
                raise RuntimeError("boom: simulated training failure")
        scores = self.embed(q_input_ids, q_attention_mask) @ self.embed(d_input_ids, d_attention_mask).T * 20
        target = torch.arange(scores.shape[0], device=scores.device)
        return {"loss": nn.functional.cross_entropy(scores, target), "scores": scores}


class PairCollator:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        q = self.tokenizer(
            [r["query"] for r in rows], padding=True, truncation=True, max_length=32, return_tensors="pt"
        )
        d = self.tokenizer(
            [r["document"] for r in rows], padding=True, truncation=True, max_length=48, return_tensors="pt"
        )
        return {
            "q_input_ids": q["input_ids"], "q_attention_mask": q["attention_mask"],
            "d_input_ids": d["input_ids"], "d_attention_mask": d["attention_mask"],
            "labels": torch.arange(len(rows)),
        }  # fmt: skip


def plain_trainer(
    model_dir: Path,
    out: Path,
    callback: SearchWandbCallback | None,
    *,
    late: bool = False,
    fail_at_call: int | None = None,
    **arg_overrides: Any,
) -> Any:
    """A plain transformers.Trainer on the custom bi-encoder; `late=True` adds the callback after init."""
    from datasets import Dataset
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    kwargs: dict[str, Any] = dict(
        per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=6, logging_steps=1,
        eval_strategy="steps", eval_steps=3, save_strategy="no", learning_rate=5e-4, report_to="none",
        remove_unused_columns=False, seed=3, disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    kwargs.update(arg_overrides)
    rows = pairs(40)
    trainer = Trainer(
        model=BiEncoder(model_dir, fail_at_call=fail_at_call),
        args=TrainingArguments(str(out), **kwargs),
        train_dataset=Dataset.from_list(rows[:32]),
        eval_dataset=Dataset.from_list(rows[32:]),
        data_collator=PairCollator(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback] if callback is not None and not late else None,
    )
    if callback is not None and late:
        trainer.add_callback(callback)
    return trainer


def only_run(root: Path) -> RunRecords:
    dirs = run_dirs(root)
    assert len(dirs) == 1, f"expected exactly one wandb run, found {[d.name for d in dirs]}"
    return read_run(dirs[0])


def assert_one_step_axis(run: RunRecords) -> None:
    """Every history row carries train/global_step and it never decreases."""
    steps = [row["train/global_step"] for row in run.history]
    assert len(steps) == len(run.history)
    assert steps == sorted(steps)


def named_evaluator(name: str, max_queries: int, corpus_sample: int = 40) -> Any:
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

    data = scifact("test")
    return RetrievalEvaluator(data.queries, data.corpus, data.qrels, name=name, max_queries=max_queries,
                              corpus_sample=corpus_sample)  # fmt: skip
