"""Exact MaxSim search vs re-scoring a first stage, for the same multi-vector model on the same data.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_multi_vector_rescoring.py --threads 2   # all of SciFact test
    .venv/bin/python benchmarks/bench_multi_vector_rescoring.py --depths 20 100 --queries 100  # quicker
    .venv/bin/python benchmarks/bench_multi_vector_rescoring.py --tiny                          # tiny random model

The model is the one `examples/train_multi_vector.py` starts from (all-MiniLM-L6-v2's token states, L2-normalised,
MaxSim). `RetrievalEvaluator` scores every query against the whole corpus; `RerankingEvaluator(candidates="bm25",
depth=k)` encodes only the candidates' documents and scores only the (query, candidate) pairs. Printed per way:
wall time of one evaluation (tokenisation included), peak memory, documents encoded, pairs scored, nDCG@10 /
MRR@10 / Recall@k, and for the re-scoring, BM25's own metrics on the same candidates. What it shows: what the
re-scoring costs and loses against the exact search, so a user can choose it for a corpus the exact search cannot
hold (its cost grows with queries x depth, not with the corpus).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_evaluator (data and memory helpers)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, tests/

from bench_evaluator import build_data, timed
from bench_multi_vector import load_model

from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a saved MultiVectorEncoder or a BERT-like checkpoint")
    parser.add_argument("--tiny", action="store_true", help="a tiny random ColBERT model (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--corpus-size", type=int, default=None, help="docs (default: SciFact's 5,183)")
    parser.add_argument("--queries", type=int, default=None, help="cap on queries (default: all 300)")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 100], help="BM25 candidates re-scored")
    parser.add_argument("--query-length", type=int, default=32)
    parser.add_argument("--document-length", type=int, default=180)
    parser.add_argument("--query-expansion", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args)
    queries, corpus, qrels = build_data(args.corpus_size, args.queries, "test")
    if args.tiny:
        from tests.helpers.synthetic import synthetic_data
        from tests.helpers.tiny_models import WORDS

        queries, corpus, qrels = synthetic_data(WORDS)
    if min(args.depths) < 10:
        parser.error("--depths must be >= 10 (nDCG@10 and MRR@10 are compared)")
    depth = max(args.depths)
    metrics = ["ndcg@10", "mrr@10", f"recall@{min(args.depths)}"]  # every evaluator's k <= its depth
    rows: list[dict] = []

    exact = RetrievalEvaluator(queries, corpus, qrels, name="", metrics=metrics, depth=depth, precision=args.precision)
    seconds, peak, found = timed(args.device, lambda: exact.evaluate(model).metrics)
    rows.append({"way": "exact MaxSim, whole corpus", "seconds": seconds, "peak_mb": peak / 2**20,
                 "docs_encoded": len(exact.doc_ids), "pairs_scored": len(exact.query_ids) * len(exact.doc_ids),
                 "metrics": found})  # fmt: skip
    for k in sorted(args.depths):
        rescoring = RerankingEvaluator(queries, corpus, qrels, "bm25", depth=k, name="", metrics=metrics,
                                       precision=args.precision, rerank_all=True)  # fmt: skip
        seconds, peak, found = timed(args.device, lambda r=rescoring: r.evaluate(model).metrics)
        pairs, _, docs = rescoring.scored_pairs()
        rows.append({"way": f"BM25 top {k} re-scored", "seconds": seconds, "peak_mb": peak / 2**20,
                     "docs_encoded": len(set(docs.tolist())), "pairs_scored": int(pairs.size),
                     "bm25_seconds": rescoring.candidates_seconds, "metrics": found})  # fmt: skip

    print(f"\n{len(queries)} queries x {len(corpus):,} documents, device {args.device}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")  # fmt: skip
    for row in rows:
        m = row["metrics"]
        shown = "  ".join(f"{name} {m[name]:.4f}" for name in metrics if name in m)
        first = "  ".join(f"{name} {m[f'first_stage/{name}']:.4f}" for name in metrics if f"first_stage/{name}" in m)
        print(f"{row['way']:28s} {row['seconds']:7.1f} s  peak +{row['peak_mb']:.0f} MB  "
              f"docs encoded {row['docs_encoded']:,}  pairs scored {row['pairs_scored']:,}  {shown}"
              + (f"  | BM25 alone: {first}" if first else ""))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
