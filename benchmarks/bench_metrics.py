"""Time `score_ranked` / `score_run` against pytrec_eval on the same synthetic run.

    .venv/bin/python benchmarks/bench_metrics.py                 # 10,000 queries x depth 1,000
    .venv/bin/python benchmarks/bench_metrics.py --queries 1000  # quicker

Prints the seconds of each path (best of `--repeats`) and the speed-ups against pytrec_eval, and checks that
the numbers agree. The 7 metrics of `METRICS` are timed first (comparable with earlier figures), then the same
with `rprec` and `bpref` added (bpref also reads which ranked documents are judged). The run has distinct scores, 1-8 judged docs per query with grades 0-3 (some queries with
no relevant doc), and the judged docs placed at random ranks.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from hf_search_wandb.core.metrics.scoring import score_ranked, score_run

METRICS = ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10", "precision@10", "map@100")
TREC_MEASURES = {"recip_rank", "ndcg_cut.10", "recall.100", "map", "success.10", "P.10", "map_cut.100"}
EXTRA = ("rprec", "bpref")
TREC_EXTRA = {"Rprec", "bpref"}
TREC_NAME = {
    "ndcg@10": "ndcg_cut_10",
    "recall@100": "recall_100",
    "map": "map",
    "hit@10": "success_10",
    "precision@10": "P_10",
    "map@100": "map_cut_100",
    "rprec": "Rprec",
    "bpref": "bpref",
}


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def synthetic(n_queries: int, depth: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    judged: list[np.ndarray] = []
    ranked = np.zeros((n_queries, depth), dtype=np.int64)
    in_qrels = np.zeros((n_queries, depth), dtype=bool)
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    doc_ids = np.array([f"doc{i}" for i in range(depth * 4)])
    for q in range(n_queries):
        n_judged = int(rng.integers(1, 9))
        grades = rng.choice([0, 1, 1, 2, 3], size=n_judged)
        docs = rng.choice(doc_ids, size=depth + n_judged, replace=False)
        judged_docs, retrieved = docs[:n_judged], docs[n_judged:].copy()
        ranks = rng.choice(depth, size=n_judged, replace=False)
        found = rng.random(n_judged) < 0.7  # some judged docs are not retrieved
        retrieved[ranks[found]] = judged_docs[found]
        ranked[q, ranks[found]] = grades[found]
        in_qrels[q, ranks[found]] = True
        judged.append(grades)
        qid = f"q{q}"
        qrels[qid] = dict(zip(judged_docs.tolist(), grades.tolist(), strict=True))
        scores = np.sort(rng.random(depth))[::-1]
        run[qid] = dict(zip(retrieved.tolist(), scores.tolist(), strict=True))
    return ranked, judged, in_qrels, qrels, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ranked, judged, in_qrels, qrels, run = synthetic(args.queries, args.depth)
    print(f"{args.queries:,} queries x depth {args.depth:,}; {platform.processor() or platform.machine()}")

    all_metrics = (*METRICS, *EXTRA)
    t_kernel, _ = best_of(args.repeats, lambda: score_ranked(ranked, judged, metrics=METRICS, depth=args.depth))
    t_run, _ = best_of(args.repeats, lambda: score_run(qrels, run, metrics=METRICS, depth=args.depth))
    t_kernel9, kernel = best_of(
        args.repeats,
        lambda: score_ranked(ranked, judged, metrics=all_metrics, depth=args.depth, ranked_judged=in_qrels),
    )
    t_run9, by_run = best_of(args.repeats, lambda: score_run(qrels, run, metrics=all_metrics, depth=args.depth))
    print(f"{len(METRICS)} metrics: {', '.join(METRICS)}")
    print(f"score_ranked (kernel, the evaluator's path): {t_kernel:8.3f} s")
    print(f"score_run (dict run, incl. sorting):         {t_run:8.3f} s")
    print(f"{len(all_metrics)} metrics (+ {', '.join(EXTRA)}):")
    print(f"score_ranked (kernel, the evaluator's path): {t_kernel9:8.3f} s")
    print(f"score_run (dict run, incl. sorting):         {t_run9:8.3f} s")
    try:
        import pytrec_eval
    except ImportError:
        print("pytrec_eval not installed (pip install pytrec-eval-terrier): no comparison")
        return

    def trec(measures: set[str]) -> Callable[[], dict[str, dict[str, float]]]:
        return lambda: pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)

    t_trec, _ = best_of(args.repeats, trec(TREC_MEASURES))
    t_trec9, ref = best_of(args.repeats, trec(TREC_MEASURES | TREC_EXTRA))
    print(f"pytrec_eval, {len(METRICS)} metrics (same dict run):      {t_trec:8.3f} s")
    print(f"pytrec_eval, {len(all_metrics)} metrics (same dict run):      {t_trec9:8.3f} s")
    print(f"speed-up score_ranked vs pytrec_eval: {t_trec / t_kernel:7.1f}x ({t_trec9 / t_kernel9:.1f}x with 9)")
    print(f"speed-up score_run    vs pytrec_eval: {t_trec / t_run:7.1f}x ({t_trec9 / t_run9:.1f}x with 9)")

    assert isinstance(ref, dict) and isinstance(kernel, dict) and isinstance(by_run, dict)
    evaluated = [q for q, g in qrels.items() if any(v > 0 for v in g.values())]
    for name, trec_name in TREC_NAME.items():
        expected = float(np.mean([ref[q][trec_name] for q in evaluated]))
        worst = max(abs(kernel[name] - expected), abs(by_run[name] - expected))
        print(f"  {name:<13} {kernel[name]:.6f}  largest difference from pytrec_eval {worst:.2e}")


if __name__ == "__main__":
    main()
